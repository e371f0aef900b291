"""Peer timings for bench/compare.sh: PsychRNN 1.0.0 (TensorFlow) and a naive PyTorch eager RNN.

Run with the venv python from bench/setup-peers.sh.  Prints one JSON object per line on stdout
(nothing else); logs go to stderr.  Every measurement runs in its own subprocess (so thread settings
and peak RSS are per measurement).  Fixed setup: PerceptualDiscrimination(dt=10, tau=100, T=2000,
N_batch=128), relu, rec_noise 0, Adam lr 1e-3, per-tensor clipping at norm 1, masked MSE.

    python bench/peers.py [--sizes 50,100,256] [--reps 20] [--skip-quickstart] [--tf-threads N]
    python bench/peers.py --check      # PsychRNN's train vs the torch update, 2 steps from one start
    python bench/peers.py --gpu --sizes 1024 --batch 1024   # the torch update on CUDA only
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

B, DT, TAU, T_MS = 128, 10, 100, 2000
ALPHA = DT / TAU
WARMUP = 3
NAMES = ["init_state", "W_in", "W_rec", "W_out", "b_rec", "b_out"]  # trainable, PsychRNN's order
NCPU = len(os.sched_getaffinity(0))

QUICKSTART = """
from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
from psychrnn.backend.models.basic import Basic
pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128)
p = pd.get_task_params(); p['name'] = 'model'; p['N_rec'] = 50
model = Basic(p); model.train(pd); model.destruct()
"""


def log(*a):
    print("peers:", *a, file=sys.stderr, flush=True)


def emit(**rec):
    print(json.dumps(rec), flush=True)


def task():
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
    return PerceptualDiscrimination(dt=DT, tau=TAU, T=T_MS, N_batch=B)


def fixed_batch(path):
    import numpy as np
    d = np.load(path)
    return d["x"], d["y"], d["mask"]


def tf_session_threads(n):
    """PsychRNN opens a bare tf.compat.v1.Session(); inject thread counts when asked (0 = TF default)."""
    if not n:
        return
    import tensorflow as tf
    orig = tf.compat.v1.Session

    def session(*a, **k):
        k.setdefault("config", tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=n, inter_op_parallelism_threads=n))
        return orig(*a, **k)
    tf.compat.v1.Session = session


def tf_threads_info(n):
    return {"threads": n or NCPU, "intra_op": n, "inter_op": n}  # 0: TF's default (all cores)


# ---- workers (run in subprocesses) ------------------------------------------------------------

def w_batch(args):
    import numpy as np
    np.random.seed(0)
    pd = task()
    x, y, m, _ = pd.get_trial_batch()
    np.savez(args.batch_file, x=x, y=y, mask=m.astype(np.float32))
    times = []
    for _ in range(args.reps):
        t = time.perf_counter()
        pd.get_trial_batch()
        times.append((time.perf_counter() - t) * 1e3)
    emit(impl="psychrnn-tf", what="batch", ms=round(statistics.median(times), 2), reps=args.reps)


def tf_train_timed(n_rec, batch, n_updates, train_params=None, start=None):
    """Run PsychRNN's own Basic.train for n_updates on a fixed batch, timing each optimizer sess.run.

    model.sess is wrapped so that the training loop of psychrnn/backend/rnn.py itself (its
    compute_gradients -> clip_by_norm per tensor -> apply_gradients op) is what gets timed.
    """
    import numpy as np
    import tensorflow as tf
    from psychrnn.backend.models.basic import Basic

    class TimedSession:
        def __init__(self, sess):
            self._sess, self.times = sess, []

        def run(self, fetches, *a, **k):
            t = time.perf_counter()
            out = self._sess.run(fetches, *a, **k)
            # apply_gradients of AdamOptimizer is a NoOp group named "Adam"
            if isinstance(fetches, tf.Operation) and fetches.name == "Adam":
                self.times.append((time.perf_counter() - t) * 1e3)
            return out

        def __getattr__(self, name):
            return getattr(self._sess, name)

    x, y, m = batch

    def gen():
        while True:
            yield x, y, m, None

    p = task().get_task_params()
    p.update(name="model", N_rec=n_rec, rec_noise=0.0)
    model = Basic(p)
    model.build()
    if start is not None:  # initial weights (train re-runs the initializer, so these are its start)
        start.update(model.get_weights())
    model.sess = TimedSession(model.sess)
    tp = {"verbosity": False, "loss_epoch": 10 ** 9}
    tp.update(train_params or {})
    # PyPI 1.0.0 loops `while epoch * batch_size < training_iters`: ceil(iters/B) - 1 updates
    tp["training_iters"] = (n_updates + 1) * B
    losses, _, _ = model.train(gen(), tp)
    times = model.sess.times
    assert len(times) == n_updates, f"timed {len(times)} optimizer runs, expected {n_updates}"
    return model, times, losses


def w_tf_update(args):
    import numpy as np
    tf_session_threads(args.tf_threads)
    batch = fixed_batch(args.batch_file)
    for n in args.sizes:
        np.random.seed(n)
        model, times, _ = tf_train_timed(n, batch, WARMUP + args.reps)
        model.destruct()
        emit(impl="psychrnn-tf", what="update", n_rec=n,
             ms=round(statistics.median(times[WARMUP:]), 2), reps=args.reps,
             **tf_threads_info(args.tf_threads))


def torch_model(w, device="cpu"):
    """torch Parameters in NAMES order from a dict of numpy arrays."""
    import torch
    return [torch.nn.Parameter(torch.tensor(w[k], dtype=torch.float32, device=device)) for k in NAMES]


def numpy_init(n_rec, seed):
    """PsychRNN-like scales (gaussian, W_rec at spectral radius 1.1); values don't affect timing."""
    import numpy as np
    r = np.random.default_rng(seed)
    w_rec = r.standard_normal((n_rec, n_rec))
    w_rec *= 1.1 / np.max(np.abs(np.linalg.eigvals(w_rec)))
    return {"init_state": 0.1 + 0.01 * r.standard_normal((1, n_rec)),
            "W_in": 0.1 * r.standard_normal((n_rec, 2)), "W_rec": w_rec,
            "W_out": 0.1 * r.standard_normal((2, n_rec)),
            "b_rec": np.zeros(n_rec), "b_out": np.zeros(2)}


