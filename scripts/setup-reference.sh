#!/usr/bin/env bash
# Set up a Python venv holding the reference implementation, PsychRNN 1.0.0
# (with TensorFlow CPU), for producing and checking reference data.
#
#   venv: ${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}/pyref
#
# Idempotent: does nothing (beyond printing the path) when the venv already
# imports psychrnn 1.0.0 and tensorflow.  Prints the venv's python path last.
#
# Why the dance: the PsychRNN 1.0.0 wheel on PyPI has invalid metadata, and
# pip >= 24.1 silently falls back to PsychRNN 0.3.  So pip is pinned below
# 24.1, and psychrnn is installed with --no-deps (its only dependency,
# tensorflow, is installed first as tensorflow-cpu).
set -euo pipefail

CACHE="${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}"
VENV="$CACHE/pyref"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"

check() {
    [ -x "$PY" ] && "$PY" - <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md, sys
assert md.version("psychrnn") == "1.0.0"
import psychrnn._version as v
assert v.__version__ == "1.0.0"
import psychrnn.tasks.perceptual_discrimination  # noqa
import psychrnn.backend.simulation  # noqa
import tensorflow  # noqa
PYEOF
}

if check; then
    echo "setup-reference: psychrnn 1.0.0 already present in $VENV" >&2
    echo "$PY"
    exit 0
fi

mkdir -p "$CACHE"
if [ ! -x "$PY" ]; then
    "$PYTHON" -m venv "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$PY" -m pip install --quiet "pip<24.1"
"$PY" -m pip install --quiet tensorflow-cpu
"$PY" -m pip install --quiet --no-deps "psychrnn==1.0.0"

if ! check; then
    echo "setup-reference: psychrnn 1.0.0 / tensorflow not importable from $PY" >&2
    exit 1
fi
echo "$PY"
