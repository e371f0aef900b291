#!/usr/bin/env bash
# Side-by-side benchmark: psychrnn vs PsychRNN 1.0.0 (TensorFlow) vs naive PyTorch eager.
#
#   bash bench/compare.sh [--quick] [--tch]
#
#   --quick  fewer repetitions, no end-to-end quickstart runs (~5 min instead of ~15)
#   --tch    also build with --features tch (libtorch from scripts/setup-libtorch.sh)
#
# B 128 trials x T 200 steps, PerceptualDiscrimination, relu, Adam, per-tensor clipping.
# Prints one table on stdout; raw JSON lines go to bench/results/<date>.jsonl.
# Ratios, not absolute times, are the result.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0 TCH=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --tch) TCH=1 ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done
log() { echo "compare: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p bench/results
RESULTS="bench/results/$(date +%Y-%m-%d-%H%M%S).jsonl"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export CUDA_VISIBLE_DEVICES=""

# ---- (a) peers' venv ----------------------------------------------------------------------------
PY="$(bash bench/setup-peers.sh | tail -n1)"
[ -x "$PY" ] || die "setup-peers.sh gave no python"

FEATURES=()
if [ "$TCH" = 1 ]; then
    eval "$(bash scripts/setup-libtorch.sh | tail -n1)"
    FEATURES=(--features tch)
fi

# Path of an executable from `cargo ... --message-format=json` on stdin.
artifact() {
    "$PY" -c '
import json, sys
kind, name = sys.argv[1:]
exe = [m["executable"] for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name
       and kind in m["target"]["kind"] and m.get("executable")]
print(exe[-1] if exe else "")' "$@"
}

# `/usr/bin/time -v CMD...` -> JSON fields "seconds" and "peak_rss_mb"
timed() {
    local out="$TMP/time.txt"
    /usr/bin/time -v -o "$out" "$@" >&2 || die "failed: $*"
    "$PY" - "$out" <<'PYEOF'
import re, sys
t = open(sys.argv[1]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
wall = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", t).group(1)
sec = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
print(f'"seconds": {sec:.1f}, "peak_rss_mb": {rss / 1024:.1f}')
PYEOF
}

# ---- (b) Rust side --------------------------------------------------------------------------------
# The dev profile builds psychrnn and its dependencies at opt-level 3 (Cargo.toml), as `cargo test`
# and the README's `cargo run` do, so one build serves all three.
log "building and running the Rust bench (cargo bench --profile dev --bench update ${FEATURES[*]})"
cargo bench --profile dev --bench update "${FEATURES[@]}" -- --json >"$TMP/rust.out" || die "cargo bench failed"
grep '^{' "$TMP/rust.out" >"$RESULTS" || true
"$PY" -c 'import json, sys; sys.exit(not any(r.get("impl") == "psychrnn" and r.get("what") == "update"
                                             for r in map(json.loads, open(sys.argv[1]))))' "$RESULTS" ||
    die "cargo bench --profile dev --bench update -- --json printed no psychrnn update lines; it printed:
$(cat "$TMP/rust.out")"

# Peak RSS of the bench binary itself (not of cargo), N_rec 256 updates only.  Same features as
# above, so nothing is rebuilt.
BENCH_BIN="$(cargo bench --profile dev --bench update "${FEATURES[@]}" --no-run --message-format=json 2>/dev/null |
    artifact bench update)"
[ -x "$BENCH_BIN" ] || die "cannot find the update bench binary"
log "peak RSS of psychrnn N_rec 256 updates ($BENCH_BIN)"
# cargo bench runs the binary as `BIN <args> --bench`
m="$(timed "$BENCH_BIN" --json --only-rss 256 --bench)"
echo "{\"impl\": \"psychrnn\", \"what\": \"update_rss\", \"n_rec\": 256, $m}" >>"$RESULTS"

if [ "$QUICK" = 0 ]; then
    CLI="$(cargo build --bin psychrnn "${FEATURES[@]}" --message-format=json 2>/dev/null |
        artifact bin psychrnn)"
    [ -x "$CLI" ] || die "cannot find the psychrnn binary (cargo build --bin psychrnn)"
    log "psychrnn quickstart: $CLI train --task perceptual-discrimination"
    m="$(timed "$CLI" train --task perceptual-discrimination --out "$TMP/pd" --force)"
    echo "{\"impl\": \"psychrnn\", \"what\": \"quickstart\", $m}" >>"$RESULTS"
fi

# ---- (c) peers --------------------------------------------------------------------------------------
PEER_ARGS=()
[ "$QUICK" = 1 ] && PEER_ARGS=(--reps 5 --skip-quickstart)
log "running bench/peers.py ${PEER_ARGS[*]}"
"$PY" bench/peers.py "${PEER_ARGS[@]}" >>"$RESULTS" || die "peers.py failed"