def torch_stepper(params, batch, opt=None):
    """One naive eager update: per-step Python loop, masked MSE, per-tensor clip, Adam."""
    import torch
    init_state, W_in, W_rec, W_out, b_rec, b_out = params
    x, y, m = (torch.from_numpy(a.astype("float32")).to(W_rec.device) for a in batch)
    xs = x.unbind(1)
    opt = opt or torch.optim.Adam(params, lr=1e-3, eps=1e-8)
    relu = torch.relu

    def step():
        opt.zero_grad()
        s = init_state.expand(x.shape[0], -1)
        outs = []
        for u in xs:
            s = (1 - ALPHA) * s + ALPHA * (relu(s) @ W_rec.T + u @ W_in.T + b_rec)
            outs.append(relu(s) @ W_out.T + b_out)
        z = torch.stack(outs, 1)
        loss = ((m * (z - y)) ** 2).mean()
        loss.backward()
        for p in params:
            torch.nn.utils.clip_grad_norm_(p, 1.0)
        opt.step()
        return loss.item()
    return step


def w_torch_update(args):
    import torch
    torch.set_num_threads(args.threads)
    batch = fixed_batch(args.batch_file)
    for n in args.sizes:
        step = torch_stepper(torch_model(numpy_init(n, n)), batch)
        for _ in range(WARMUP):
            step()
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) * 1e3)
        emit(impl="torch-eager", what="update", n_rec=n, ms=round(statistics.median(times), 2),
             reps=args.reps, threads=args.threads, torch=torch.__version__)


