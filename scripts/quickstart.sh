#!/usr/bin/env bash
# Generate the PerceptualDiscrimination batch PsychRNN would make after np.random.seed(2020), run
# the PsychRNN-trained network in ../shared/fixtures on it, and print its accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/quickstart}"
weights="${PSYCHRNN_WEIGHTS:-../shared/fixtures/psychrnn_saved_weights.npz}"
mkdir -p "$out"
run() { cargo run --quiet -- "$@"; }
run batch --task perceptual-discrimination --n 256 --numpy-seed 2020 --out "$out/batch.npz" --force
run simulate --weights "$weights" --inputs "$out/batch.npz" --out "$out/sim.npz" --force
echo -n "accuracy: "
run accuracy --task perceptual-discrimination --outputs "$out/sim.npz" --batch "$out/batch.npz"
