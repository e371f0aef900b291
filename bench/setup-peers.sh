#!/usr/bin/env bash
# Set up the Python venv holding the benchmark peers: PsychRNN 1.0.0 (TensorFlow CPU) and PyTorch.
#
#   venv: ${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}/bench-venv
#
# Idempotent: does nothing (beyond printing the path) when the venv already imports all three.
# Prints the venv's python path as the last stdout line; everything else goes to stderr.
#
# PsychRNN's 1.0.0 wheel has invalid metadata and pip >= 24.1 silently installs 0.3 instead, hence
# the pinned pip and --no-deps (see scripts/setup-reference.sh).  PyPI's torch for Linux x86_64 is
# the CUDA build (~3.8 GB download); `import torch` works without a GPU.
set -euo pipefail

CACHE="${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}"
VENV="$CACHE/bench-venv"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

check() {
    [ -x "$PY" ] && CUDA_VISIBLE_DEVICES="" "$PY" - <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md
assert md.version("psychrnn") == "1.0.0"
import psychrnn._version as v
assert v.__version__ == "1.0.0"
import psychrnn.tasks.perceptual_discrimination  # noqa
import psychrnn.backend.models.basic  # noqa
import tensorflow  # noqa
import torch  # noqa
PYEOF
}

if check; then
    echo "setup-peers: psychrnn 1.0.0, tensorflow and torch already present in $VENV" >&2
    echo "$PY"
    exit 0
fi

t0=$SECONDS
mkdir -p "$CACHE"
[ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
"$PY" -m pip install --quiet "pip<24.1" >&2
"$PY" -m pip install --quiet tensorflow-cpu >&2
"$PY" -m pip install --quiet --no-deps "psychrnn==1.0.0" >&2
"$PY" -m pip install --quiet torch >&2

if ! check; then
    echo "setup-peers: psychrnn 1.0.0 / tensorflow / torch not importable from $PY" >&2
    exit 1
fi
echo "setup-peers: installed in $((SECONDS - t0)) s ($(du -sh "$VENV" | cut -f1) in $VENV)" >&2
echo "$PY"
