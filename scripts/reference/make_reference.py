#!/usr/bin/env python3
"""Write reference data from PsychRNN 1.0.0 (PyPI) for the Rust port's tests.

Run with the venv made by scripts/setup-reference.sh:

    $(bash scripts/setup-reference.sh) scripts/reference/make_reference.py [OUT_DIR] [--only a,b,...]

OUT_DIR defaults to tests/data.  Sections (all by default):
    readme rng trials npseed init sim lstm accuracy fixture pickles

Everything is seeded; the data does not depend on the wall clock.  The TF
training in `sim` is repeatable on one machine but CPU float reductions may
differ slightly between machines; each sim_* file is self-consistent
(weights, inputs and outputs from the same run), which is what matters.

Large arrays go into np.savez_compressed files (deflate members); weight files
are written by PsychRNN itself (np.savez, stored members), as PsychRNN does.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickletools
import random
import struct
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

FIXTURE_DEFAULT = os.environ.get("PSYCHRNN_FIXTURE", "/work/shared/fixtures/psychrnn_saved_weights.npz")

# --------------------------------------------------------------------------
# helpers


def pyval(v):
    """numpy scalars / arrays -> plain Python for JSON."""
    if isinstance(v, dict):
        return {str(k): pyval(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [pyval(x) for x in v]
    if isinstance(v, np.ndarray):
        return pyval(v.tolist())
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.str_):
        return str(v)
    return v


def f64bits(x) -> int:
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(pyval(obj), f, indent=1, allow_nan=False)
        f.write("\n")


def savez_c(path, **arrays):
    np.savez_compressed(path, **arrays)


class Out:
    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)

    def p(self, name):
        return os.path.join(self.d, name)


# --------------------------------------------------------------------------
# 1. RNG stream


class LegacyEmu:
    """Pure-Python emulation of numpy's legacy RandomState primitives, fed by
    a list of raw MT19937 32-bit outputs (spec Appendix A).  Used to assert
    that the formulas written into the notes match numpy exactly."""

    def __init__(self, u32):
        self.u = list(int(v) for v in u32)
        self.i = 0
        self.has_gauss = False
        self.gauss = 0.0

    def next32(self):
        v = self.u[self.i]
        self.i += 1
        return v

    def random_sample(self):
        a = self.next32() >> 5
        b = self.next32() >> 6
        return (a * 67108864.0 + b) / 9007199254740992.0

    def randn(self):
        if self.has_gauss:
            self.has_gauss = False
            g = self.gauss
            self.gauss = 0.0
            return g
        while True:
            x1 = 2.0 * self.random_sample() - 1.0
            x2 = 2.0 * self.random_sample() - 1.0
            r2 = x1 * x1 + x2 * x2
            if not (r2 >= 1.0 or r2 == 0.0):
                break
        f = math.sqrt(-2.0 * math.log(r2) / r2)
        self.gauss = f * x1
        self.has_gauss = True
        return f * x2

    def normal(self, mu, sigma):
        return mu + sigma * self.randn()

    def choice_index(self, n):
        if n == 1:
            return 0
        rng = n - 1
        mask = rng
        for s in (1, 2, 4, 8, 16):
            mask |= mask >> s
        while True:
            v = self.next32() & mask
            if v <= rng:
                return v


def legacy_u32(seed, n):
    bg = np.random.MT19937()
    bg._legacy_seeding(seed)
    return bg.random_raw(n)


def section_rng(out: Out):
    seed = 12345
    u32 = legacy_u32(seed, 700)
    assert np.array_equal(u32, np.random.RandomState(seed)._bit_generator.random_raw(700))

    pick = random.Random(0)
    np.random.seed(seed)
    ops = []
    n_ops = 400
    for _ in range(n_ops):
        r = pick.random()
        if r < 0.28:
            v = np.random.random_sample()
            ops.append({"op": "random_sample", "bits": f64bits(v), "value": float(v)})
        elif r < 0.58:
            v = np.random.randn()
            ops.append({"op": "randn", "bits": f64bits(v), "value": float(v)})
        elif r < 0.73:
            mu = round(pick.uniform(-2.0, 2.0), 3)
            sigma = round(pick.uniform(0.05, 3.0), 3)
            v = np.random.normal(mu, sigma)
            ops.append({"op": "normal", "mu": mu, "sigma": sigma, "bits": f64bits(v), "value": float(v)})
        else:
            k = pick.choice([2, 4, 5, 3, 7])
            v = np.random.choice(list(range(k)))
            ops.append({"op": "choice", "n": k, "value": int(v)})

    # Assert the Appendix A formulas reproduce every op from the raw stream.
    emu = LegacyEmu(legacy_u32(seed, 20000))
    gauss_parity = {"randn_from_cache": 0, "randn_fresh_pair": 0}
    for op in ops:
        if op["op"] == "random_sample":
            assert f64bits(emu.random_sample()) == op["bits"], op
        elif op["op"] in ("randn", "normal"):
            gauss_parity["randn_from_cache" if emu.has_gauss else "randn_fresh_pair"] += 1
            v = emu.randn() if op["op"] == "randn" else emu.normal(op["mu"], op["sigma"])
            assert f64bits(v) == op["bits"], op
        else:
            assert emu.choice_index(op["n"]) == op["value"], op
    u32_used = emu.i

    # Equivalence of the exact calls the tasks make with the index form.
    def seq(fn, n=40, s=seed):
        np.random.seed(s)
        return [pyval(fn()) for _ in range(n)]

    coh = [0.1, 0.3, 0.5, 0.7]
    pd_vals = seq(lambda: np.random.choice([0.1, 0.3, 0.5, 0.7]))
    pd_idx = seq(lambda: np.random.choice(list(range(4))))
    assert pd_vals == [coh[i] for i in pd_idx]
    dir_vals = seq(lambda: np.random.choice([0, 1]))
    dir_idx = seq(lambda: np.random.choice(list(range(2))))
    assert dir_vals == dir_idx
    dd_pair = seq(lambda: np.random.choice(5))
    dd_pair_idx = seq(lambda: np.random.choice(list(range(5))))
    assert dd_pair == dd_pair_idx
    dd_dec = seq(lambda: np.random.choice(['>', '<']))
    dd_dec_idx = seq(lambda: np.random.choice(list(range(2))))
    assert dd_dec == [['>', '<'][i] for i in dd_dec_idx]
    unif = seq(lambda: np.random.uniform(0, 1))
    rs = seq(lambda: np.random.random_sample())
    rnd = seq(lambda: np.random.random())
    rnd2 = seq(lambda: np.random.rand())
    assert [f64bits(v) for v in unif] == [f64bits(v) for v in rs] == [f64bits(v) for v in rnd] == [f64bits(v) for v in rnd2]
    # randn(k) arrays continue the same gauss sequence as scalar randn().
    np.random.seed(seed)
    arr = np.concatenate([np.random.randn(2), np.random.randn(3), np.random.randn(16)])
    sc = seq(lambda: np.random.randn(), n=21)
    assert [f64bits(v) for v in arr] == [f64bits(v) for v in sc]

    # seed() resets the gauss cache.
    np.random.seed(seed)
    first = np.random.randn()
    np.random.seed(seed)
    again = np.random.randn()
    assert f64bits(first) == f64bits(again)

    notes = (
        "u32: raw MT19937 outputs after legacy seeding (init_genrand(12345)), i.e. "
        "np.random.RandomState(12345)._bit_generator.random_raw(700). "
        "ops: executed in order on the global state right after np.random.seed(12345) "
        "(a fresh seed, independent of the u32 list); bits = IEEE-754 bits of the float64 result "
        "(value is the same number, for reading). Scalar np.random.randn(), np.random.normal(mu, sigma) "
        "and np.random.choice(list(range(n))) as named; op types picked with Python random.Random(0). "
        "All ops were checked against a pure-Python emulation of spec Appendix A fed by the raw stream: "
        "random_sample = ((a>>5)*2^26 + (b>>6))/2^53; legacy polar gauss returning x2*f and caching x1*f; "
        "normal = mu + sigma*gauss; choice(n) = one u32 & (smallest all-ones mask >= n-1), redrawn while > n-1. "
        "Exact calls in installed PsychRNN 1.0.0: "
        "PerceptualDiscrimination.generate_trial_params: np.random.choice([0.1, 0.3, 0.5, 0.7]) (skipped when "
        "coherence given), np.random.choice([0, 1]), np.random.random() * T/2, np.random.random() * T/4 + T/8; "
        "trial_function per step: sigma * np.random.randn(N_in) (2 gauss). "
        "DelayedDiscrimination.generate_trial_params: np.random.uniform(0, 1) * T/8, * T/4, * T/4, * T/4, * T/8 "
        "(each only when the constructor arg is None), np.random.choice(len(frequency_pairs)) (int form, n=5), "
        "np.random.choice(['>', '<']); trial_function per step: sigma * np.random.randn(N_in). "
        "MatchToCategory.generate_trial_params: 2*pi*np.random.rand(); trial_function per step: "
        "1/(2*dt)*stim_noise*np.random.randn(N_in). "
        "choice_values shows each of these draws the same index as the list(range(n)) form, and that "
        "uniform(0,1), random(), rand() equal random_sample() bit for bit; randn(k) arrays continue the "
        "scalar gauss sequence element by element (cache shared); np.random.seed() resets the gauss cache."
    )
    data = {
        "seed": seed,
        "u32": [int(v) for v in u32],
        "ops": ops,
        "ops_u32_consumed": u32_used,
        "gauss_cases": gauss_parity,
        "choice_values": {
            "seed": seed,
            "n": 40,
            "pd_coherence": {"call": "np.random.choice([0.1, 0.3, 0.5, 0.7])", "values": pd_vals,
                              "index_form": "np.random.choice(list(range(4)))", "indices": pd_idx,
                              "match": True},
            "pd_direction": {"call": "np.random.choice([0, 1])", "values": dir_vals,
                             "index_form": "np.random.choice(list(range(2)))", "indices": dir_idx,
                             "match": True},
            "dd_pair": {"call": "np.random.choice(5)", "values": dd_pair,
                        "index_form": "np.random.choice(list(range(5)))", "indices": dd_pair_idx,
                        "match": True},
            "dd_decision": {"call": "np.random.choice(['>', '<'])", "values": dd_dec,
                            "index_form": "np.random.choice(list(range(2)))", "indices": dd_dec_idx,
                            "match": True},
            "uniform_equals_random_sample": True,
            "randn_array_continues_scalar_sequence": True,
            "reseed_resets_gauss_cache": {"first_randn_bits": f64bits(first), "after_reseed_bits": f64bits(again)},
        },
        "notes": notes,
    }
    write_json(out.p("rng_stream.json"), data)


# --------------------------------------------------------------------------
# tasks


def make_task(kind, **kw):
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
    from psychrnn.tasks.delayed_discrim import DelayedDiscrimination
    from psychrnn.tasks.match_to_category import MatchToCategory
    cls = {"pd": PerceptualDiscrimination, "dd": DelayedDiscrimination, "mtc": MatchToCategory}[kind]
    return cls(**kw)


TASK_NAMES = {"pd": "PerceptualDiscrimination", "dd": "DelayedDiscrimination", "mtc": "MatchToCategory"}


def handpicked(kind, tag, cfg):
    """Trials whose event times fall exactly on the time grid t_k = k*dt, to pin
    strict vs non-strict comparisons."""
    if kind == "pd":
        if tag == "grid":  # dt 10
            return [
                # onset < t strict (t=500 off, 510 on); t < 800 (790 on, 800 off);
                # mask t >= 800; target t > 820 (830 first).
                {"coherence": 0.5, "direction": 0, "stim_noise": 0.0, "onset_time": 500.0, "stim_duration": 300.0},
                # onset 0: t=0 is not > 0; end 250, target from 280.
                {"coherence": 0.7, "direction": 1, "stim_noise": 0.0, "onset_time": 0.0, "stim_duration": 250.0},
                # off-grid onset, on-grid sum 123+377 = 500 exactly.
                {"coherence": 0.1, "direction": 1, "stim_noise": 0.0, "onset_time": 123.0, "stim_duration": 377.0},
            ]
        return [  # dt 7
            # onset 490 = 70*7 (strict), end 700 = 100*7 (mask >=), end+20 = 720 off grid.
            {"coherence": 0.3, "direction": 0, "stim_noise": 0.0, "onset_time": 490.0, "stim_duration": 210.0},
            # onset 301 = 43*7; end 505 off grid; end+20 = 525 = 75*7 (target strict: 525 no, 532 yes).
            {"coherence": 0.5, "direction": 1, "stim_noise": 0.0, "onset_time": 301.0, "stim_duration": 204.0},
        ]
    if kind == "dd":
        if tag == "grid":
            return [
                {"stimulus_1": 100.0, "delay": 400.0, "stimulus_2": 900.0, "decision": 1200.0, "end": 1450.0,
                 "stim_noise": 0.0, "f1": 18, "f2": 10, "choice": 0},
                # t = 0 inside stimulus 1; empty stimulus 2 (500 <= t < 500); decision to the last step.
                {"stimulus_1": 0.0, "delay": 250.0, "stimulus_2": 500.0, "decision": 500.0, "end": 2000.0,
                 "stim_noise": 0.0, "f1": 26, "f2": 34, "choice": 1},
                # decision window is only the last step (1990).
                {"stimulus_1": 10.0, "delay": 20.0, "stimulus_2": 1980.0, "decision": 1990.0, "end": 2000.0,
                 "stim_noise": 0.0, "f1": 10, "f2": 18, "choice": 1},
            ]
        return [
            {"stimulus_1": 70.0, "delay": 350.0, "stimulus_2": 553.0, "decision": 700.0, "end": 994.0,
             "stim_noise": 0.0, "f1": 30, "f2": 22, "choice": 0},
            {"stimulus_1": 0.0, "delay": 7.0, "stimulus_2": 14.0, "decision": 14.0, "end": 1000.0,
             "stim_noise": 0.0, "f1": 14, "f2": 22, "choice": 1},
        ]
    # mtc
    n_in, n_out = cfg["N_in"], cfg["N_out"]
    ch = np.linspace(0, 2 * np.pi, n_in)
    base = {"onset_time": 200, "input_dur": 1000.0, "output_dur": 800.0, "stim_noise": 0.0}
    out = []
    for angle in (0.0, float(np.pi), float(ch[n_in // 3])):
        d = dict(angle=angle, category=int(angle / (2 * np.pi / n_out)))
        d.update(base)
        out.append(d)
    if n_out > 2:  # angle exactly on the 1/N_out category boundary
        a = 2 * np.pi / n_out
        out[2] = dict(angle=float(a), category=int(a / (2 * np.pi / n_out)), **base)
    if tag == "offgrid":
        # Timing keys are trial params too: put every window edge on the dt=7 grid
        # (onset 140 = 20*7, onset+input 700 = 100*7, +output 994 = 142*7 = last step, excluded).
        out.append(dict(angle=float(np.pi / 2), category=int((np.pi / 2) / (2 * np.pi / n_out)),
                        onset_time=140, input_dur=560.0, output_dur=294.0, stim_noise=0.0))
    return out


def section_trials(out: Out):
    grid = {"dt": 10, "tau": 100, "T": 2000}
    off = {"dt": 7, "tau": 100, "T": 1000}
    seeds = {("pd", "grid"): 101, ("pd", "offgrid"): 102, ("dd", "grid"): 201, ("dd", "offgrid"): 202,
             ("mtc", "grid"): 301, ("mtc", "offgrid"): 302}
    for kind in ("pd", "dd", "mtc"):
        for tag, base in (("grid", grid), ("offgrid", off)):
            cfg = dict(base, N_batch=8)
            if kind == "mtc":
                cfg.update({"N_in": 16, "N_out": 2} if tag == "grid" else {"N_in": 8, "N_out": 3})
            task = make_task(kind, **cfg)
            seed = seeds[(kind, tag)]
            np.random.seed(seed)
            trials = []
            for i in range(8):
                p = task.generate_trial_params(1, i)
                p["stim_noise"] = 0.0
                trials.append(p)
            hp = handpicked(kind, tag, cfg)
            trials += hp
            xs, ys, ms = [], [], []
            for p in trials:
                x, y, m = task.generate_trial(p)
                xs.append(x)
                ys.append(y)
                ms.append(m)
            x, y, m = np.array(xs), np.array(ys), np.array(ms)
            assert x.dtype == np.float64 and x.shape[1] == task.N_steps
            name = f"trials_{kind}_{tag}"
            savez_c(out.p(name + ".npz"), x=x, y=y, mask=m)
            write_json(out.p(name + ".json"), {
                "task": TASK_NAMES[kind],
                "tag": tag,
                "config": cfg,
                "N_steps": task.N_steps,
                "seed": seed,
                "n_random": 8,
                "n_handpicked": len(hp),
                "how": "np.random.seed(seed); trials[i] = task.generate_trial_params(1, i) for i < 8 "
                       "with stim_noise set to 0.0, then the hand-picked trials (event times on the t_k = k*dt "
                       "grid); x, y, mask = task.generate_trial(p) per trial (its noise draws are multiplied "
                       "by 0; some x entries may be -0.0). Compare to 1e-6.",
                "trials": trials,
            })


def section_npseed(out: Out):
    cases = [
        ("pd", "npseed_pd", 2020, dict(dt=10, tau=100, T=2000, N_batch=4)),
        ("dd", "npseed_dd", 2021, dict(dt=10, tau=100, T=2000, N_batch=4)),
        ("mtc", "npseed_mtc", 2022, dict(dt=10, tau=100, T=2000, N_batch=4)),
        ("pd", "npseed_pd_offgrid", 7, dict(dt=7, tau=100, T=1000, N_batch=4)),
        ("pd", "npseed_pd_coh", 2023, dict(dt=10, tau=100, T=2000, N_batch=4, coherence=0.3)),
    ]
    for kind, name, seed, cfg in cases:
        np.random.seed(seed)
        task = make_task(kind, **cfg)
        x, y, m, params = task.get_trial_batch()
        cfg_full = dict(cfg)
        if kind == "mtc":
            cfg_full.update(N_in=task.N_in, N_out=task.N_out)
        savez_c(out.p(name + ".npz"), x=x, y=y, mask=m)
        write_json(out.p(name + ".json"), {
            "seed": seed,
            "task": TASK_NAMES[kind],
            "config": cfg_full,
            "N_steps": task.N_steps,
            "how": "np.random.seed(seed); task = Task(**config); x, y, mask, params = task.get_trial_batch() "
                   "(batch counter 1; draws interleaved: params of trial 0, its per-step noise, params of trial 1, ...)",
            "trials": list(params),
        })


# --------------------------------------------------------------------------
# 4. initialisers

INIT_KEYS = ["W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state", "Dale_rec", "Dale_out",
             "input_connectivity", "rec_connectivity", "output_connectivity"]


def replay_init(kind, kw, seed):
    """Re-derive the initializer's random arrays with plain numpy calls in the
    order read from the installed source; asserted equal to the real thing."""
    np.random.seed(seed)
    N_in, N_rec, N_out = kw["N_in"], kw["N_rec"], kw["N_out"]
    which = kw.get("which_rand_init", "glorot_gauss")
    which_rec = kw.get("which_rand_W_rec_init", which)
    lo, hi = kw.get("init_minval", -0.1), kw.get("init_maxval", 0.1)
    c_in = kw.get("input_connectivity", np.ones([N_rec, N_in]))
    c_rec = np.array(kw.get("rec_connectivity", np.ones([N_rec, N_rec])), dtype=float)
    if not kw.get("autapses", True):
        c_rec[np.eye(N_rec) == 1] = 0
    c_out = kw.get("output_connectivity", np.ones([N_out, N_rec]))

    def draw(which, c):
        if which == "const_gauss":
            return np.random.randn(*c.shape)
        if which == "const_unif":
            return (hi - lo) * np.random.rand(*c.shape) + lo
        fan = np.sum(c, axis=1)[:, None] + np.sum(c, axis=0)[None, :]
        if which == "glorot_unif":
            return np.random.uniform(-np.sqrt(6 / fan), np.sqrt(6 / fan))
        return np.random.normal(0, np.sqrt(2 / fan))

    r = {"W_in": draw(which, c_in), "W_out": draw(which, c_out), "W_rec": draw(which_rec, c_rec)}
    r["init_state"] = 0.1 + 0.01 * np.random.randn(N_rec)
    dr = kw.get("dale_ratio")

    def balance(W):
        if dr is None:
            return W
        v = np.ones(N_rec)
        v[int(dr * N_rec):] = dr / (1 - dr)
        n = np.linalg.norm(c_rec @ np.diag(v), axis=1)
        return W @ np.diag(v / n)

    if kind == "GaussianSpectralRadius":
        W = balance(np.random.randn(N_rec, N_rec))
        r["W_rec"] = kw.get("spec_rad", 1.1) * W / np.max(np.abs(np.linalg.eigvals(W)))
    elif kind == "AlphaIdentity":
        r["W_rec"] = balance(np.eye(N_rec) * kw["alpha"])
    return r


def section_init(out: Out):
    from psychrnn.backend import initializations as ini
    mask_rs = np.random.RandomState(5)
    rec_mask = (mask_rs.random_sample((16, 16)) >= 0.3).astype(np.float64)
    cases = [
        ("gsr_dale", "GaussianSpectralRadius", 1101, dict(N_in=2, N_rec=20, N_out=2, dale_ratio=0.8)),
        ("gsr_mask", "GaussianSpectralRadius", 1102,
         dict(N_in=3, N_rec=16, N_out=2, autapses=False, rec_connectivity=rec_mask)),
        ("glorot_unif", "WeightInitializer", 1103, dict(N_in=2, N_rec=12, N_out=2, which_rand_init="glorot_unif")),
        ("const_unif", "WeightInitializer", 1104,
         dict(N_in=2, N_rec=12, N_out=2, which_rand_init="const_unif", init_minval=-0.2, init_maxval=0.3)),
        ("const_gauss", "WeightInitializer", 1105, dict(N_in=2, N_rec=12, N_out=2, which_rand_init="const_gauss")),
        ("alpha_identity", "AlphaIdentity", 1106, dict(N_in=2, N_rec=8, N_out=2, dale_ratio=0.5, alpha=0.5)),
    ]
    import warnings
    for name, cls, seed, kw in cases:
        kw_json = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        kw_call = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            init = getattr(ini, cls)(**kw_call)
        arrs = {k: np.asarray(init.initializations[k]) for k in INIT_KEYS}
        rep = replay_init(cls, kw, seed)
        for k, v in rep.items():
            assert np.allclose(v, arrs[k], rtol=0, atol=1e-14), (name, k)
            if k != "W_rec" or cls == "WeightInitializer":
                assert np.array_equal(v, arrs[k]), (name, k)
        savez_c(out.p(f"init_{name}.npz"), **arrs)
        order = ["W_in = rand_init(input_connectivity)", "W_out = rand_init(output_connectivity)",
                 "W_rec = rand_W_rec_init(rec_connectivity)", "init_state = 0.1 + 0.01*np.random.randn(N_rec)"]
        if cls == "GaussianSpectralRadius":
            order += ["W_rec = np.random.randn(N_rec, N_rec) (overwrites)", "balance_dale_ratio()",
                      "W_rec = spec_rad * W_rec / max|np.linalg.eig(W_rec)[0]|"]
        elif cls == "AlphaIdentity":
            order += ["W_rec = np.eye(N_rec) * alpha (no draw)", "balance_dale_ratio()"]
        write_json(out.p(f"init_{name}.json"), {
            "case": name,
            "class": cls,
            "seed": seed,
            "kwargs": kw_json,
            "kwargs_notes": ("rec_connectivity is the mask as passed; autapses=False zeroes its diagonal in place "
                             "(the npz holds the mask after that)") if name == "gsr_mask" else "",
            "how": "np.random.seed(seed) immediately before Class(**kwargs); npz = the array entries of "
                   "initializer.initializations as numpy made them (float64).",
            "draw_order": order,
            "rand_init_calls": {
                "glorot_gauss": "np.random.normal(0, sqrt(2/(fan_in_i + fan_out_j))) elementwise, C order",
                "glorot_unif": "np.random.uniform(-L, L), L = sqrt(6/(fan_in_i + fan_out_j)); = -L + (L-(-L))*u",
                "const_gauss": "np.random.randn(rows, cols)",
                "const_unif": "(init_maxval - init_minval) * np.random.rand(rows, cols) + init_minval",
            },
            "matches_spec_appendix_A": True,
            "verified": "arrays re-derived with plain numpy calls in draw_order; bit-identical (W_rec of "
                        "GaussianSpectralRadius within 1e-14: eig vs eigvals)",
        })


# --------------------------------------------------------------------------
# 5. simulator vs TF test()


def tf_quiet():
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    try:
        tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    except Exception:
        pass
    return tf


def npy_bytes(arr) -> bytes:
    b = io.BytesIO()
    np.save(b, arr, allow_pickle=True)
    return b.getvalue()


def add_npz_member(path, key, arr):
    """Append one member to an existing (np.savez-written) npz, leaving the others byte-identical."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf:
        assert key + ".npy" not in zf.namelist()
        zf.writestr(key + ".npy", npy_bytes(arr))


