#!/usr/bin/env python3
"""Check a weights file and a simulation against PsychRNN 1.0.0 (PyPI).

Usage: python check_weights.py WEIGHTS.npz IO.npz

IO.npz holds `x` (float32 or float64, [B, T, N_in]), `outputs` [B, T, N_out]
and `states` [B, T, N_rec] computed by the Rust port, and optionally 0-d
arrays `dt` and `tau` (defaults 10 and 100).

Steps:
  (a) np.load(WEIGHTS, allow_pickle=True) and read every key, unwrapping the
      0-d `dale_ratio` and `transfer_function` with .item();
  (b) BasicSimulator(weights_path=WEIGHTS, params={'dt', 'tau'}) with the numpy
      counterpart of the file's transfer function (relu when absent) runs x;
      outputs and states are compared with IO's;
  (c) PsychRNN's Basic with load_weights_path=WEIGHTS (N_batch = B,
      N_steps = T, rec_noise 0) runs model.test(x); compared likewise.
      PyPI 1.0.0 does not read `transfer_function` from the file, so the
      file's function is passed as params['transfer_function'].

Exit status: 0 if every max |difference| <= 1e-5, 1 otherwise, 2 when the
files cannot be loaded or used (the error is printed).
"""
from __future__ import annotations

import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

ATOL = 1e-5


def numpy_transfer(tf_fn):
    """The numpy function BasicSimulator should use for a TF transfer function."""
    from psychrnn.backend.simulation import relu, sigmoid
    if tf_fn is None:
        return relu, "relu"
    name = getattr(tf_fn, "__name__", str(tf_fn))
    table = {
        "relu": relu,
        "tanh": np.tanh,
        "sigmoid": sigmoid,
        "softplus": lambda v: np.logaddexp(0.0, v),
        "identity": lambda v: v,
    }
    if name not in table:
        raise ValueError(f"no numpy counterpart for transfer function {tf_fn!r}")
    return table[name], name


def fail_load(msg):
    print(f"LOAD ERROR: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    wpath, iopath = argv[1], argv[2]
    try:
        # (a) every key
        w = np.load(wpath, allow_pickle=True)
        weights = {}
        for k in w.files:
            weights[k] = w[k]
        dale_ratio = None
        if "dale_ratio" in weights:
            dale_ratio = np.asarray(weights["dale_ratio"]).item()
        tf_fn = None
        if "transfer_function" in weights:
            tf_fn = np.asarray(weights["transfer_function"]).item()
            if not callable(tf_fn):
                raise ValueError(f"transfer_function is not callable: {tf_fn!r}")
        for k in ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state"):
            if k not in weights:
                raise KeyError(f"weights file lacks {k!r}")
        N_rec, N_in = weights["W_in"].shape
        N_out = weights["W_out"].shape[0]

        io = np.load(iopath, allow_pickle=False)
        x = io["x"]
        ref_out = io["outputs"]
        ref_states = io["states"]
        dt = float(io["dt"]) if "dt" in io.files else 10.0
        tau = float(io["tau"]) if "tau" in io.files else 100.0
        if x.ndim != 3 or x.shape[2] != N_in:
            raise ValueError(f"x has shape {x.shape}, expected [B, T, {N_in}]")
        B, T = x.shape[0], x.shape[1]
        if ref_out.shape != (B, T, N_out):
            raise ValueError(f"outputs has shape {ref_out.shape}, expected {(B, T, N_out)}")
        if ref_states.shape != (B, T, N_rec):
            raise ValueError(f"states has shape {ref_states.shape}, expected {(B, T, N_rec)}")
        np_fn, fn_name = numpy_transfer(tf_fn)
        print(f"weights: {len(weights)} keys, N_in {N_in} N_rec {N_rec} N_out {N_out}, "
              f"dale_ratio {dale_ratio!r}, transfer_function "
              f"{'(absent: relu)' if tf_fn is None else tf_fn.__module__ + '.' + tf_fn.__qualname__}; "
              f"x {x.dtype} {x.shape}, dt {dt}, tau {tau}")

        # (b) NumPy simulator
        from psychrnn.backend.simulation import BasicSimulator
        sim = BasicSimulator(weights_path=wpath, params={"dt": dt, "tau": tau}, transfer_function=np_fn)
        s_out, s_states = sim.run_trials(x)

        # (c) TF model
        import tensorflow as tf
        tf.get_logger().setLevel("ERROR")
        from psychrnn.backend.models.basic import Basic
        import warnings
        tf.compat.v1.reset_default_graph()
        params = dict(name=f"check_weights_{os.getpid()}", N_in=N_in, N_rec=N_rec, N_out=N_out,
                      N_steps=T, N_batch=B, dt=dt, tau=tau, rec_noise=0.0, load_weights_path=wpath)
        if tf_fn is not None:
            params["transfer_function"] = tf_fn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Basic(params)
            t_out, t_states = model.test(x)
        model.destruct()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        fail_load(f"{type(e).__name__}: {e}")

    def mad(a, b):
        return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))

    diffs = {
        "simulator outputs vs IO": mad(s_out, ref_out),
        "simulator states vs IO": mad(s_states, ref_states),
        "tf test outputs vs IO": mad(t_out, ref_out),
        "tf test states vs IO": mad(t_states, ref_states),
    }
    info = {
        "(info) tf vs simulator outputs": mad(t_out, s_out),
        "(info) tf vs simulator states": mad(t_states, s_states),
    }
    ok = True
    for k, v in diffs.items():
        good = bool(np.isfinite(v)) and v <= ATOL
        ok &= good
        print(f"{k}: max abs diff {v:.3e} {'ok' if good else 'FAIL'} (atol {ATOL:g})")
    for k, v in info.items():
        print(f"{k}: max abs diff {v:.3e}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv)
