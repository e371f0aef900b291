#!/usr/bin/env python3
"""PsychRNN's BasicSimulator on the weight files psychrnn wrote (tests/data/written_*_weights.npz).

Usage: python bsim_outputs.py [DATA_DIR]   (default tests/data)

For each written_<case>_weights.npz, loads it with np.load(allow_pickle=True) (so the pickled
dale_ratio / transfer_function must unpickle), runs BasicSimulator(weights_path=..., params
{'dt': 10, 'tau': 100}) with the numpy counterpart of the file's transfer function on the `x`
of fixture_bsim.npz, and writes written_<case>_bsim.npz with `outputs` and `states` (float64).
"""
import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
from psychrnn.backend.simulation import BasicSimulator  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from check_weights import numpy_transfer  # noqa: E402

data = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
x = np.load(os.path.join(data, "fixture_bsim.npz"))["x"]
for path in sorted(glob.glob(os.path.join(data, "written_*_weights.npz"))):
    w = np.load(path, allow_pickle=True)
    tf_fn = w["transfer_function"].item() if "transfer_function" in w.files else None
    fn, name = numpy_transfer(tf_fn)
    dale = w["dale_ratio"].item()
    sim = BasicSimulator(weights_path=path, params={"dt": 10, "tau": 100}, transfer_function=fn)
    outputs, states = sim.run_trials(x)
    out = path.replace("_weights.npz", "_bsim.npz")
    np.savez(out, outputs=outputs, states=states)
    print(f"{out}: transfer {name}, dale_ratio {dale}, outputs {outputs.shape}")
