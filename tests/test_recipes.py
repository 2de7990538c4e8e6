"""Every recipe on the embedded digits learns: a short seeded run of each
conf/experiment/*_mnist.yaml whose metric must end well below where an untrained model
starts. The quick start's learning tests are in test_learning.

Each run trains on the first 50 batches of every epoch (3,200 digits at batch 64) for a
few epochs. A GAN, a flow or a diffusion model is judged by its last `val/fid_lenet` (an
untrained generator: about 2,200); a VAE by its last `val/loss` (-ELBO, or -L_k for IWAE,
nats per image; an untrained decoder: about 784 ln 2 = 543), whose FID falls too slowly in
so short a run.
Each threshold was set from a measured run (the value is in the comment beside it) with a
wide margin: the tests are about learning at all, not about hitting a number. A recipe
that stops learning fails: `ema_gan_mnist` with callbacks.ema.decay=0.9999 and
callbacks.ema.ramp_up=false (an average that still holds the initial weights) measured
val/fid_lenet 2,200.5, 2,200.7, 2,201.5.
"""

from __future__ import annotations

import pytest

from genlab.config.paths import config_dir
from tests.helpers.learning import logged, trained

pytestmark = pytest.mark.slow

SHORT_RUN = ["+trainer.limit_train_batches=50"]

# (recipe, epochs of at most 50 batches, metric, threshold on its last value)
RECIPES = [
    ("hinge_sn_mnist", 3, "val/fid_lenet", 1400.0),  # measured 1847, 1507, 795
    ("lsgan_mnist", 3, "val/fid_lenet", 1900.0),  # measured 2035, 1884, 1594
    ("r1_mnist", 3, "val/fid_lenet", 1800.0),  # measured 1894, 1992, 1425
    ("ttur_mnist", 3, "val/fid_lenet", 1700.0),  # measured 2056, 1927, 1166
    ("ema_gan_mnist", 3, "val/fid_lenet", 1500.0),  # measured 1993, 1194, 752
    ("cgan_mnist", 3, "val/fid_lenet", 1500.0),  # measured 1924, 1402, 924
    # 16 batches per epoch (1,000 digits); measured 2202, 1940, 1901, 1398, 1421, 1804,
    # 1263, 1078, 879, 744
    ("diffaugment_mnist", 10, "val/fid_lenet", 1500.0),
    ("beta_vae_mnist", 2, "val/loss", 300.0),  # measured 208.6, 199.4
    ("cvae_mnist", 2, "val/loss", 300.0),  # measured 199.5, 185.3
    ("iwae_mnist", 2, "val/loss", 300.0),  # measured 200.7, 190.5 (-L_5)
    # 31 batches per epoch (batch 128), validated once, after the last epoch: FID on 300
    # samples of 10 Euler / 20 DDIM / 10 Heun steps (NFE 10, 20, 19: each a UNet pass, the
    # cost of these runs). edm_mnist with its loss target replaced by the noise measured 1068.
    ("flow_mnist", 2, "val/fid_lenet", 1200.0),  # measured 663
    ("ddpm_mnist", 2, "val/fid_lenet", 900.0),  # measured 369
    ("edm_mnist", 2, "val/fid_lenet", 900.0),  # measured 424
]
# Extra overrides of a recipe's short run
EXTRA = {
    name: ["metrics.n_samples=300", "trainer.check_val_every_n_epoch=2"]
    for name in ("flow_mnist", "ddpm_mnist", "edm_mnist")
}
# Recipes without a short learning test yet, and why.
UNTESTED = {
    # 5 critic steps per G step: 4 epochs of 50 batches (40 G steps) measured 2109, 2092,
    # 2118, 2161; a run long enough to fall is longer than this file's budget allows.
    "wgan_gp_mnist",
    # flow_mnist with classes: its test is that samples are of the requested digit
    # (test_learning.test_conditional_samples_are_of_the_requested_digit).
    "cfg_flow_mnist",
}


def test_every_mnist_recipe_has_a_learning_test() -> None:
    recipes = {path.stem for path in (config_dir() / "experiment").glob("*_mnist.yaml")}
    assert recipes == {recipe for recipe, *_ in RECIPES} | UNTESTED


@pytest.mark.parametrize(("experiment", "epochs", "metric", "threshold"), RECIPES)
def test_recipe_learns_in_a_short_run(
    tmp_path_factory: pytest.TempPathFactory,
    experiment: str,
    epochs: int,
    metric: str,
    threshold: float,
) -> None:
    overrides = [f"experiment={experiment}", f"trainer.max_epochs={epochs}", *SHORT_RUN]
    overrides += EXTRA.get(experiment, [])
    values = dict(logged(trained(tmp_path_factory, experiment, overrides), metric))
    assert epochs - 1 in values.keys() <= set(range(epochs))  # the last epoch was measured
    assert values[epochs - 1] < threshold, f"{experiment}: {metric} per epoch {values}"
