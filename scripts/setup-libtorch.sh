#!/usr/bin/env bash
# Install libtorch 2.9.0 (what tch 0.22 / torch-sys 0.22 / burn-tch 0.22.1 expect) from PyPI.
#
#   bash scripts/setup-libtorch.sh          # CPU-only (~0.9 GB download, ~1.9 GB on disk)
#   bash scripts/setup-libtorch.sh --cuda   # full CUDA build, for a GPU machine (~3.8 GB download)
#   source ${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}/libtorch/env.sh
#
# Layout under ${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}/libtorch:
#   venv/    python venv holding the torch 2.9.0 wheel
#   L/       CPU mode: a libtorch-shaped folder (lib/, include/) for LIBTORCH=L
#   check/   a tiny C++ program linked the way torch-sys links, proving the libraries load
#   env.sh   the exports for building and running (rewritten for the mode of the latest run)
#
# Why CPU mode is a dance: PyPI only has the CUDA build of torch 2.9.0 for Linux x86_64, and its
# libtorch.so needs libtorch_cuda.so and ~2.7 GB of nvidia-* wheels.  libtorch_cpu.so only needs
# the CUDA runtime and CUPTI (small).  So: the torch wheel with --no-deps plus those two, and an L/
# folder that exposes only the CPU libraries plus a stub libtorch.so that just pulls in
# libtorch_cpu.so and libc10.so.  With no libtorch_cuda.so in L/lib, torch-sys links CPU only.
#
# Stdout carries only the final "source .../env.sh" line; everything else goes to stderr.
# Idempotent: when the check program of this mode already runs, only env.sh is rewritten.
set -euo pipefail

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

MODE=cpu
for arg in "$@"; do
    case "$arg" in
        --cuda) MODE=cuda ;;
        -h | --help) usage; exit 0 ;;
        *) echo "setup-libtorch: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

TORCH_VERSION=2.9.0
# The CUDA runtime pieces libtorch_cpu.so is linked against (pinned to what torch 2.9.0 requires).
CUDA_RT_PKGS=(nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90)

CACHE="${PSYCHRNN_CACHE:-$HOME/.cache/psychrnn}"
ROOT="$CACHE/libtorch"
VENV="$ROOT/venv"
PY="$VENV/bin/python"
L="$ROOT/L"
CHECK_DIR="$ROOT/check"
CHECK_BIN="$CHECK_DIR/check-$MODE"
ENV_SH="$ROOT/env.sh"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "setup-libtorch: $*" >&2; }

# Where the wheel put torch, found without importing it (the CUDA build's __init__ may not load
# without its nvidia-* dependencies).
torch_dir() {
    "$PY" - <<'PYEOF'
import importlib.util, os
print(os.path.dirname(importlib.util.find_spec("torch").origin))
PYEOF
}

# Contents of env.sh for this mode.  LIBTORCH_USE_PYTORCH is tested for presence by torch-sys
# (any value turns it on), so CPU mode must unset it rather than set it to 0.
write_env() {
    local tdir site
    if [ "$MODE" = cpu ]; then
        cat >"$ENV_SH" <<EOF
# libtorch $TORCH_VERSION, CPU only (written by scripts/setup-libtorch.sh)
unset LIBTORCH_USE_PYTORCH LIBTORCH_INCLUDE LIBTORCH_LIB
export LIBTORCH="$L"
export LD_LIBRARY_PATH="$L/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
    else
        tdir="$(torch_dir)"
        site="$(dirname "$tdir")"
        cat >"$ENV_SH" <<EOF
# libtorch $TORCH_VERSION with CUDA, from the torch wheel in a venv (written by scripts/setup-libtorch.sh)
unset LIBTORCH LIBTORCH_INCLUDE LIBTORCH_LIB
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:\$PATH"
export LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$tdir/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# site-packages: $site
EOF
    fi
}

# Run the check program with nothing but env.sh's settings, as a build or test would.
run_check() {
    [ -x "$CHECK_BIN" ] || return 1
    env -u LD_LIBRARY_PATH bash -c 'source "$1" && "$2"' _ "$ENV_SH" "$CHECK_BIN"
}

finish() {
    log "done ($MODE).  Disk: $(du -sh "$ROOT" | cut -f1) in $ROOT"
    echo "source $ENV_SH"
}

# ---- fast path: already complete for this mode -------------------------------------------------
if [ -x "$CHECK_BIN" ] && [ -x "$PY" ]; then
    write_env
    if run_check >/dev/null 2>&1; then
        log "libtorch $TORCH_VERSION ($MODE) already set up in $ROOT"
        finish
        exit 0
    fi
fi