def section_sim(out: Out, iters=800):
    tf = tf_quiet()
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
    from psychrnn.backend.models.basic import Basic
    from psychrnn.backend.simulation import BasicSimulator, relu

    def conn(rs, shape):
        return (rs.random_sample(shape) >= 0.3).astype(np.float64)

    cases = []
    # plain
    cases.append(("plain", 3001, dict(N_rec=30), tf.nn.relu, relu))
    # dale: 1.0.0 defaults Dale_out to the +-1 Dale_rec; pass master's 1/0 Dale_out explicitly.
    n_rec = 30
    n_e = int(0.8 * n_rec)
    dale_out = np.diag(np.r_[np.ones(n_e), np.zeros(n_rec - n_e)])
    cases.append(("dale", 3002, dict(N_rec=n_rec, dale_ratio=0.8, Dale_out=dale_out), tf.nn.relu, relu))
    rs = np.random.RandomState(3003)
    cases.append(("masked", 3003, dict(N_rec=30, autapses=False,
                                       input_connectivity=conn(rs, (30, 2)),
                                       rec_connectivity=conn(rs, (30, 30)),
                                       output_connectivity=conn(rs, (2, 30))), tf.nn.relu, relu))
    cases.append(("tanh", 3004, dict(N_rec=20, transfer_function=tf.nn.tanh), tf.nn.tanh, np.tanh))

    report = {}
    for name, seed, extra, tf_fn, np_fn in cases:
        tf.compat.v1.reset_default_graph()
        tf.compat.v1.set_random_seed(seed)
        np.random.seed(seed)
        pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=8)
        params = dict(pd.get_task_params())
        params.update(name="sim_" + name, N_in=2, N_out=2, rec_noise=0.0)
        extra_json = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in extra.items()
                      if k != "transfer_function"}
        params.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in extra.items()})
        model = Basic(params)
        train_params = {"training_iters": iters, "verbosity": False, "learning_rate": 0.001}
        losses, t_train, _ = model.train(pd, train_params)
        wpath = out.p(f"sim_{name}_weights.npz")
        if os.path.exists(wpath):
            os.remove(wpath)
        model.save(wpath)
        # GitHub master's save also writes the transfer function; PyPI 1.0.0 does not. Append it.
        add_npz_member(wpath, "transfer_function", np.array(tf_fn, dtype=object))
        x, y, mask, _ = pd.get_trial_batch()
        outputs, states = model.test(x)
        acc = PerceptualDiscrimination.accuracy_function(pd, y, outputs, mask)
        sim = BasicSimulator(weights_path=wpath, params={"dt": 10, "tau": 100}, transfer_function=np_fn)
        s_out, s_states = sim.run_trials(x)
        d_out = float(np.max(np.abs(s_out - outputs)))
        d_st = float(np.max(np.abs(s_states - states)))
        model.destruct()
        np.savez_compressed(out.p(f"sim_{name}_io.npz"), x=x, outputs=outputs, states=states, y=y, mask=mask,
                            accuracy=np.array(acc, dtype=np.float64), alpha=np.array(0.1))
        report[name] = dict(max_abs_out=d_out, max_abs_states=d_st)
        write_json(out.p(f"sim_{name}.json"), {
            "case": name,
            "seed": seed,
            "how": "tf.compat.v1.reset_default_graph(); tf.compat.v1.set_random_seed(seed); np.random.seed(seed); "
                   "pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=8); params = "
                   "pd.get_task_params() + model params; Basic(params) (default GaussianSpectralRadius "
                   "initializer gets params as kwargs); model.train(pd, train_params); model.save(weights); "
                   "x, y, mask, _ = pd.get_trial_batch(); outputs, states = model.test(x)",
            "model_params": dict(name="sim_" + name, N_in=2, N_out=2, N_steps=200, N_batch=8, dt=10, tau=100,
                                 T=2000, rec_noise=0.0, **extra_json,
                                 transfer_function=f"tf.nn.{tf_fn.__name__}"),
            "train_params": train_params,
            "updates": int(math.ceil(iters / 8)) - 1,
            "losses": [float(v) for v in losses],
            "accuracy": float(acc),
            "alpha": 0.1,
            "dale_out": ("passed explicitly as diag(1 x n_E, 0 x n_I) (GitHub master default); PyPI 1.0.0's own "
                         "default would be the +-1 Dale_rec") if name == "dale" else None,
            "weights_file_notes": "written by PyPI 1.0.0 model.save (np.savez: effective W_in/W_rec/W_out, Adam "
                                  "slots, dale_ratio), then a 'transfer_function' member (0-d object array, "
                                  "pickled tf function, as GitHub master saves) appended; other members untouched.",
            "numpy_simulator_vs_tf": {"max_abs_outputs": d_out, "max_abs_states": d_st},
        })
        print(f"sim {name}: acc {acc:.3f} final loss {losses[-1]:.5f} sim-vs-tf out {d_out:.2e} states {d_st:.2e}",
              file=sys.stderr)
    return report


