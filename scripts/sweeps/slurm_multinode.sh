#!/usr/bin/env bash
# DDP on 2 SLURM nodes x 4 GPUs through submitit, one job per model; run it on the login node.
# Set your partition (and account) below or on the command line.
#   bash scripts/sweeps/slurm_multinode.sh hydra.launcher.partition=gpu
set -euo pipefail
cd "$(dirname "$0")/../.."
make sweep ARGS="model=gan,vae trainer=multinode trainer.num_nodes=2 trainer.devices=4 \
  trainer.precision=bf16-mixed hydra/launcher=slurm_ddp 'tags=[multinode]' $*"