# ---- venv and wheels ---------------------------------------------------------------------------
mkdir -p "$ROOT"
if [ ! -x "$PY" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi

installed() { "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true; }

t0=$SECONDS
if [ "$MODE" = cpu ]; then
    if [ "$(installed torch)" != "$TORCH_VERSION" ] ||
        [ -z "$(installed nvidia-cuda-runtime-cu12)" ] || [ -z "$(installed nvidia-cuda-cupti-cu12)" ]; then
        log "installing torch==$TORCH_VERSION (no deps) + CUDA runtime/CUPTI from PyPI (~0.9 GB)"
        "$PY" -m pip install --no-deps "torch==$TORCH_VERSION" "${CUDA_RT_PKGS[@]}" >&2
    fi
else
    # Always ask pip: it also fills in nvidia-* deps missing after an earlier CPU-mode install.
    log "installing torch==$TORCH_VERSION with its CUDA dependencies from PyPI (~3.8 GB)"
    "$PY" -m pip install "torch==$TORCH_VERSION" >&2
fi
log "pip step took $((SECONDS - t0)) s"

TDIR="$(torch_dir)"
SITE="$(dirname "$TDIR")"
[ -f "$TDIR/lib/libtorch_cpu.so" ] || { log "no libtorch_cpu.so in $TDIR/lib"; exit 1; }

# ---- CPU mode: the L/ folder -------------------------------------------------------------------
find_one() { # find_one NAME-GLOB DIR...: first match, or fail loudly
    local f
    f="$(find "${@:2}" -maxdepth 1 -name "$1" 2>/dev/null | sort | head -n1)"
    [ -n "$f" ] || { log "cannot find $1 in ${*:2}"; exit 1; }
    echo "$f"
}

EXTRA_LIBS=()
if [ "$MODE" = cpu ]; then
    log "building $L"
    rm -rf "$L"
    mkdir -p "$L/lib"
    ln -s "$TDIR/include" "$L/include"
    for lib in libtorch_cpu.so libc10.so libshm.so; do
        ln -s "$TDIR/lib/$lib" "$L/lib/$lib"
    done
    # gomp: the wheel may ship it as libgomp.so.1 or libgomp-<hash>.so.1 (torch/lib or torch.libs).
    # libtorch_cpu.so needs it under its DT_NEEDED name; torch-sys links -lgomp, hence libgomp.so.
    gomp="$(find_one 'libgomp*.so*' "$TDIR/lib" "$SITE/torch.libs")"
    gomp_needed="$(objdump -p "$TDIR/lib/libtorch_cpu.so" | awk '$1=="NEEDED" && $2 ~ /^libgomp/ {print $2}')"
    ln -s "$gomp" "$L/lib/${gomp_needed:-libgomp.so.1}"
    ln -s "${gomp_needed:-libgomp.so.1}" "$L/lib/libgomp.so"
    ln -s "$(find_one 'libcudart.so.12*' "$SITE/nvidia/cuda_runtime/lib")" "$L/lib/libcudart.so.12"
    ln -s "$(find_one 'libcupti.so.12*' "$SITE/nvidia/cuda_cupti/lib")" "$L/lib/libcupti.so.12"
    # Stub libtorch.so: torch-sys links -ltorch; the real one drags in libtorch_cuda.so.
    echo 'void psychrnn_libtorch_cpu_stub(void) {}' |
        gcc -shared -fPIC -x c - -o "$L/lib/libtorch.so" -Wl,-soname,libtorch.so \
            -L"$L/lib" -Wl,--no-as-needed -ltorch_cpu -lc10
    # torch-sys checks LIBTORCH/build-version against the version it expects.
    echo "$TORCH_VERSION" >"$L/build-version"
    INC="$L/include"
    LIBDIR="$L/lib"
else
    INC="$TDIR/include"
    LIBDIR="$TDIR/lib"
    EXTRA_LIBS=(-ltorch_cuda) # torch-sys adds this when libtorch_cuda.so is present
fi

write_env

# ---- verify: compile, link (as torch-sys does) and run a tiny libtorch program -----------------
mkdir -p "$CHECK_DIR"
cat >"$CHECK_DIR/check.cpp" <<'CPPEOF'
// Written by scripts/setup-libtorch.sh: proves libtorch headers, linking and loading work.
#include <torch/torch.h>
#include <iostream>
int main() {
    auto a = torch::arange(1, 11, torch::kFloat32).reshape({2, 5});
    auto x = torch::ones({3}, torch::requires_grad());
    (x * x).sum().backward();                        // autograd
    auto m = torch::mm(a, a.t());                    // BLAS
    float s = a.sum().item<float>(), g = x.grad().sum().item<float>();
    float tr = m.trace().item<float>();
    std::cout << "libtorch " << TORCH_VERSION << ": sum=" << s << " grad=" << g << " trace=" << tr
              << " cuda_available=" << torch::cuda::is_available()
              << " threads=" << at::get_num_threads() << std::endl;
    return (s == 55.0f && g == 6.0f && tr == 385.0f) ? 0 : 1;
}
CPPEOF
log "compiling check program against $INC (about a minute: torch/torch.h is big)"
t0=$SECONDS
# Same ABI flag, includes and libraries as torch-sys 0.22's build.rs.
g++ -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 -O0 \
    -I"$INC" -I"$INC/torch/csrc/api/include" \
    "$CHECK_DIR/check.cpp" -o "$CHECK_BIN.tmp" \
    -L"$LIBDIR" -Wl,--no-as-needed "${EXTRA_LIBS[@]}" -ltorch_cpu -ltorch -lc10 -lgomp
mv "$CHECK_BIN.tmp" "$CHECK_BIN"
log "compile took $((SECONDS - t0)) s"

if missing="$(env -u LD_LIBRARY_PATH bash -c 'source "$1" && ldd "$2"' _ "$ENV_SH" "$CHECK_BIN" | grep 'not found')"; then
    log "unresolved libraries:"; echo "$missing" >&2; exit 1
fi
if [ "$MODE" = cpu ] && env -u LD_LIBRARY_PATH bash -c 'source "$1" && ldd "$2"' _ "$ENV_SH" "$CHECK_BIN" | grep -q libtorch_cuda; then
    log "CPU mode but libtorch_cuda.so got linked"; exit 1
fi
run_check >&2 || { log "check program failed"; exit 1; }
finish
