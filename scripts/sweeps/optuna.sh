#!/usr/bin/env bash
# An Optuna (TPE) search: the GAN's FID (default) or the VAE's validation loss.
# The best parameters land in <sweep dir>/optimization_results.yaml.
#   bash scripts/sweeps/optuna.sh                       # gan_optuna, 20 trials
#   bash scripts/sweeps/optuna.sh vae_optuna hydra.sweeper.n_trials=40
#   bash scripts/sweeps/optuna.sh gan_optuna hydra/launcher=joblib hydra.sweeper.n_jobs=2
set -euo pipefail
cd "$(dirname "$0")/../.."
search="${1:-gan_optuna}"
shift || true
make sweep ARGS="hparams_search=${search} $*"
