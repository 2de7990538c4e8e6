"""genlab-sample's output formats: a grid, an ImageFolder, and the field's `.npz` (uint8 NHWC
`arr_0`, labels `arr_1`) that genlab-eval and other repositories' evaluators read back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image

from genlab.checkpoints import load_model
from genlab.errors import ConfigError
from genlab.eval import evaluate
from genlab.evaluation.image_files import to_nhwc_array
from genlab.sample import sample
from tests.helpers.checkpoints import write_checkpoint
from tests.helpers.runs import compose_config

MakeConfig = Callable[..., DictConfig]


@pytest.fixture(scope="module")
def conditional_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained class-conditional GAN (10 digit classes) on the embedded MNIST."""
    return write_checkpoint(tmp_path_factory.mktemp("cgan"), ["experiment=cgan_mnist"], seed=3)


def expected_samples(ckpt: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """What the model makes from `seed`: labels drawn first, then latents, as generate() does."""
    model, _ = load_model(ckpt)
    generator = torch.Generator().manual_seed(seed)
    labels = model.sample_labels(n, generator)
    images = model.generate(n, generator=generator, labels=labels)
    return to_nhwc_array(images), labels.numpy()


def test_npz_holds_uint8_nhwc_images_and_labels_that_genlab_eval_reads_back(
    make_config: MakeConfig, conditional_ckpt: Path, tmp_path: Path
) -> None:
    """The .npz is the model's generate() for the seed, in ADM's layout, with the labels of a
    conditional model; genlab-eval scores it as the checkpoint itself (the same images up to
    uint8 rounding, the same labels)."""
    written = sample(make_config("sample", [f"ckpt_path={conditional_ckpt}", "n=60",
                                            "format=npz", "seed=5"]))  # fmt: skip
    assert written == tmp_path / "samples.npz"
    with np.load(written) as file:
        assert sorted(file.files) == ["arr_0", "arr_1"]
        pixels, labels = file["arr_0"], file["arr_1"]
    images, drawn = expected_samples(conditional_ckpt, 60, seed=5)
    assert pixels.dtype == np.uint8 and pixels.shape == (60, 28, 28, 1)
    np.testing.assert_array_equal(pixels, images)
    np.testing.assert_array_equal(labels, drawn)
    assert len(set(labels.tolist())) > 5  # uniform over the classes, not one class

    cfg = compose_config(
        "eval",
        [f"samples=[{conditional_ckpt},{written}]", "names=[ckpt,npz]", "metrics.n_samples=60",
         "seed=5", "memorization.enabled=false", f"paths.cache_dir={tmp_path / 'cache'}"],
        tmp_path / "eval",
    )  # fmt: skip
    from_ckpt, from_npz = evaluate(cfg)["sources"]
    assert from_npz["source_kind"] == "array" and from_npz["n_samples"] == 60
    assert from_npz["fid"] == pytest.approx(from_ckpt["fid"], rel=1e-2)
    # the classifier's accuracy on the samples' requested classes needs arr_1 read as labels
    assert from_npz["class_accuracy"] == pytest.approx(from_ckpt["class_accuracy"], abs=0.05)


def test_npz_of_chosen_labels_and_of_an_unconditional_model(
    make_config: MakeConfig, conditional_ckpt: Path, tmp_path: Path
) -> None:
    cycled = [f"ckpt_path={conditional_ckpt}", "n=7", "format=npz", "labels=[2,9]"]
    chosen = sample(make_config("sample", [*cycled, f"out_dir={tmp_path / 'two'}"]))
    with np.load(chosen) as file:
        assert file["arr_1"].tolist() == [2, 9, 2, 9, 2, 9, 2]
    gan = write_checkpoint(tmp_path / "gan", ["model=gan"])
    plain = sample(make_config("sample", [f"ckpt_path={gan}", "n=5", "format=npz",
                                          f"out_dir={tmp_path / 'plain'}"]))  # fmt: skip
    with np.load(plain) as file:
        assert file.files == ["arr_0"] and file["arr_0"].shape == (5, 28, 28, 1)


def test_folder_format_writes_the_same_images_as_pngs(
    make_config: MakeConfig, conditional_ckpt: Path, tmp_path: Path
) -> None:
    """format=folder without out_dir: an ImageFolder in the run directory (grayscale saved as
    RGB PNGs, as torchvision's save_image writes them; rounded by it, hence the 1 of 255)."""
    folder = sample(make_config("sample", [f"ckpt_path={conditional_ckpt}", "n=12",
                                           "format=folder"]))  # fmt: skip
    assert folder == tmp_path / "samples"
    files = sorted(folder.glob("*.png"))
    assert len(files) == 12
    read = np.stack([np.asarray(Image.open(path))[..., :1] for path in files]).astype(int)
    expected = expected_samples(conditional_ckpt, 12, seed=0)[0].astype(int)
    assert np.abs(read - expected).max() <= 1


def test_an_unknown_format_is_one_line_before_any_sampling(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    cfg = make_config("sample", [f"ckpt_path={tmp_path / 'missing.ckpt'}", "format=gif"])
    with pytest.raises(ConfigError) as err:
        sample(cfg)
    assert str(err.value) == "format='gif' is unknown; choose one of grid, folder, npz"
    assert not list(tmp_path.glob("samples*"))
