#!/usr/bin/env bash
# GAN against VAE on the same data, three seeds each: 6 jobs, one W&B group.
# Compare them on the FID both logged (val/fid_lenet); the spread over seeds is the error bar.
#   bash scripts/sweeps/seeds_x_models.sh                       # one job after another
#   bash scripts/sweeps/seeds_x_models.sh hydra/launcher=joblib hydra.launcher.n_jobs=2
set -euo pipefail
cd "$(dirname "$0")/../.."
make sweep ARGS="model=gan,vae seed=1,2,3 'tags=[seeds_x_models]' $*"