def section_lstm(out: Out, iters=400):
    """PsychRNN's LSTM (h = o*sigmoid(c)): trained briefly, saved, run by TF and LSTMSimulator."""
    tf = tf_quiet()
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
    from psychrnn.backend.models.lstm import LSTM
    from psychrnn.backend.simulation import LSTMSimulator

    seed = 3101
    tf.compat.v1.reset_default_graph()
    tf.compat.v1.set_random_seed(seed)
    np.random.seed(seed)
    pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=8)
    params = dict(pd.get_task_params())
    params.update(name="lstm_ref", N_in=2, N_out=2, N_rec=12, rec_noise=0.0)
    model = LSTM(params)
    train_params = {"training_iters": iters, "verbosity": False, "learning_rate": 0.01}
    losses, _, _ = model.train(pd, train_params)
    wpath = out.p("lstm_weights.npz")
    if os.path.exists(wpath):
        os.remove(wpath)
    model.save(wpath)
    x, y, mask, _ = pd.get_trial_batch()
    outputs, states = model.test(x)
    sim = LSTMSimulator(weights_path=wpath, params={"dt": 10, "tau": 100})
    s_out, s_states = sim.run_trials(x)
    model.destruct()
    np.savez_compressed(out.p("lstm_io.npz"), x=x, outputs=outputs, states=states, sim_outputs=s_out,
                        sim_states=s_states)
    d = float(np.max(np.abs(s_out - outputs)))
    write_json(out.p("lstm.json"), {
        "seed": seed,
        "how": "tf.compat.v1.reset_default_graph(); tf.compat.v1.set_random_seed(seed); np.random.seed(seed); "
               "pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=8); LSTM(params with N_rec=12); "
               "model.train(pd, train_params); model.save(weights); x = pd.get_trial_batch()[0]; "
               "outputs, states = model.test(x); LSTMSimulator(weights_path).run_trials(x)",
        "train_params": train_params,
        "losses": [float(v) for v in losses],
        "lstm_simulator_vs_tf_max_abs_outputs": d,
    })
    print(f"lstm: final loss {losses[-1]:.5f} simulator-vs-tf {d:.2e}", file=sys.stderr)
    return d


