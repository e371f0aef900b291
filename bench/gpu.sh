#!/usr/bin/env bash
# GPU benchmark: one training update (N_rec 1024, B 1024, T 200, relu, Adam, clipping) on CUDA,
# psychrnn on libtorch-cuda next to a naive PyTorch eager loop on the same GPU. Runs in minutes.
#
#   bash bench/gpu.sh [--sizes 1024] [--batch 1024] [--reps 10] [--cpu]
#
#   --cpu   the same pipeline with libtorch on the CPU and PyTorch on the CPU, at whatever sizes
#           are given (a check of this script on a machine without a GPU)
#
# What it needs, in this order of preference:
#   - PSYCHRNN_BENCH_BIN: an update bench binary built elsewhere with `--features tch` against a
#     libtorch whose version matches the one found at run time (LIBTORCH / LD_LIBRARY_PATH set);
#   - otherwise cargo: it runs scripts/setup-libtorch.sh --cuda (PyPI) unless LIBTORCH or
#     LIBTORCH_USE_PYTORCH is already set, then `cargo bench --features tch --no-run`.
#   - PyTorch with CUDA in `python3` (PYTHON=...) for the peer row; skipped with a note if absent.
# Prints JSON lines, then a two-row table: ms per update and psychrnn / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=1024 BATCH=1024 REPS=10 CPU=0
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES="$2"; shift ;;
        --batch) BATCH="$2"; shift ;;
        --reps) REPS="$2"; shift ;;
        --cpu) CPU=1 ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
log() { echo "gpu: $*" >&2; }
PYTHON="${PYTHON:-python3}"
RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT
if [ "$CPU" = 1 ]; then DEVICE=libtorch; MODE=cpu; else DEVICE=libtorch-cuda; MODE=cuda; fi

# ---- psychrnn on libtorch ------------------------------------------------------------------------
BIN="${PSYCHRNN_BENCH_BIN:-}"
if [ -z "$BIN" ]; then
    command -v cargo >/dev/null || { log "no cargo and no PSYCHRNN_BENCH_BIN: cannot run psychrnn"; exit 1; }
    if [ -z "${LIBTORCH:-}${LIBTORCH_USE_PYTORCH:-}" ]; then
        if [ "$MODE" = cuda ]; then ENV_LINE="$(bash scripts/setup-libtorch.sh --cuda | tail -n1)"
        else ENV_LINE="$(bash scripts/setup-libtorch.sh | tail -n1)"; fi
        # shellcheck disable=SC1090
        source "${ENV_LINE#source }"
    fi
    log "building the update bench with --features tch"
    BIN="$(cargo bench --bench update --features tch --no-run --message-format=json 2>/dev/null |
        "$PYTHON" -c '
import json, sys
exe = [m["executable"] for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "update" and m.get("executable")]
print(exe[-1] if exe else "")')"
fi
[ -x "$BIN" ] || { log "no bench binary ($BIN)"; exit 1; }
log "psychrnn ($DEVICE): $BIN"
"$BIN" --json --device "$DEVICE" --sizes "$SIZES" --batch "$BATCH" --reps "$REPS" | tee -a "$RESULTS"

# ---- PyTorch eager on the same device ------------------------------------------------------------
if "$PYTHON" -c "import torch, sys; sys.exit(not ($CPU or torch.cuda.is_available()))" 2>/dev/null; then
    if [ "$CPU" = 1 ]; then
        # peers.py's CPU worker times B 128 PsychRNN batches; here the batch size is ours.
        "$PYTHON" - "$SIZES" "$BATCH" "$REPS" <<'PYEOF' | tee -a "$RESULTS"
import sys, time, statistics, json
sys.path.insert(0, "bench")
import numpy as np, torch, peers
sizes, batch, reps = [int(s) for s in sys.argv[1].split(",")], int(sys.argv[2]), int(sys.argv[3])
r = np.random.default_rng(0)
data = tuple(r.standard_normal((batch, 200, 2)) for _ in range(2)) + (np.ones((batch, 200, 2)),)
for n in sizes:
    step = peers.torch_stepper(peers.torch_model(peers.numpy_init(n, n)), data)
    [step() for _ in range(peers.WARMUP)]
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); step(); ts.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"impl": "torch-eager", "what": "update", "n_rec": n, "batch": batch,
                      "ms": round(statistics.median(ts), 2), "torch": torch.__version__}))
PYEOF
    else
        "$PYTHON" bench/peers.py --gpu --sizes "$SIZES" --batch "$BATCH" --reps "$REPS" | tee -a "$RESULTS"
    fi
else
    log "no PyTorch with CUDA in $PYTHON: the peer row is skipped"
fi

# ---- table ---------------------------------------------------------------------------------------
"$PYTHON" - "$RESULTS" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ups = [r for r in recs if r.get("what") == "update" and r["impl"] != "gemm-floor"]
for n in sorted({r["n_rec"] for r in ups}):
    mine = next((r["ms"] for r in ups if r["n_rec"] == n and r["impl"].startswith("psychrnn")), None)
    peer = next((r["ms"] for r in ups if r["n_rec"] == n and r["impl"].startswith("torch")), None)
    ratio = f"{mine / peer:.2f}" if mine and peer else "-"
    print(f"N_rec {n}, B {ups[0].get('batch')}: psychrnn {mine} ms, PyTorch eager {peer} ms, "
          f"psychrnn / PyTorch {ratio}")
PYEOF
