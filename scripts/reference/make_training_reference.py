#!/usr/bin/env python3
"""Write training-step reference data from PsychRNN 1.0.0 (PyPI, TensorFlow) for the Rust port.

Run with the reference venv (PsychRNN 1.0.0, TF 2.x CPU):

    /root/.cache/psychrnn/pyref/bin/python scripts/reference/make_training_reference.py [OUT_DIR] [--only a,b]

OUT_DIR defaults to tests/data.  Cases (all by default): plain dale masked reg bce clip.

For each case <c> this writes
  train_<c>_start.npz  the starting weights, written by PsychRNN's own `model.save()` right after the
                       model is built (effective W_in/W_rec/W_out, masks, Dale matrices, dale_ratio),
                       plus a `transfer_function` member (pickled TF function, as GitHub master
                       saves; PyPI 1.0.0 ignores it on load) appended with the other members untouched;
  train_<c>.npz        the fixed batch, the losses, gradients (raw / fixed-masked / clipped), variables
                       and Adam slots of two Adam steps, outputs_0 (all trials) and states_0 (trials
                       STATES_0_TRIALS only, for size); the JSON's `npz_keys` lists every member;
  train_<c>.json       the params used and the checks made (Adam / clip re-derivations, float64
                       cross-reference, PsychRNN `train()` cross-check).

How a case is made:
  1. reset the TF graph, tf.compat.v1.set_random_seed(seed), np.random.seed(seed); Basic(params) with
     the default GaussianSpectralRadius initializer (params passed as kwargs); model.save(start).
  2. reset the graph; Basic(params + load_weights_path=start) -- so raw == effective at the start;
     outputs_0, states_0 = model.test(x).
  3. the exact op sequence of RNN.train(): AdamOptimizer(1e-3).compute_gradients(reg_loss); for
     names in fixed_weights grad*(1-fixed); clip_by_norm(g, 1.0) per tensor; apply_gradients;
     global_variables_initializer().  Two steps on the same batch; every gradient is fetched in a
     separate sess.run just before the `optimize` run (CPU TF is deterministic here; the Adam
     re-derivation from the fetched gradients reproduces TF's update bit for bit, which proves it).
  4. cross-check: a fresh model from the same start file trained by PsychRNN's own model.train()
     (generator yielding the same batch, training_iters=48 -> exactly 2 updates in 1.0.0) must end
     with identical variables and Adam slots.
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from make_reference import add_npz_member, tf_quiet, write_json  # noqa: E402

VARS = ["init_state", "W_in", "W_rec", "W_out", "b_rec", "b_out"]
N_IN, N_OUT, N_REC, N_BATCH = 2, 2, 20, 16
DT, TAU, T_TOTAL = 10, 100, 2000
N_STEPS = T_TOTAL // DT
LR = 0.001
BATCH_SEED = 5
# states_0 is stored for these trials only: the full (16, 200, 20) float32 array deflates to ~240 kB per
# case, which would put the six cases over the 1.5 MB budget for the new files.
STATES_0_TRIALS = [0, 1, 2, 3]


# --------------------------------------------------------------------------
# cases


def case_defs(tf):
    n_e = int(0.8 * N_REC)
    dale_out = np.diag(np.r_[np.ones(n_e), np.zeros(N_REC - n_e)])

    rs = np.random.RandomState(5103)

    def conn(shape):
        return (rs.random_sample(shape) >= 0.3).astype(np.float64)

    input_conn = conn((N_REC, N_IN))
    rec_conn = conn((N_REC, N_REC))
    output_conn = conn((N_OUT, N_REC))
    fixed_rec = np.zeros((N_REC, N_REC))
    fixed_rec[0:6, 10:20] = 1.0

    return {
        "plain": dict(seed=5001, tf_fn=tf.nn.relu, extra={}),
        "dale": dict(seed=5002, tf_fn=tf.nn.relu, extra=dict(dale_ratio=0.8, Dale_out=dale_out),
                     note_extra="Dale_out passed explicitly as diag(1 x n_E, 0 x n_I) (GitHub master default); "
                                "PyPI 1.0.0's own default would be the +-1 Dale_rec."),
        "masked": dict(seed=5003, tf_fn=tf.nn.relu,
                       extra=dict(autapses=False, input_connectivity=input_conn, rec_connectivity=rec_conn,
                                  output_connectivity=output_conn),
                       mask_recipe="rs = np.random.RandomState(5103); input_connectivity, rec_connectivity, "
                                   "output_connectivity = (rs.random_sample(shape) >= 0.3).astype(float64) in that "
                                   "order with shapes (20,2), (20,20), (2,20); autapses=False then zeroes the "
                                   "diagonal of rec_connectivity",
                       fixed_weights={"W_rec": fixed_rec, "W_in": np.zeros((N_REC, N_IN)),
                                      "W_out": np.zeros((N_OUT, N_REC))}),
        "reg": dict(seed=5004, tf_fn=tf.nn.tanh,
                    extra=dict(L1_in=0.01, L2_rec=0.05, L1_out=0.02, L2_out=0.01, L2_firing_rate=0.1)),
        # Seed chosen so the linear readout starts inside (1e-7, 1-1e-7) for almost every element (with
        # seed 5005 all 6400 predictions were < 1e-7, clip_by_value zeroed every gradient and nothing
        # moved); with 5045 a few masked predictions exceed 1-1e-7, so the clipped-gradient path is
        # exercised too.
        "bce": dict(seed=5045, tf_fn=tf.nn.sigmoid, extra=dict(loss_function="binary_cross_entropy")),
        # No other case has a gradient norm > 1 (spec_rad 1.5 alone did not either).  Larger input /
        # output weights (const_gauss: N(0,1) instead of glorot) plus spec_rad 1.5 give norms ~2.1
        # (W_rec) and ~1.13 (b_rec) at step 1, so those tensors are clipped and the others are not.
        "clip": dict(seed=5006, tf_fn=tf.nn.relu, extra=dict(spec_rad=1.5, which_rand_init="const_gauss")),
    }


def model_params(name, tf_fn, extra):
    p = dict(name=name, N_in=N_IN, N_rec=N_REC, N_out=N_OUT, N_steps=N_STEPS, N_batch=N_BATCH, dt=DT, tau=TAU,
             T=T_TOTAL, rec_noise=0.0, transfer_function=tf_fn)
    p.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in extra.items()})
    return p


def json_params(p):
    out = {}
    for k, v in p.items():
        if k == "transfer_function":
            out[k] = f"tf.nn.{v.__name__}"
        elif isinstance(v, np.ndarray):
            out[k] = v.tolist()
        else:
            out[k] = v
    return out


def fixed_batch():
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
    np.random.seed(BATCH_SEED)
    pd = PerceptualDiscrimination(dt=DT, tau=TAU, T=T_TOTAL, N_batch=N_BATCH)
    x, y, mask, _ = pd.get_trial_batch()
    return x.astype(np.float32), y.astype(np.float32), mask.astype(np.float32)


# --------------------------------------------------------------------------
# numpy re-derivations


F32 = np.float32


def adam_tf_kernel_f32(var, m, v, g, b1p, b2p):
    """TF's CPU ApplyAdamNonCuda kernel (training_ops.cc), all float32:
    alpha = lr*sqrt(1-beta2_power)/(1-beta1_power); m += (g-m)*(1-b1); v += (g*g-v)*(1-b2);
    var -= (m*alpha)/(sqrt(v)+eps)."""
    lr, b1, b2, eps = F32(LR), F32(0.9), F32(0.999), F32(1e-8)
    alpha = lr * np.sqrt(F32(1) - F32(b2p)) / (F32(1) - F32(b1p))
    m = (m + (g - m) * (F32(1) - b1)).astype(F32)
    v = (v + (g * g - v) * (F32(1) - b2)).astype(F32)
    var = (var - (m * alpha) / (np.sqrt(v) + eps)).astype(F32)
    return var, m, v


def adam_textbook_f64(var, m, v, g, t):
    """Kingma-Ba / tf.compat.v1 AdamOptimizer docs formula, float64:
    lr_t = lr*sqrt(1-b2^t)/(1-b1^t); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    var -= lr_t*m/(sqrt(v)+eps)."""
    var, m, v, g = (np.asarray(a, np.float64) for a in (var, m, v, g))
    b1, b2, eps = 0.9, 0.999, 1e-8
    lr_t = LR * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    var = var - lr_t * m / (np.sqrt(v) + eps)
    return var, m, v


def clip_np(g, dtype):
    g = np.asarray(g, dtype)
    n = np.sqrt(np.sum(g * g, dtype=dtype))
    return (g * dtype(1.0)) / np.maximum(n, dtype(1.0)), float(n)


def maxabs(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def max_ulps(a, b):
    a = np.asarray(a, np.float32).ravel().view(np.int32).astype(np.int64)
    b = np.asarray(b, np.float32).ravel().view(np.int32).astype(np.int64)
    # map sign-magnitude to a monotone integer line
    a = np.where(a < 0, -(a & 0x7FFFFFFF), a)
    b = np.where(b < 0, -(b & 0x7FFFFFFF), b)
    return int(np.max(np.abs(a - b))) if a.size else 0


# --------------------------------------------------------------------------
# float64 re-implementation of the same objective (independent of PsychRNN's graph)


def f64_objective(tf, start, tf_fn, extra, x, y, mask):
    """Returns (session, dict of var tensors, grads list, loss tensors, feeders) for a float64 graph
    computing PsychRNN's reg_loss with the start file's masks / Dale matrices."""
    g = tf.Graph()
    with g.as_default():
        V = {k: tf.compat.v1.Variable(np.asarray(start[k], np.float64), name=k) for k in VARS}
        C_in = tf.constant(np.asarray(start["input_connectivity"], np.float64))
        C_rec = tf.constant(np.asarray(start["rec_connectivity"], np.float64))
        C_out = tf.constant(np.asarray(start["output_connectivity"], np.float64))
        D_rec = tf.constant(np.asarray(start["Dale_rec"], np.float64))
        D_out = tf.constant(np.asarray(start["Dale_out"], np.float64))
        dale = start["dale_ratio"].item() if start["dale_ratio"].dtype != object else start["dale_ratio"].item()

        def eff_rec():
            w = V["W_rec"] * C_rec
            return tf.matmul(tf.abs(w), D_rec) if dale else w

        def eff_in():
            w = V["W_in"] * C_in
            return tf.abs(w) if dale else w

        def eff_out():
            w = V["W_out"] * C_out
            return tf.matmul(tf.abs(w), D_out) if dale else w

        alpha = DT / TAU
        f = tf_fn
        X = tf.constant(x.astype(np.float64))
        Y = tf.constant(y.astype(np.float64))
        M = tf.constant(mask.astype(np.float64))
        state = tf.tile(V["init_state"], [N_BATCH, 1])
        outs, states = [], []
        for k in range(N_STEPS):
            u = X[:, k, :]
            state = (1 - alpha) * state + alpha * (tf.matmul(f(state), eff_rec(), transpose_b=True)
                                                   + tf.matmul(u, eff_in(), transpose_b=True) + V["b_rec"])
            out = tf.matmul(f(state), eff_out(), transpose_b=True) + V["b_out"]
            outs.append(out)
            states.append(state)
        pred = tf.transpose(a=outs, perm=[1, 0, 2])
        st = tf.transpose(a=states, perm=[1, 0, 2])
        if extra.get("loss_function", "mean_squared_error") == "binary_cross_entropy":
            eps = 1e-7
            p = tf.clip_by_value(pred, eps, 1.0 - eps)
            loss = tf.reduce_mean(M * -(Y * tf.math.log(p + eps) + (1 - Y) * tf.math.log(1 - p + eps)))
        else:
            loss = tf.reduce_mean(tf.square(M * (pred - Y)))
        reg = tf.constant(0.0, tf.float64)
        for key, fn in (("L1_in", lambda: tf.reduce_mean(tf.abs(eff_in()))),
                        ("L1_rec", lambda: tf.reduce_mean(tf.abs(eff_rec()))),
                        ("L1_out", lambda: tf.reduce_mean(tf.abs(eff_out()))),
                        ("L2_in", lambda: tf.reduce_mean(tf.square(eff_in()))),
                        ("L2_rec", lambda: tf.reduce_mean(tf.square(eff_rec()))),
                        ("L2_out", lambda: tf.reduce_mean(tf.square(eff_out()))),
                        ("L2_firing_rate", lambda: tf.reduce_mean(tf.square(f(st))))):
            c = extra.get(key, 0)
            if c:
                reg = reg + c * fn()
        total = loss + reg
        grads = tf.gradients(total, [V[k] for k in VARS])
        ph = {k: tf.compat.v1.placeholder(tf.float64, V[k].shape) for k in VARS}
        assign = tf.group(*[V[k].assign(ph[k]) for k in VARS])
        sess = tf.compat.v1.Session(graph=g)
        sess.run(tf.compat.v1.global_variables_initializer())
    return dict(sess=sess, grads=grads, loss=loss, total=total, pred=pred, states=st, ph=ph, assign=assign)


# --------------------------------------------------------------------------
# one case


def run_case(tf, out_dir, case, cfg, x, y, mask):
    from psychrnn.backend.models.basic import Basic

    name = f"train_{case}"
    seed = cfg["seed"]
    tf_fn = cfg["tf_fn"]
    extra = cfg["extra"]
    fixed = cfg.get("fixed_weights")
    notes = []

    # ---- 1. build as PsychRNN would, save the start weights before any step
    tf.compat.v1.reset_default_graph()
    tf.compat.v1.set_random_seed(seed)
    np.random.seed(seed)
    params = model_params(name, tf_fn, extra)
    m0 = Basic(params)
    start_path = os.path.join(out_dir, f"{name}_start.npz")
    if os.path.exists(start_path):
        os.remove(start_path)
    m0.save(start_path)
    m0.destruct()
    add_npz_member(start_path, "transfer_function", np.array(tf_fn, dtype=object))
    start = dict(np.load(start_path, allow_pickle=True))

    # ---- 2. the stepping model, loaded from that file (raw == effective at the start)
    def load_model():
        tf.compat.v1.reset_default_graph()
        tf.compat.v1.set_random_seed(seed)
        p2 = model_params(name, tf_fn, extra)
        p2["load_weights_path"] = start_path
        return Basic(p2)

    model = load_model()
    feed_x = {model.x: x}
    outputs_0, states_0 = model.test(x)
    sess = model.sess
    tvars = tf.compat.v1.trainable_variables()
    short = [v.name[len(model.name) + 1:-2] for v in tvars]
    assert short == VARS, short
    raw_start = {k: sess.run(v) for k, v in zip(VARS, tvars)}
    for k in VARS:
        eq = np.array_equal(raw_start[k].reshape(start[k].shape), start[k])
        assert eq, k

    # ---- 3. the train() op sequence (rnn.py lines 508-533 of PsychRNN 1.0.0)
    optimizer = tf.compat.v1.train.AdamOptimizer(learning_rate=LR)
    grads = optimizer.compute_gradients(model.reg_loss)
    raw_grads = [g for g, _ in grads]
    if fixed is not None:
        for i in range(len(grads)):
            (grad, var) = grads[i]
            vname = var.name[len(model.name) + 1:-2]
            if vname in fixed.keys():
                grad = tf.multiply(grad, (1 - fixed[vname]))
                grads[i] = (grad, var)
    masked_grads = [g for g, _ in grads]
    grads = [(tf.clip_by_norm(grad, 1.0), var) if grad is not None else (grad, var) for grad, var in grads]
    clipped_grads = [g for g, _ in grads]
    optimize = optimizer.apply_gradients(grads)
    sess.run(tf.compat.v1.global_variables_initializer())

    slots_m = [optimizer.get_slot(v, "m") for v in tvars]
    slots_v = [optimizer.get_slot(v, "v") for v in tvars]
    b1p_t, b2p_t = optimizer._get_beta_accumulators()
    norm_ops = [tf.sqrt(tf.reduce_sum(g * g)) for g in masked_grads]

    # regularizer terms exactly as regularizations.py builds them (coefficient * mean)
    eff_in, eff_rec, eff_out = model.get_effective_W_in(), model.get_effective_W_rec(), model.get_effective_W_out()
    reg_means = {
        "L1_in": tf.reduce_mean(input_tensor=tf.abs(eff_in)),
        "L1_rec": tf.reduce_mean(input_tensor=tf.abs(eff_rec)),
        "L1_out": tf.reduce_mean(input_tensor=tf.abs(eff_out)),
        "L2_in": tf.reduce_mean(input_tensor=tf.square(tf.abs(eff_in))),
        "L2_rec": tf.reduce_mean(input_tensor=tf.square(tf.abs(eff_rec))),
        "L2_out": tf.reduce_mean(input_tensor=tf.square(tf.abs(eff_out))),
        "L2_firing_rate": tf.reduce_mean(input_tensor=tf.square(model.transfer_function(model.states))),
    }
    feed = {model.x: x, model.y: y, model.output_mask: mask}

    arrays = dict(x=x, y=y, mask=mask, outputs_0=outputs_0, states_0=states_0[STATES_0_TRIALS],
                  states_0_trials=np.array(STATES_0_TRIALS, dtype=np.int64))
    if fixed is not None:
        for k, v in fixed.items():
            arrays[f"fixed_weights/{k}"] = np.asarray(v, np.float64)

    loss_0, mse_0, reg_0, preds_0, rm0 = sess.run([model.reg_loss, model.loss, model.reg, model.predictions,
                                                   reg_means], feed)
    arrays.update(loss_0=np.float32(loss_0), mse_0=np.float32(mse_0), reg_0=np.float32(reg_0))
    d_test = maxabs(preds_0, outputs_0)
    assert d_test == 0.0, d_test

    reg_terms = {}
    for k, mean in rm0.items():
        c = extra.get(k, 0)
        reg_terms[k] = {"coefficient": c, "mean": float(mean), "term": float(np.float32(c) * mean)}

    # determinism check of the gradient evaluation
    g_a = sess.run(raw_grads, feed)
    g_b = sess.run(raw_grads, feed)
    deterministic = all(np.array_equal(a, b) for a, b in zip(g_a, g_b))
    assert deterministic

    steps = {}
    prev = {k: raw_start[k] for k in VARS}
    prev_m = {k: np.zeros_like(raw_start[k]) for k in VARS}
    prev_v = {k: np.zeros_like(raw_start[k]) for k in VARS}
    adam_check = {}
    clip_check = {}
    for t in (1, 2):
        b1p, b2p = sess.run([b1p_t, b2p_t])
        r, mg, cg, norms = sess.run([raw_grads, masked_grads, clipped_grads, norm_ops], feed)
        sess.run(optimize, feed)
        after = sess.run(tvars)
        ms = sess.run(slots_m)
        vs = sess.run(slots_v)
        steps[t] = dict(b1p=float(b1p), b2p=float(b2p))
        clipped_names = []
        for i, k in enumerate(VARS):
            arrays[f"grad_raw_{t}/{k}"] = r[i]
            if fixed is not None:
                arrays[f"grad_masked_{t}/{k}"] = mg[i]
            arrays[f"grad_clipped_{t}/{k}"] = cg[i]
            arrays[f"var_{t}/{k}"] = after[i]
            arrays[f"m_{t}/{k}"] = ms[i]
            arrays[f"v_{t}/{k}"] = vs[i]
            if not np.array_equal(mg[i], cg[i]):
                clipped_names.append(k)
            # clip re-derivation
            c32, n32 = clip_np(mg[i], np.float32)
            c64, n64 = clip_np(mg[i], np.float64)
            clip_check.setdefault(f"step{t}", {})[k] = {
                "tf_norm_f32": float(norms[i]), "norm_f64": n64, "clipped": bool(norms[i] > 1.0),
                "numpy_f32_clip_max_abs_dev": maxabs(c32, cg[i]), "numpy_f32_clip_max_ulps": max_ulps(c32, cg[i]),
                "f64_clip_max_abs_dev": maxabs(c64, cg[i]),
            }
            # Adam re-derivation
            k32 = adam_tf_kernel_f32(prev[k], prev_m[k], prev_v[k], cg[i], b1p, b2p)
            k64 = adam_textbook_f64(prev[k], prev_m[k], prev_v[k], cg[i], t)
            adam_check.setdefault(f"step{t}", {})[k] = {
                "tf_kernel_f32_emulation": {"var_max_abs_dev": maxabs(k32[0], after[i]),
                                            "var_max_ulps": max_ulps(k32[0], after[i]),
                                            "m_max_abs_dev": maxabs(k32[1], ms[i]),
                                            "v_max_abs_dev": maxabs(k32[2], vs[i])},
                "textbook_f64": {"var_max_abs_dev": maxabs(k64[0], after[i]),
                                 "m_max_abs_dev": maxabs(k64[1], ms[i]),
                                 "v_max_abs_dev": maxabs(k64[2], vs[i])},
            }
            prev[k], prev_m[k], prev_v[k] = after[i], ms[i], vs[i]
        steps[t]["clipped"] = clipped_names
        steps[t]["raw_norms"] = {k: float(norms[i]) for i, k in enumerate(VARS)}
        if t == 1:
            l1, mse1 = sess.run([model.reg_loss, model.loss], feed)
            arrays["loss_1"] = np.float32(l1)
            arrays["mse_1"] = np.float32(mse1)
    b1p, b2p = sess.run([b1p_t, b2p_t])
    arrays["beta1_power_after_2"] = np.float32(b1p)
    arrays["beta2_power_after_2"] = np.float32(b2p)
    l2, mse2 = sess.run([model.reg_loss, model.loss], feed)
    arrays["loss_2"] = np.float32(l2)
    arrays["mse_2"] = np.float32(mse2)
    model.destruct()

    # ---- 4. cross-check against PsychRNN's own train()
    model = load_model()

    def gen():
        while True:
            yield x, y, mask, [{}] * N_BATCH

    train_params = {"learning_rate": LR, "training_iters": 48, "loss_epoch": 1, "verbosity": False}
    if fixed is not None:
        train_params["fixed_weights"] = fixed
    losses, _, _ = model.train(gen(), train_params)
    gv = {v.name: v for v in tf.compat.v1.global_variables()}
    xcheck = {"updates": len(losses), "losses": [float(v) for v in losses],
              "loss_1_dev": abs(float(losses[0]) - float(arrays["loss_1"])),
              "loss_2_dev": abs(float(losses[1]) - float(arrays["loss_2"]))}
    worst = 0.0
    for k in VARS:
        v = model.sess.run(gv[f"{name}/{k}:0"])
        mm = model.sess.run(gv[f"{name}/{k}/Adam:0"])
        vv = model.sess.run(gv[f"{name}/{k}/Adam_1:0"])
        worst = max(worst, maxabs(v, arrays[f"var_2/{k}"]), maxabs(mm, arrays[f"m_2/{k}"]),
                    maxabs(vv, arrays[f"v_2/{k}"]))
    xcheck["max_abs_dev_vars_and_slots_after_2"] = worst
    model.destruct()

    # ---- 5. float64 reference of the same objective
    f64 = f64_objective(tf, start, tf_fn, extra, x, y, mask)
    s64 = f64["sess"]
    g64, tot64, loss64, pred64, st64 = s64.run([f64["grads"], f64["total"], f64["loss"], f64["pred"],
                                                f64["states"]])
    f64_info = {"loss_0_f64": float(tot64), "loss_0_dev": abs(float(tot64) - float(loss_0)),
                "mse_0_f64": float(loss64),
                "outputs_0_max_abs_dev": maxabs(pred64, outputs_0), "states_0_max_abs_dev": maxabs(st64, states_0),
                "grad_raw_1": {}}
    total_flips = 0
    for i, k in enumerate(VARS):
        arrays[f"grad64_raw_1/{k}"] = g64[i].reshape(arrays[f"grad_raw_1/{k}"].shape)
        g32 = arrays[f"grad_raw_1/{k}"].astype(np.float64)
        g6 = arrays[f"grad64_raw_1/{k}"]
        scale = float(np.max(np.abs(g6))) or 1.0
        flips = int(np.sum(np.sign(g32) != np.sign(g6)))
        total_flips += flips
        small = np.abs(g6) < 1e-6
        f64_info["grad_raw_1"][k] = {
            "max_abs_dev": maxabs(g32, g6), "max_abs_dev_rel_to_max": maxabs(g32, g6) / scale,
            "max_abs_f64": scale, "sign_mismatches_f32_vs_f64": flips,
            "n_exact_zero_f64": int(np.sum(g6 == 0)), "n_exact_zero_f32": int(np.sum(g32 == 0)),
            "n_abs_below_1e-6_f64": int(np.sum(small & (g6 != 0))),
        }
    f64_info["total_sign_mismatches"] = total_flips
    # a pure float64 port: two Adam steps in f64 from the same start, compared with TF's float32 run
    cur = {k: np.asarray(start[k], np.float64).reshape(raw_start[k].shape) for k in VARS}
    m64 = {k: np.zeros_like(cur[k]) for k in VARS}
    v64 = {k: np.zeros_like(cur[k]) for k in VARS}
    port = {}
    for t in (1, 2):
        s64.run(f64["assign"], {f64["ph"][k]: cur[k].reshape(f64["ph"][k].shape) for k in VARS})
        gg = s64.run(f64["grads"])
        for i, k in enumerate(VARS):
            gk = gg[i].reshape(cur[k].shape)
            if fixed is not None and k in fixed:
                gk = gk * (1 - fixed[k])
            gk, _ = clip_np(gk, np.float64)
            cur[k], m64[k], v64[k] = adam_textbook_f64(cur[k], m64[k], v64[k], gk, t)
        port[f"step{t}_var_max_abs_dev"] = max(maxabs(cur[k], arrays[f"var_{t}/{k}"]) for k in VARS)
        if t == 2:
            kw = max(VARS, key=lambda k: maxabs(cur[k], arrays[f"var_2/{k}"]))
            dev = np.abs(cur[kw] - arrays[f"var_2/{kw}"])
            iw = np.unravel_index(int(np.argmax(dev)), dev.shape)
            port["worst_entry"] = {"var": kw, "index": [int(i) for i in iw], "dev": float(dev[iw]),
                                   "grad_raw_1_f32": float(arrays[f"grad_raw_1/{kw}"][iw]),
                                   "grad_raw_1_f64": float(arrays[f"grad64_raw_1/{kw}"][iw]),
                                   "grad_raw_2_f32": float(arrays[f"grad_raw_2/{kw}"][iw])}
        port[f"step{t}_var_max_abs_dev_per_var"] = {k: maxabs(cur[k], arrays[f"var_{t}/{k}"]) for k in VARS}
    s64.close()
    f64_info["float64_port_two_steps_vs_tf"] = port

    # ---- extra observations
    bce_check = None
    if extra.get("loss_function") == "binary_cross_entropy":
        p = preds_0
        e, one = F32(1e-7), F32(1)
        q = np.clip(p, e, F32(1 - 1e-7))
        naive = mask * -(y * np.log(q + e) + (one - y) * np.log(one - q + e))
        pushed = mask * -(y * np.log(q + e) + (one - y) * np.log((one + e) - q))
        bce_check = {
            "tf_loss_0_term": float(mse_0),
            "numpy_f32_as_written": float(naive.astype(np.float64).mean()),
            "numpy_f32_constant_pushdown": float(pushed.astype(np.float64).mean()),
            "n_masked_predictions_clipped_high": int(np.sum((p > F32(1 - 1e-7)) & (mask > 0))),
            "explanation": "TF grappler's constant folding (constant push-down) rewrites (1 - p) + 1e-7 as "
                           "(1 + 1e-7) - p, and float32(1 + 1e-7) = 1 + 2^-23 = 1.00000012.  For a prediction "
                           "clipped to float32(1 - 1e-7) = 1 - 2^-23 the log argument is therefore 2^-22 = "
                           "2.384e-7 (-log = 15.2492) instead of 2^-23 + 1e-7 = 2.192e-7 (-log = 15.3332).  With "
                           "grappler's constant_folding turned off TF gives the as-written value.  Elsewhere the "
                           "effect is a relative 1.9e-8/(1-p) change of the (1-y) term, negligible unless p ~ 1.",
        }
        notes.append("BCE value quirk: TF evaluates log(1 - p + 1e-7) as log((1 + 1e-7) - p) after a grappler "
                     "rewrite, with 1 + 1e-7 rounded to float32 (1 + 2^-23); see bce_check.  It changes the loss "
                     f"value here by {abs(float(naive.astype(np.float64).mean()) - float(mse_0)):.3g} (the "
                     f"{bce_check['n_masked_predictions_clipped_high']} masked predictions clipped at the top), "
                     "not the gradient of clipped elements (zero either way).")
        notes.append(f"BCE: {int(np.sum(p < 1e-7))} of {p.size} predictions at the start are below 1e-7 and "
                     f"{int(np.sum(p > 1 - 1e-7))} above 1-1e-7 (clip_by_value zeroes their gradient; outputs are "
                     "the linear readout, not squashed).")
    if extra.get("dale_ratio"):
        n_zero_out = int(np.sum(start["W_out"] == 0))
        notes.append(f"Dale: the start file's W_out has {n_zero_out} exact zeros (the inhibitory columns, "
                     "zeroed by Dale_out); loaded as raw values their gradient is exactly 0 because TF's "
                     "d|w|/dw = sign(w) = 0 at w = 0 (and Dale_out is 0 there anyway), so they stay 0. "
                     "Raw W_rec inhibitory columns are negative (raw == effective); "
                     "d(|w|*d)/dw = sign(w)*d = +1 there.")
    if fixed is not None:
        notes.append("fixed_weights applied as grad * (1 - fixed) with float64 0/1 numpy arrays "
                     "(tf.multiply casts them to float32); fixed entries keep m = v = 0 and do not move.")
        for k, fw in fixed.items():
            moved = np.any((arrays[f"var_2/{k}"] != raw_start[k]) & (fw == 1))
            assert not moved, k
    if case == "masked":
        notes.append("Masked-out raw weights are 0 in the start file (effective weights are saved) and their "
                     "gradients are exactly 0 (grad_eff * C with C = 0), so they stay 0.")

    notes.append(f"float32 vs float64 gradients at the start: {total_flips} sign mismatches over all "
                 f"{sum(arrays[f'grad_raw_1/{k}'].size for k in VARS)} entries; exact-zero entries: "
                 f"{sum(int(np.sum(arrays[f'grad_raw_1/{k}'] == 0)) for k in VARS)} in float32, "
                 f"{sum(int(np.sum(arrays[f'grad64_raw_1/{k}'] == 0)) for k in VARS)} in float64 (dead relu "
                 "units give exactly-zero W_out gradient columns, TF's relu gradient being (x > 0); masked-out and "
                 "Dale-zeroed weights give exact zeros too).")
    notes.append("A float64 port that runs the same two steps (masking, clip, textbook Adam in f64) lands within "
                 f"{port['step2_var_max_abs_dev']:.3g} of TF's variables after step 2; the worst entry is listed "
                 "in float64_reference.float64_port_two_steps_vs_tf.worst_entry (entries with |g| ~ 1e-7 are in "
                 "Adam's epsilon regime, where the update depends on the gradient's relative error).")
    any_clipped = sorted(set(steps[1]["clipped"]) | set(steps[2]["clipped"]))
    adam_max_k32 = max(v["tf_kernel_f32_emulation"]["var_max_abs_dev"] for s in adam_check.values()
                       for v in s.values())
    adam_max_k32_ulps = max(v["tf_kernel_f32_emulation"]["var_max_ulps"] for s in adam_check.values()
                            for v in s.values())
    adam_max_slots_k32 = max(max(v["tf_kernel_f32_emulation"]["m_max_abs_dev"],
                                 v["tf_kernel_f32_emulation"]["v_max_abs_dev"])
                             for s in adam_check.values() for v in s.values())
    adam_max_tb = max(v["textbook_f64"]["var_max_abs_dev"] for s in adam_check.values() for v in s.values())
    adam_step1_tb = max(v["textbook_f64"]["var_max_abs_dev"] for v in adam_check["step1"].values())
    clip_max = max(v["numpy_f32_clip_max_abs_dev"] for s in clip_check.values() for v in s.values())
    clip_max_ulps = max(v["numpy_f32_clip_max_ulps"] for s in clip_check.values() for v in s.values())

    np.savez_compressed(os.path.join(out_dir, f"{name}.npz"), **arrays)
    meta = {
        "case": case,
        "seed": seed,
        "how": ("tf.compat.v1.reset_default_graph(); tf.compat.v1.set_random_seed(seed); np.random.seed(seed); "
                "m = Basic(model_params) (default GaussianSpectralRadius initializer gets the params as kwargs); "
                f"m.save('{name}_start.npz') before any step; then a fresh Basic(model_params + load_weights_path"
                f"='{name}_start.npz'); outputs_0, states_0 = model.test(x); then RNN.train()'s op sequence "
                "(AdamOptimizer(1e-3).compute_gradients(reg_loss) -> grad*(1-fixed) for fixed_weights -> "
                "clip_by_norm(g, 1.0) per tensor -> apply_gradients), two steps on the same batch."),
        "batch": {"how": f"np.random.seed({BATCH_SEED}); x, y, mask, _ = PerceptualDiscrimination(dt={DT}, "
                         f"tau={TAU}, T={T_TOTAL}, N_batch={N_BATCH}).get_trial_batch(); stored as float32 "
                         "(as fed to the float32 placeholders)"},
        "model_params": json_params(params),
        "train_params": {"learning_rate": LR, "optimizer": "tf.compat.v1.train.AdamOptimizer(learning_rate=0.001)"
                         " (beta1 0.9, beta2 0.999, epsilon 1e-8, all float32)", "clip_grads": True,
                         "fixed_weights": {k: np.asarray(v).tolist() for k, v in fixed.items()} if fixed else None},
        "start_file": f"{name}_start.npz",
        "start_file_notes": "written by PyPI 1.0.0 model.save (np.savez: effective W_in/W_rec/W_out, masks, Dale "
                            "matrices, dale_ratio; float32) right after build, then a 'transfer_function' member "
                            "(0-d object array, pickled tf function, as GitHub master saves) appended; the "
                            "stepping model was loaded from it via load_weights_path (transfer_function also "
                            "passed in params, since 1.0.0 takes it from params, not from the file).",
        "npz_keys": {
            "x, y, mask": "the fixed batch, float32",
            "outputs_0, states_0": "model.test(x) before any step (rec_noise 0); outputs_0 for all 16 trials, "
                                   "states_0 only for the trials listed in states_0_trials (size budget)",
            "loss_0, mse_0, reg_0": "reg_loss, loss term (MSE or BCE), regularizer, before step 1",
            "loss_1, mse_1 / loss_2, mse_2": "reg_loss and loss term after step 1 / step 2, same batch",
            "grad_raw_<t>/<v>": "optimizer.compute_gradients(reg_loss) at step t (before the update)",
            "grad_masked_<t>/<v>": "after grad*(1-fixed) (only when fixed_weights are set; all vars)",
            "grad_clipped_<t>/<v>": "after clip_by_norm(.,1.0): what apply_gradients received",
            "var_<t>/<v>": "raw variable values after step t",
            "m_<t>/<v>, v_<t>/<v>": "Adam slots (tf names <v>/Adam, <v>/Adam_1) after step t",
            "beta1_power_after_2, beta2_power_after_2": "Adam accumulators after step 2 (float32 0.9^3, 0.999^3)",
            "grad64_raw_1/<v>": "float64 gradient of the same objective at the start (independent float64 TF "
                                "graph written in this script), for ports that compute in f64",
            "fixed_weights/<v>": "the fixed_weights arrays (float64 0/1), when set",
        },
        "loss_0": float(loss_0), "mse_0": float(mse_0), "reg_0": float(reg_0),
        "loss_1": float(arrays["loss_1"]), "loss_2": float(arrays["loss_2"]),
        "reg_terms": reg_terms if any(extra.get(k, 0) for k in reg_terms) else None,
        "reg_terms_notes": ("each term = coefficient * mean over effective weights (or over f(states)), evaluated "
                            "at the start; reg_0 is their float32 sum in PsychRNN's order (L1 in/rec/out, L2 "
                            "in/rec/out, firing rate)") if any(extra.get(k, 0) for k in reg_terms) else None,
        "clipping": {"tensors_clipped_step1": steps[1]["clipped"], "tensors_clipped_step2": steps[2]["clipped"],
                     "raw_norms_step1": steps[1]["raw_norms"], "raw_norms_step2": steps[2]["raw_norms"],
                     "any_clipped": any_clipped,
                     "numpy_f32_reclip_max_abs_dev": clip_max, "numpy_f32_reclip_max_ulps": clip_max_ulps,
                     "per_tensor": clip_check,
                     "formula": "TF clip_by_norm: l2 = sqrt(sum(g*g)) (float32); g_clipped = (g*1.0)/max(l2, 1.0). "
                                "When l2 <= 1 the tensor is returned bit-identical."},
        "adam": {
            "optimizer_class": "tf.compat.v1.train.AdamOptimizer (PsychRNN 1.0.0 rnn.py train(): "
                               "train_params.get('optimizer', tf.compat.v1.train.AdamOptimizer(learning_rate="
                               "learning_rate)))",
            "beta_powers_before_step": {"step1": [steps[1]["b1p"], steps[1]["b2p"]],
                                        "step2": [steps[2]["b1p"], steps[2]["b2p"]]},
            "tf_kernel_f32_emulation_max_abs_dev_var": adam_max_k32,
            "tf_kernel_f32_emulation_max_ulps_var": adam_max_k32_ulps,
            "tf_kernel_f32_emulation_max_abs_dev_slots": adam_max_slots_k32,
            "textbook_f64_max_abs_dev_var_step1": adam_step1_tb,
            "textbook_f64_max_abs_dev_var_both_steps": adam_max_tb,
            "textbook_f64_note": "the textbook deviation is the float32 rounding of the stored variable "
                                 "(|var| up to ~1, ulp ~6e-8 at 0.5) plus the float32 constants TF uses "
                                 "(1-0.999f = 0.00099998713, lr = 0.001f, eps = 1e-8f); the float32 kernel "
                                 "emulation with those constants is bit-exact",
            "per_step": adam_check,
            "formula_tf_kernel": "alpha = lr*sqrt(1-beta2_power)/(1-beta1_power); m += (g-m)*(1-beta1); "
                                 "v += (g*g-v)*(1-beta2); var -= (m*alpha)/(sqrt(v)+eps); all float32; "
                                 "beta_power accumulators are float32 variables multiplied by beta after each step",
            "formula_textbook": "lr_t = lr*sqrt(1-b2^t)/(1-b1^t); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; "
                                "var -= lr_t*m/(sqrt(v)+eps) (float64, from the recorded float32 inputs)",
        },
        "gradient_determinism": "raw gradients evaluated twice in a row were bit-identical",
        "psychrnn_train_crosscheck": xcheck,
        "float64_reference": f64_info,
        "bce_check": bce_check,
        "notes": notes + cfg.get("notes", []),
    }
    if "note_extra" in cfg:
        meta["notes"].append(cfg["note_extra"])
    if "mask_recipe" in cfg:
        meta["mask_recipe"] = cfg["mask_recipe"]
    write_json(os.path.join(out_dir, f"{name}.json"), meta)
    print(f"{case}: loss_0 {loss_0:.6g} loss_1 {float(arrays['loss_1']):.6g} clipped {any_clipped} "
          f"adam-k32 dev {adam_max_k32:.3g} ({adam_max_k32_ulps} ulp) textbook dev {adam_max_tb:.3g} "
          f"train() xcheck {worst:.3g} f64 flips {total_flips} f64-port step2 dev "
          f"{port['step2_var_max_abs_dev']:.3g}", file=sys.stderr)
    return meta


def main(argv):
    out_dir = "tests/data"
    only = None
    rest = list(argv)
    while rest:
        a = rest.pop(0)
        if a == "--only":
            only = set(rest.pop(0).split(","))
        else:
            out_dir = a
    os.makedirs(out_dir, exist_ok=True)
    tf = tf_quiet()
    t0 = time.time()
    x, y, mask = fixed_batch()
    cases = case_defs(tf)
    for case, cfg in cases.items():
        if only is None or case in only:
            run_case(tf, out_dir, case, cfg, x, y, mask)
    print(f"done in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