# --------------------------------------------------------------------------
# 6. accuracy


def section_accuracy(out: Out):
    for kind, seed in (("pd", 4001), ("dd", 4002), ("mtc", 4003)):
        np.random.seed(seed)
        task = make_task(kind, dt=10, tau=100, T=2000, N_batch=12)
        x, y, mask, _ = task.get_trial_batch()
        rs = np.random.RandomState(seed + 100)
        outputs = (y + rs.normal(0, 0.6, size=y.shape)).astype(np.float32)
        # trials 0, 1: both channels exactly equal (argmax tie -> index 0)
        outputs[0, :, 1] = outputs[0, :, 0]
        outputs[1, :, :] = np.float32(0.25)
        # trial 2: all-zero mask (truth = chosen = 0 -> correct)
        mask = mask.copy()
        mask[2] = 0.0
        # trial 3: outputs favour the wrong channel strongly
        outputs[3] = (1.0 - y[3]).astype(np.float32)
        acc = task.accuracy_function(y, outputs, mask)
        savez_c(out.p(f"accuracy_{kind}.npz"), y=y, mask=mask, outputs=outputs,
                accuracy=np.array(acc, dtype=np.float64))
        print(f"accuracy {kind}: {acc}", file=sys.stderr)


# --------------------------------------------------------------------------
# 7. fixture