# ---- (d) the table ----------------------------------------------------------------------------------
log "raw results: $RESULTS"
"$PY" - "$RESULTS" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

def get(impl, what, n_rec=None, threads=None, field=None):
    for r in recs:
        if (r["impl"] == impl and r["what"] == what and (n_rec is None or r.get("n_rec") == n_rec)
                and (threads is None or r.get("threads") == threads)):
            return r.get(field or {"quickstart": "seconds", "update_rss": "peak_rss_mb"}.get(what, "ms"))
    return None

cols = [("psychrnn", "psychrnn", None), ("psychrnn-libtorch", "psychrnn-libtorch", None),
        ("PsychRNN/TF", "psychrnn-tf", None), ("PyTorch 1t", "torch-eager", 1),
        ("PyTorch 2t", "torch-eager", 2), ("GEMM floor", "gemm-floor", None)]
rows = [(f"update N_rec {n} (ms)", "update", n, None) for n in (50, 100, 256)] + [
    ("batch generation (ms)", "batch", None, None),
    ("quickstart end to end (s)", "quickstart", None, None),
    ("quickstart peak RSS (MB)", "quickstart", None, "peak_rss_mb"),
    ("update N_rec 256 peak RSS (MB)", "update_rss", 256, None)]
cols = [c for c in cols if any(r["impl"] == c[1] for r in recs)]
head = [""] + [c[0] for c in cols] + ["psychrnn / best peer", "psychrnn / GEMM floor"]
table = [head]
for label, what, n, field in rows:
    vals = [get(impl, what, n, th, field) for _, impl, th in cols]
    by = {c[0]: v for c, v in zip(cols, vals)}
    if all(v is None for v in vals):
        continue
    mine = by.get("psychrnn")
    peers = [v for k, v in by.items() if k.startswith(("PsychRNN/", "PyTorch")) and v is not None]
    floor = by.get("GEMM floor")
    fmt = lambda v: "-" if v is None else f"{v:.3g}" if v < 10 else f"{v:.0f}"
    ratio = lambda a, b: "-" if a is None or not b else f"{a / b:.2f}" if a / b >= 0.1 else f"{a / b:.2g}"
    table.append([label] + [fmt(v) for v in vals]
                 + [ratio(mine, min(peers) if peers else None), ratio(mine, floor)])
w = [max(len(r[i]) for r in table) for i in range(len(head))]
for i, r in enumerate(table):
    print("  ".join(c.ljust(w[0]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(r)))
    if i == 0:
        print("  ".join("-" * x for x in w))
thr = {r["impl"]: r.get("threads") for r in recs if r.get("threads") is not None and r["impl"] != "torch-eager"}
print(f"\nB 128, T 200. Threads: {thr} (PsychRNN/TF: TensorFlow's default, all cores). "
      "Ratios below 1: psychrnn is faster. Ratios, not absolute times, are the result.")

# The performance issue's targets, from the same records.
def best_peer(what, n=None):
    vals = [get(impl, what, n) for impl in ("psychrnn-tf", "torch-eager")]
    vals += [get("torch-eager", what, n, th) for th in (1, 2)]
    vals = [v for v in vals if v is not None]
    return min(vals) if vals else None

checks = []
for n, frac in ((50, 5), (100, 5), (256, 3)):
    mine, peer = get("psychrnn", "update", n), best_peer("update", n)
    if mine and peer:
        checks.append((f"update N_rec {n} <= 1/{frac} of the faster peer", mine / peer, 1 / frac))
mine, floor = get("psychrnn", "update", 256), get("gemm-floor", "update", 256)
if mine and floor:
    checks.append(("update N_rec 256 within 3x of the GEMM floor", mine / floor, 3))
mine, peer = get("psychrnn", "batch"), get("psychrnn-tf", "batch")
if mine and peer:
    checks.append(("batch generation <= 1/100 of PsychRNN's", mine / peer, 1 / 100))
mine, peer = get("psychrnn", "quickstart"), get("psychrnn-tf", "quickstart")
if mine and peer:
    checks.append(("quickstart >= 50x faster (time ratio <= 1/50)", mine / peer, 1 / 50))
mine, bound = get("psychrnn", "update_rss", 256), get("bound", "rss_bound", 256, field="peak_rss_mb")
if mine and bound:
    checks.append((f"peak RSS N_rec 256 <= 2 x (rates + weights) = {bound:.1f} MB", mine / bound, 1))
if checks:
    print("\nTargets (ratio: psychrnn / reference):")
    for label, ratio, limit in checks:
        print(f"  {'met ' if ratio <= limit else 'MISS'}  {label}: {ratio:.3g} (limit {limit:.3g})")
PYEOF
