#!/usr/bin/env bash
# Everything a fresh machine needs to run psychrnn's notebooks:
#   - evcxr_jupyter 0.22.0 (the Rust kernel), `cargo install --locked` (~15 min cold),
#   - a Python venv with the headless Jupyter pieces (nbclient, nbformat, jupyter_client),
#   - the `rust` kernel spec (`evcxr_jupyter --install`).
#
#   bash scripts/setup-notebooks.sh [--lab]     # --lab also installs JupyterLab, for people
#
# Installs under ${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn} (evcxr/ and nb-venv/); idempotent.
# Prints the venv's python as the last stdout line; everything else goes to stderr.
set -euo pipefail

LAB=0
for arg in "$@"; do
    case "$arg" in
        --lab) LAB=1 ;;
        -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup-notebooks: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

EVCXR_VERSION=0.22.0
CACHE="${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}"
ROOT="$CACHE/evcxr"
VENV="$CACHE/nb-venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
log() { echo "setup-notebooks: $*" >&2; }

t0=$SECONDS
if ! grep -qs "evcxr_jupyter $EVCXR_VERSION" "$ROOT/.crates.toml" || [ ! -x "$ROOT/bin/evcxr_jupyter" ]; then
    log "cargo install --locked evcxr_jupyter $EVCXR_VERSION (6-15 minutes on 2 cores)"
    # Its own target dir: the project's CARGO_TARGET_DIR holds other builds.
    CARGO_TARGET_DIR="$ROOT/build" cargo install --locked --root "$ROOT" evcxr_jupyter --version "$EVCXR_VERSION" >&2
    rm -rf "$ROOT/build"
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet nbclient nbformat jupyter_client >&2
[ "$LAB" = 1 ] && "$VENV/bin/python" -m pip install --quiet jupyterlab >&2
# Registers the `rust` kernel spec under ~/.local/share/jupyter/kernels/rust.
PATH="$ROOT/bin:$PATH" "$ROOT/bin/evcxr_jupyter" --install >&2
log "ready in $((SECONDS - t0)) s: evcxr_jupyter $EVCXR_VERSION, python $VENV/bin/python"
echo "$VENV/bin/python"