def section_fixture(out: Out, fixture=FIXTURE_DEFAULT):
    tf = tf_quiet()
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
    from psychrnn.backend.models.basic import Basic
    from psychrnn.backend.simulation import BasicSimulator
    np.random.seed(7)
    pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=6)
    x, y, mask, _ = pd.get_trial_batch()
    sim = BasicSimulator(weights_path=fixture, params={"dt": 10, "tau": 100})
    outputs, states = sim.run_trials(x)
    acc = pd.accuracy_function(y, outputs, mask)
    savez_c(out.p("fixture_bsim.npz"), x=x, outputs=outputs, states=states, y=y, mask=mask,
            accuracy=np.array(acc, dtype=np.float64))
    tf.compat.v1.reset_default_graph()
    params = dict(name="fixture_tf", N_in=2, N_rec=50, N_out=2, N_steps=200, N_batch=6, dt=10, tau=100,
                  rec_noise=0.0, load_weights_path=fixture)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Basic(params)
        tf_out, tf_states = model.test(x)
    model.destruct()
    d = dict(max_abs_outputs=float(np.max(np.abs(tf_out - outputs))),
             max_abs_states=float(np.max(np.abs(tf_states - states))))
    print(f"fixture: accuracy {acc}, TF vs BasicSimulator {d}", file=sys.stderr)
    return d


