#!/usr/bin/env bash
# The GAN's generator and discriminator learning rates on a grid (TTUR, Heusel et al. 2017):
# 6 jobs. summary.csv in the sweep directory lists each job's best FID.
#   bash scripts/sweeps/lr_grid.sh
#   bash scripts/sweeps/lr_grid.sh trainer.max_epochs=50 hydra/launcher=joblib hydra.launcher.n_jobs=2
set -euo pipefail
cd "$(dirname "$0")/../.."
make sweep ARGS="model.lr_g=1e-4,2e-4 model.lr_d=1e-4,2e-4,4e-4 'tags=[lr_grid]' $*"
