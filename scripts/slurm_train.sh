#!/bin/bash
# Example SLURM batch script: DDP training of graphevent on 2 nodes x 4 GPUs.
#
# srun starts ONE task per node; in each, torchrun (PyTorch's elastic launcher) starts one
# worker per GPU and restarts the node's workers from RUN_DIR/checkpoints/last.pt if one
# dies (--max-restarts). `graphevent train` sees torchrun's WORLD_SIZE/RANK/LOCAL_RANK and
# joins the process group instead of launching workers itself.
#
# Alternative without torchrun (one task per GPU, no restarts):
#   #SBATCH --ntasks-per-node=4
#   srun graphevent train ... --gpus 1
# graphevent then reads SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and uses the first node
# of the job as MASTER_ADDR (MASTER_PORT defaults to 29500 + job id % 1000).
#
# The run directory must be on a filesystem shared by all nodes. Resubmitting the same
# script with --resume continues a run that hit the time limit.
#
# Submit:  sbatch scripts/slurm_train.sh masked_gt_pretrain datasets/qg runs/pre

#SBATCH --job-name=graphevent-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail

CONFIG=${1:?usage: sbatch scripts/slurm_train.sh CONFIG DATASET_DIR RUN_DIR [extra graphevent train options]}
DATA=${2:?dataset directory}
RUN_DIR=${3:?run directory}
shift 3

GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-4}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=$((29500 + SLURM_JOB_ID % 1000))
export OMP_NUM_THREADS=$((SLURM_CPUS_PER_TASK / GPUS_PER_NODE))

# Resume automatically when the run directory already holds a checkpoint (requeued job).
RESUME=()
if [ -f "$RUN_DIR/checkpoints/last.pt" ]; then
    RESUME=(--resume)
fi

srun --kill-on-bad-exit=1 torchrun \
    --nnodes="$SLURM_NNODES" \
    --nproc-per-node="$GPUS_PER_NODE" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" \
    --rdzv-id="$SLURM_JOB_ID" \
    --max-restarts=3 \
    -m graphevent.cli.app train \
        --config "$CONFIG" --data "$DATA" --out "$RUN_DIR" "${RESUME[@]}" "$@"