# --------------------------------------------------------------------------
# 8. pickles


def pickle_globals(npy: bytes):
    """(module, qualname) pairs that the pickle inside a .npy member imports."""
    start = npy.index(b"\n", 10) + 1
    pushes = []
    memo = {}
    found = []
    for op, arg, _ in pickletools.genops(npy[start:]):
        name = op.name
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            pushes.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            pushes.append(memo.get(arg))
        elif name == "MEMOIZE":
            memo[len(memo)] = pushes[-1] if pushes else None
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = pushes[-1] if pushes else None
        elif name == "STACK_GLOBAL":
            found.append((pushes[-2], pushes[-1]))
            pushes.append(None)
        elif name in ("GLOBAL", "INST"):
            mod, nm = arg.split(" ", 1)
            found.append((mod, nm))
            pushes.append(None)
        else:
            pushes.append(None)
    protocol = npy[start + 1] if npy[start] == 0x80 else None
    return found, protocol


def section_pickles(out: Out):
    tf = tf_quiet()
    fns = {"tf.nn.relu": tf.nn.relu, "tf.nn.tanh": tf.nn.tanh, "tf.nn.sigmoid": tf.nn.sigmoid,
           "tf.nn.softplus": tf.nn.softplus, "tf.identity": tf.identity}
    entries = {}
    for public, fn in fns.items():
        npy = npy_bytes(np.array(fn, dtype=object))
        g, proto = pickle_globals(npy)
        fn_globals = [p for p in g if not p[0].startswith("numpy")]
        assert len(fn_globals) == 1, g
        back = np.load(io.BytesIO(npy), allow_pickle=True)
        assert back.shape == () and back.item() is fn, public
        entries[public] = {
            "module": fn_globals[0][0],
            "qualname": fn_globals[0][1],
            "public_module": fn.__module__,
            "public_qualname": fn.__qualname__,
            "__name__": fn.__name__,
            "all_globals": [list(p) for p in g],
            "pickle_protocol": proto,
            "npy_hex": npy.hex(),
            "loads_back": True,
        }
    npy_none = npy_bytes(np.array(None, dtype=object))
    back = np.load(io.BytesIO(npy_none), allow_pickle=True)
    assert back.shape == () and back.item() is None
    g, proto = pickle_globals(npy_none)
    # The fixture (written by an older numpy) for comparison.
    fixture_none = None
    if os.path.exists(FIXTURE_DEFAULT):
        with zipfile.ZipFile(FIXTURE_DEFAULT) as zf:
            fb = zf.read("dale_ratio.npy")
        fg, fproto = pickle_globals(fb)
        fixture_none = {"npy_hex": fb.hex(), "globals": [list(p) for p in fg], "pickle_protocol": fproto}
    import tensorflow as _tf
    write_json(out.p("tf_pickles.json"), {
        "numpy_version": np.__version__,
        "tensorflow_version": _tf.__version__,
        "how": "npy_hex = the bytes np.save writes for np.array(fn, dtype=object) (a 0-d object array), "
               "i.e. what np.savez stores as the 'transfer_function.npy' member; module/qualname = the "
               "function's (module, name) pair that the pickle imports (STACK_GLOBAL under protocol 4); "
               "all_globals also lists numpy's reconstruct helpers. Each loads back with "
               "np.load(allow_pickle=True) to the same object.",
        "functions": entries,
        "none_object_array": {
            "npy_hex": npy_none.hex(),
            "globals": [list(p) for p in g],
            "pickle_protocol": proto,
            "loads_back": True,
        },
        "fixture_dale_ratio_none": fixture_none,
    })
    return {k: (v["module"], v["qualname"]) for k, v in entries.items()}


