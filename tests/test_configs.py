"""Every config file composes, and what it builds matches the data it is paired with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from genlab.config.paths import config_dir
from genlab.config.validation import check_config, target_nodes
from genlab.preflight import check_model_fits

CONF = config_dir()
GROUPS = ["data", "model", "model/net", "trainer", "logger", "callbacks", "metrics",
          "experiment", "debug", "paths", "hparams_search"]  # fmt: skip
NET_FOR_MODEL = {"conv_vae": "vae", "unet": "flow"}  # a net needs its model; the rest are GAN nets
DATA_FOR_NET = {"resnet": "cifar10"}  # nets for 32x32 images; the rest fit MNIST's 28x28


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def group_override(group: str, option: str) -> list[str]:
    if (group, option) == ("data", "image_folder"):
        return [f"{group}={option}", "data.path=images"]  # the one key without a default
    if group == "model/net":
        return [f"model={NET_FOR_MODEL.get(option, 'gan')}", f"model/net={option}"]
    return [f"{group}={option}"]


CASES = [(g, o) for g in GROUPS for o in options(g)]


def test_every_group_has_options() -> None:
    for group in ["data", "model", "model/net", "trainer", "logger", "callbacks", "metrics",
                  "experiment", "debug", "paths"]:  # fmt: skip
        assert options(group), group


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_config_composes_and_resolves(
    make_config: Callable[..., DictConfig], group: str, option: str
) -> None:
    cfg = make_config("train", group_override(group, option))
    # Every interpolation resolves, every `_target_` names an allowed class, and every key
    # is a parameter of its target with a value of the parameter's type.
    check_config(cfg)
    for _, node in target_nodes(OmegaConf.to_container(cfg, resolve=True), ""):
        assert callable(get_object(node["_target_"])), node["_target_"]


@pytest.mark.parametrize("net", options("model/net"))
def test_every_net_option_fits_its_data(make_config: Callable[..., DictConfig], net: str) -> None:
    data = f"data={DATA_FOR_NET.get(net, 'mnist_embedded')}"
    cfg = make_config("train", [*group_override("model/net", net), data])
    model = instantiate(cfg.model)
    image_shape = (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    check_model_fits(model, image_shape)
    assert model.generate(2).shape == (2, *image_shape)


def test_every_yaml_key_is_commented() -> None:
    """Each line that sets a key carries a comment, on the line or on the line above."""
    missing = []
    for path in sorted(Path(CONF).rglob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
                continue
            key, _, value = stripped.partition(":")
            is_block = value.strip() == ""  # a mapping header such as `optimizer:`
            commented = "#" in value or (i > 0 and lines[i - 1].strip().startswith("#"))
            if not commented and not is_block and key not in {"_target_", "_partial_", "defaults"}:
                missing.append(f"{path.relative_to(CONF)}:{i + 1}: {stripped}")
    assert not missing, "uncommented keys:\n" + "\n".join(missing)
