#!/usr/bin/env bash
# The main job on the built-in sample (2000 simulated Pythia 8 quark/gluon jets):
#   preprocess -> pretrain the sparse EdgeConv autoencoder -> fine-tune multitask heads
#   (quark/gluon classification + jet mass and pT regression) -> eval (metric table).
# A few minutes on a laptop CPU. Graphs are capped at 64 nodes (the most energetic) to keep
# CPU training quick; real-size studies belong on a GPU (see README).
# Usage: bash scripts/demo.sh [OUT_DIR]   (default runs/demo; replaced if it exists)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
GE=".venv/bin/graphevent"
OUT="${1:-runs/demo}"
SAMPLE="$(.venv/bin/python -c 'from graphevent.simulate.qg import sample_path; print(sample_path())')"
set -x
"$GE" preprocess "$SAMPLE" --config ml4sci_qg_hdf5 --out "$OUT/dataset" --workers 2 \
    --set graph.max_nodes=64 --overwrite
"$GE" train --config edgeconv_ae_pretrain --data "$OUT/dataset" --out "$OUT/pretrain" \
    --epochs 2 --batch-size 64 --set train.num_workers=1 --overwrite   # the configs' batch and workers are a GPU's
"$GE" train --config multitask_finetune --data "$OUT/dataset" --out "$OUT/finetune" \
    --set 'model.encoders=[edgeconv]' --init-from "$OUT/pretrain" --epochs 4 --batch-size 64 --set train.num_workers=1 --overwrite
"$GE" eval "$OUT/finetune" --data "$OUT/dataset" --split test --bootstrap 200