# --------------------------------------------------------------------------


README = """# Reference data from PsychRNN 1.0.0 (PyPI)

Written by `scripts/reference/make_reference.py` (run with the venv python printed by
`scripts/setup-reference.sh`); every file is seeded and regenerates identically on one machine.
Each `.json` says how its data was made (`how`, seeds, constructor kwargs).

- `rng_stream.json`: raw MT19937 outputs after legacy seeding, a mixed op sequence on
  `np.random.seed(12345)` (float64 results as IEEE bits), and the exact calls the tasks make.
- `trials_<pd|dd|mtc>_<grid|offgrid>.{npz,json}`: noise-free trials (`stim_noise` 0) from
  `generate_trial(params)`, including hand-picked trials with event times on the time grid.
- `npseed_<task>[_offgrid|_coh].{npz,json}`: `np.random.seed(S)`, then `get_trial_batch()`.
- `init_<case>.{npz,json}`: initializer arrays (float64) after `np.random.seed(S)`.
- `sim_<case>_weights.npz`: a trained Basic model saved by PsychRNN (plus a `transfer_function`
  member, as GitHub master writes); `sim_<case>_io.npz`: `x`, TF `test()` `outputs`/`states`
  (float32), `y`, `mask`, `accuracy`, `alpha`; `sim_<case>.json`: the params.
- `accuracy_<task>.npz`: `y`, `mask`, float32 `outputs` (with argmax ties and an all-zero-mask
  trial) and the task's `accuracy_function` value.
- `fixture_bsim.npz`: `BasicSimulator` run of `shared/fixtures/psychrnn_saved_weights.npz`.
- `tf_pickles.json`: `.npy` bytes (hex) of 0-d object arrays holding TF transfer functions
  and None, with the module/qualname each pickle imports.

Large arrays are in `np.savez_compressed` files (deflate members); weight files are `np.savez`
(stored members), as PsychRNN writes them.
"""


def main(argv):
    args = [a for a in argv[1:]]
    only = None
    if "--only" in args:
        i = args.index("--only")
        only = set(args[i + 1].split(","))
        del args[i:i + 2]
    out = Out(args[0] if args else "tests/data")
    summary = {}

    def want(s):
        return only is None or s in only

    if want("readme"):
        with open(out.p("README.md"), "w") as f:
            f.write(README)
    if want("rng"):
        section_rng(out)
    if want("trials"):
        section_trials(out)
    if want("npseed"):
        section_npseed(out)
    if want("init"):
        section_init(out)
    if want("accuracy"):
        section_accuracy(out)
    if want("pickles"):
        summary["pickles"] = section_pickles(out)
    if want("fixture"):
        summary["fixture_tf_vs_bsim"] = section_fixture(out)
    if want("sim"):
        summary["sim_numpy_vs_tf"] = section_sim(out)
    if want("lstm"):
        summary["lstm_simulator_vs_tf"] = section_lstm(out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(sys.argv)