def w_torch_gpu(args):
    """The naive eager update on CUDA, B x T 200 synthetic trials (N_in = N_out = 2)."""
    import numpy as np
    import torch
    r = np.random.default_rng(0)
    batch = (r.standard_normal((args.batch, T_MS // DT, 2)), r.standard_normal((args.batch, T_MS // DT, 2)),
             np.ones((args.batch, T_MS // DT, 2)))
    for n in args.sizes:
        step = torch_stepper(torch_model(numpy_init(n, n), "cuda"), batch)
        for _ in range(WARMUP):
            step()
        times = []
        for _ in range(args.reps):
            torch.cuda.synchronize()
            t = time.perf_counter()
            step()  # loss.item() synchronises
            times.append((time.perf_counter() - t) * 1e3)
        emit(impl="torch-eager-cuda", what="update", n_rec=n, batch=args.batch,
             ms=round(statistics.median(times), 2), reps=args.reps, torch=torch.__version__,
             gpu=torch.cuda.get_device_name(0))


def w_check_tf(args):
    """2 updates by PsychRNN's own train; saves start and end weights for w_check_torch."""
    import numpy as np
    import tensorflow as tf
    batch = fixed_batch(args.batch_file)
    np.random.seed(1)
    w0 = {}
    model, times, losses = tf_train_timed(args.sizes[0], batch, 2, {"loss_epoch": 1}, start=w0)
    clips = {o.name.split("/")[0] for o in tf.compat.v1.get_default_graph().get_operations()
             if o.name.startswith("clip_by_norm")}
    w2 = model.get_weights()
    model.destruct()
    np.savez(args.batch_file + ".w.npz", **{f"{s}_{k}": w[k] for s, w in (("w0", w0), ("w2", w2))
                                           for k in NAMES})
    log(f"check: {len(clips)} clip_by_norm scopes in the graph; timed {len(times)} optimizer runs "
        f"({', '.join(f'{t:.1f}' for t in times)} ms); PsychRNN losses after each update "
        f"{[float(v) for v in losses]}")
    sys.exit(0 if len(clips) == 6 and len(times) == 2 else 1)


class TF1Adam:
    """tf.compat.v1.train.AdamOptimizer's update (eps added to the uncorrected sqrt(v)), for --check."""

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        import torch
        self.p, self.lr, self.b1, self.b2, self.eps, self.t = params, lr, b1, b2, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def zero_grad(self):
        for p in self.p:
            p.grad = None

    def step(self):
        import torch
        self.t += 1
        lr_t = self.lr * (1 - self.b2 ** self.t) ** 0.5 / (1 - self.b1 ** self.t)
        with torch.no_grad():
            for p, m, v in zip(self.p, self.m, self.v):
                m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
                p.sub_(lr_t * m / (v.sqrt() + self.eps))


def w_check_torch(args):
    """The torch update from PsychRNN's start weights must land where PsychRNN's train did.

    With TF1's Adam formula it must agree to float rounding; torch.optim.Adam (what is timed)
    puts eps after bias correction, which differs visibly only where |grad| is tiny.
    A separate process: torch.optim and TensorFlow in one process abort (duplicate LLVM options).
    """
    import numpy as np
    import torch
    torch.set_num_threads(1)
    d = np.load(args.batch_file + ".w.npz")
    w0 = {k: d["w0_" + k] for k in NAMES}
    ok = True
    for label in ("TF1 Adam", "torch.optim.Adam"):
        params = torch_model(w0)
        opt = TF1Adam(params) if label == "TF1 Adam" else None
        step = torch_stepper(params, fixed_batch(args.batch_file), opt)
        losses = [step(), step()]
        for k, pt in zip(NAMES, params):
            diff = np.abs(pt.detach().numpy() - d["w2_" + k])
            moved = np.max(np.abs(d["w2_" + k] - w0[k]))
            log(f"check {label:16s} {k:10s}: PsychRNN moved it by {moved:.3e}; |torch - PsychRNN| "
                f"max {diff.max():.2e}, > 1e-5 for {100 * np.mean(diff > 1e-5):.1f}% of elements")
            if opt:
                ok &= bool(moved > 0 and diff.max() < 1e-5)
        losses.append(step())  # the loss after update 2 (PsychRNN's 2nd recorded loss)
        log(f"check {label}: torch losses before updates 1-3 {losses}")
    log("check", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


# ---- orchestration --------------------------------------------------------------------------

def run_worker(argv, env_extra=None, script=None):
    """Run a worker subprocess; pass its stdout lines through; return (lines, peak RSS MB, wall s)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    env.update(env_extra or {})
    cmd = [sys.executable] + (["-c", script] if script else [__file__, "--worker"] + argv)
    with tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        # stdout to a file, not a pipe: os.wait4 must reap the child to get its own rusage
        proc = subprocess.Popen(cmd, stdout=out if not script else sys.stderr, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            sys.exit(f"peers: worker {cmd[1:]} failed with exit code {proc.returncode}")
        out.seek(0)
        lines = [json.loads(line) for line in out if line.strip()]
    return lines, round(ru.ru_maxrss / 1024, 1), wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50,100,256",
                    type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--skip-quickstart", action="store_true")
    ap.add_argument("--tf-threads", type=int, default=0, help="intra/inter-op threads; 0: TF default")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--worker")
    ap.add_argument("--batch-file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu", action="store_true", help="only the torch update on CUDA (bench/gpu.sh)")
    ap.add_argument("--batch", type=int, default=B, help="trials per batch for --gpu")
    args = ap.parse_args()
    if args.worker:
        return {"batch": w_batch, "tf-update": w_tf_update, "torch-update": w_torch_update,
                "torch-gpu": w_torch_gpu, "check-tf": w_check_tf,
                "check-torch": w_check_torch}[args.worker](args)
    if args.gpu:
        argv = ["torch-gpu", "--batch", str(args.batch), "--reps", str(args.reps),
                "--sizes", ",".join(map(str, args.sizes))]
        for rec in run_worker(argv, {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0")})[0]:
            emit(**rec)
        return

    with tempfile.TemporaryDirectory() as tmp:
        bf = os.path.join(tmp, "batch.npz")
        sizes = ",".join(map(str, args.sizes))
        common = ["--batch-file", bf, "--reps", str(args.reps), "--sizes", sizes]
        tft = ["--tf-threads", str(args.tf_threads)]
        log("batch generation")
        for rec in run_worker(["batch", "--batch-file", bf, "--reps", str(max(3, args.reps // 2))])[0]:
            emit(**rec)
        if args.check:
            run_worker(["check-tf"] + common)
            return run_worker(["check-torch"] + common)
        log(f"PsychRNN/TF updates, N_rec {sizes}")
        for rec in run_worker(["tf-update"] + common + tft)[0]:
            emit(**rec)
        for th in (1, 2):
            log(f"torch eager updates, {th} thread(s)")
            thr = {"OMP_NUM_THREADS": str(th), "MKL_NUM_THREADS": str(th)}
            for rec in run_worker(["torch-update", "--threads", str(th)] + common, thr)[0]:
                emit(**rec)
        log("peak RSS of N_rec 256 updates")
        rss_common = ["--batch-file", bf, "--reps", "3", "--sizes", "256"]
        _, rss, _ = run_worker(["tf-update"] + rss_common + tft)
        emit(impl="psychrnn-tf", what="update_rss", n_rec=256, peak_rss_mb=rss,
             **tf_threads_info(args.tf_threads))
        _, rss, _ = run_worker(["torch-update", "--threads", "1"] + rss_common,
                               {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        emit(impl="torch-eager", what="update_rss", n_rec=256, peak_rss_mb=rss, threads=1)
    if not args.skip_quickstart:
        log("PsychRNN quickstart end to end (50,000 trials; a few minutes)")
        prefix = (f"import sys; sys.dont_write_bytecode = True\n"
                  f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
                  f"import peers; peers.tf_session_threads({args.tf_threads})\n")
        _, rss, wall = run_worker(None, script=prefix + QUICKSTART)
        emit(impl="psychrnn-tf", what="quickstart", seconds=round(wall, 1), peak_rss_mb=rss,
             **tf_threads_info(args.tf_threads))


if __name__ == "__main__":
    main()
