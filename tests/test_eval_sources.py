"""genlab-eval's sources and references on data made in the test: folders of PNGs, `.npz` and
`.npy` arrays, statistics files; each bad input in one line."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance

from genlab.errors import GenlabError
from genlab.eval import evaluate
from genlab.evaluation.image_files import read_folder
from genlab.metrics.extractors import LeNetExtractor
from genlab.stats import make_statistics
from tests.helpers.runs import compose_config
from tests.helpers.sample_files import as_uint8, digits, write_npz, write_png_folder

MakeEval = Callable[..., dict]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the module: the 4,000 training digits are extracted once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def run_eval(tmp_path: Path, cache: Path) -> MakeEval:
    """`run_eval(*overrides)` -> the results genlab-eval writes, run in tmp_path/eval."""

    def run(*overrides: str, config: str = "eval") -> dict:
        cfg = compose_config(config, [f"paths.cache_dir={cache}", *overrides], tmp_path / config)
        if config == "stats":
            return {"path": make_statistics(cfg)}
        evaluate(cfg)
        return json.loads(Path(cfg.out_file).read_text())

    return run


def lenet_features(images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return LeNetExtractor()(images)[0].double().numpy()


def moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def test_a_folder_an_npz_and_an_npy_of_the_same_images_are_the_same_samples(
    tmp_path: Path, run_eval: MakeEval
) -> None:
    """The FID of each equals pytorch-fid's on LeNet features computed here, so a wrong axis
    order (NCHW/NHWC), scale or channel conversion in any reader would show."""
    images, labels = digits("train", 150)
    folder = write_png_folder(tmp_path / "pngs", images, labels)
    npz = write_npz(tmp_path / "samples.npz", images, labels)
    npy = tmp_path / "samples.npy"
    np.save(npy, as_uint8(images))
    other_key = tmp_path / "other_key.npz"
    np.savez(other_key, images=as_uint8(images))
    results = run_eval(
        f"samples=[{folder},{npz},{npy}]", "names=[pngs,npz,npy]", "data=mnist_embedded",
        "metrics.n_samples=150", "memorization.enabled=false",
    )["sources"]  # fmt: skip
    with open(tmp_path / "eval" / "comparison.csv") as file:
        rows = list(csv.DictReader(file))
    markdown = (tmp_path / "eval" / "comparison.md").read_text()
    keyed = run_eval(f"samples={other_key}", "samples_key=images", "data=mnist_embedded",
                     "metrics.n_samples=150", "memorization.enabled=false")  # fmt: skip

    real = lenet_features(digits("test")[0])
    expected = calculate_frechet_distance(*moments(real), *moments(lenet_features(images)))
    for result in [*results, keyed]:
        assert result["n_samples"] == 150 and result["n_real"] == 500
        assert result["fid"] == pytest.approx(expected, rel=1e-6)
    assert [r["source_kind"] for r in results] == ["folder", "array", "array"]
    # the folder's subfolders 0..9 and the npz's arr_1 are read as the class labels
    assert results[0]["class_accuracy"] == results[1]["class_accuracy"] > 0.9
    assert results[2]["class_accuracy"] is None  # the .npy holds no labels
    assert [row["source"] for row in rows] == ["pngs", "npz", "npy"]
    assert {(row["reference"], row["extractor"]) for row in rows} == {
        ("mnist_embedded test", "lenet")
    }
    assert "Reference: mnist_embedded test (dataset, 500 images); extractor: lenet" in markdown
    assert markdown.count("\n| ") == 4  # header and three rows


def test_a_folder_of_mixed_sizes_is_read_like_the_real_images(tmp_path: Path) -> None:
    """Converted to the reference's channels, the shorter side resized (antialiased), then
    centre-cropped: a 28x40 RGB copy padded with 6 columns on each side is the digit again,
    and a 56x56 copy (each pixel doubled) comes back close to it."""
    images, _ = digits("train", 4)
    pixels = as_uint8(images)[..., 0]
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, digit in enumerate(pixels):
        Image.fromarray(digit).save(folder / f"{i}_a_plain.png")
        padded = np.pad(digit, ((0, 0), (6, 6)))
        Image.fromarray(np.stack([padded] * 3, axis=-1)).save(folder / f"{i}_b_padded_rgb.png")
        Image.fromarray(digit.repeat(2, 0).repeat(2, 1)).save(folder / f"{i}_c_doubled.png")
    read = read_folder(folder, (1, 28, 28), "samples").images.view(4, 3, 28, 28).float()
    original = torch.from_numpy(pixels).float()
    assert torch.equal(read[:, 0], original)
    assert torch.equal(read[:, 1], original)
    assert (read[:, 2] - original).abs().mean() < 12  # of 255: a blur, not another image
    assert (read[:, 2] - original.roll(1, 0)).abs().mean() > 40  # ... unlike another digit


def test_statistics_file_round_trip_and_fid_equal_pytorch_fid(
    tmp_path: Path, run_eval: MakeEval
) -> None:
    """genlab-stats writes pytorch-fid's mu and sigma (float64) with the extractor's identity;
    genlab-eval's FID against the file is pytorch-fid's calculate_frechet_distance on the
    file's moments and the samples' moments."""
    real, _ = digits("test", 300)
    samples, _ = digits("train", 200)
    ref = run_eval(f"source={write_npz(tmp_path / 'ref.npz', real)}",
                   f"out_file={tmp_path / 'stats.npz'}", config="stats")["path"]  # fmt: skip
    with np.load(ref) as file:
        stored = {key: file[key] for key in file.files}
    mu, sigma = moments(lenet_features(real))
    np.testing.assert_allclose(stored["mu"], mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stored["sigma"], sigma, rtol=1e-5, atol=1e-6)
    assert stored["mu"].dtype == stored["sigma"].dtype == np.float64
    assert str(stored["extractor"]) == "lenet" and int(stored["n"]) == 300
    assert str(stored["weights_sha256"]) == LeNetExtractor().weights_sha256
    assert tuple(stored["image_shape"]) == (1, 28, 28)

    result = run_eval(f"samples={write_npz(tmp_path / 's.npz', samples)}", f"reference={ref}",
                      "metrics.n_samples=200")  # fmt: skip
    expected = calculate_frechet_distance(
        stored["mu"], stored["sigma"], *moments(lenet_features(samples))
    )
    assert result["fid"] == pytest.approx(expected, rel=1e-9)
    assert result["reference_kind"] == "statistics" and result["n_real"] == 300
    # the moments alone hold no features: the k-NN metrics and KID do not apply
    assert result["kid_mean"] is result["precision"] is result["density"] is None


def test_training_images_as_samples_are_copies_and_held_out_images_are_not(
    tmp_path: Path, run_eval: MakeEval
) -> None:
    """The training digits, fed back as samples, score FID ~0 against their own statistics
    and are all flagged as copied; held-out digits are not flagged."""
    train, train_labels = digits("train", 300)
    folder = write_png_folder(tmp_path / "train_pngs", train, train_labels)
    stats = run_eval(f"source={folder}", f"out_file={tmp_path / 'train_stats.npz'}",
                     config="stats")["path"]  # fmt: skip
    copies = run_eval(f"samples={folder}", f"reference={stats}", "data=mnist_embedded",
                      "metrics.n_samples=300")  # fmt: skip
    assert abs(copies["fid"]) < 1e-6
    assert copies["copied_fraction"] == 1.0 and copies["authenticity"] == 0.0
    assert copies["nn_pixel_distance_median"] < 1e-6

    held_out = write_npz(tmp_path / "held_out.npz", digits("test", 300)[0])
    fresh = run_eval(f"samples={held_out}", "data=mnist_embedded", "metrics.n_samples=300")
    assert fresh["copied_fraction"] <= 0.01
    assert fresh["authenticity"] > 0.3
    assert fresh["copied_fraction_heldout"] <= 0.01  # the baseline: the whole test split
    png = Path(fresh["memorization_pairs_png"])
    assert Image.open(png).size == (2 + 16 * 30, 2 + 2 * 30)  # 16 pairs: samples over nearest


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


@pytest.fixture
def small_reference(tmp_path: Path) -> Path:
    """40 real digits in an npz: a reference that costs nothing to read."""
    return write_npz(tmp_path / "ref.npz", digits("test", 40)[0])


def bad_sources(root: Path) -> dict[str, tuple[list[str], str]]:
    """Bad inputs: name -> (overrides, the start of the one line they must fail with)."""
    images, labels = digits("train", 8)
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    (root / "notes.txt").write_text("not an image")
    broken = write_png_folder(root / "broken", images)
    (broken / "zz_broken.png").write_bytes(b"not a png")
    pixels = as_uint8(images)
    np.savez(root / "no_channel.npz", arr_0=pixels[..., 0])
    np.savez(root / "nchw.npz", arr_0=pixels.transpose(0, 3, 1, 2))
    np.savez(root / "floats.npz", arr_0=pixels.astype(np.float32) / 255)
    np.savez(root / "rgb32.npz", arr_0=np.zeros((8, 32, 32, 3), np.uint8))
    np.savez(root / "bad_labels.npz", arr_0=pixels, arr_1=labels[:5].numpy())
    np.save(root / "objects.npy", np.array([{"a": 1}] * 2, dtype=object))
    return {
        "folder without images": ([f"samples={root / 'empty'}"], "no images (.png"),
        "a non-image file": ([f"samples={root / 'notes.txt'}"], "samples="),
        "an unreadable image": ([f"samples={broken}"], "1 file(s) in samples="),
        "no channel axis": ([f"samples={root / 'no_channel.npz'}"], "samples="),
        "channels first": ([f"samples={root / 'nchw.npz'}"], "samples="),
        "float pixels": ([f"samples={root / 'floats.npz'}"], "samples="),
        "images the extractor cannot read": ([f"samples={root / 'rgb32.npz'}"], "samples="),
        "labels of another length": ([f"samples={root / 'bad_labels.npz'}"], "samples="),
        "a pickled array": ([f"samples={root / 'objects.npy'}"], "samples="),
        "a missing key": ([f"samples={root / 'nchw.npz'}", "samples_key=images"], "samples="),
        "no source": ([], "ckpt_path must be given, or samples="),
        "names of another count": ([f"samples={root / 'nchw.npz'}", "names=[a,b]"], "names has 2"),
    }


REASONS = {
    "a non-image file": "is not a source of samples",
    "no channel axis": "(grayscale without a channel axis",
    "channels first": "(this looks like NCHW",
    "float pixels": "holds float32 values, but images must be uint8",
    "images the extractor cannot read": "(3, 32, 32) (C, H, W), but the lenet extractor reads "
    "(1, 28, 28)",
    "labels of another length": "must hold one integer class label per image",
    "a pickled array": "cannot be read as a numpy .npy file",
    "a missing key": "has no array 'images' (it holds arr_0)",
}


BAD_SOURCES = (
    "folder without images", "a non-image file", "an unreadable image", "no channel axis",
    "channels first", "float pixels", "images the extractor cannot read",
    "labels of another length", "a pickled array", "a missing key", "no source",
    "names of another count",
)  # fmt: skip


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_a_bad_source_fails_in_one_line(tmp_path: Path, small_reference: Path, case: str) -> None:
    overrides, start = bad_sources(tmp_path)[case]
    cfg = compose_config("eval", [*overrides, f"reference={small_reference}"], tmp_path / "e")
    with pytest.raises(GenlabError) as err:
        evaluate(cfg)
    message = one_line(err)
    assert message.startswith(start)
    assert REASONS.get(case, "") in message
    assert not Path(cfg.out_file).exists()


def foreign_statistics(root: Path) -> dict[str, Path]:
    """Statistics files genlab must refuse (or accept only when told)."""
    lenet = LeNetExtractor()
    mu, sigma = np.zeros(64), np.eye(64)
    files = {
        "another extractor": dict(mu=np.zeros(2048), sigma=np.eye(2048), extractor="inception",
                                  weights_sha256="6726825d" * 8, n=10),
        "other weights": dict(mu=mu, sigma=sigma, extractor="lenet", weights_sha256="0" * 64),
        "no extractor named": dict(mu=mu, sigma=sigma),
        "2048-d no name": dict(mu=np.zeros(2048), sigma=np.eye(2048)),
        "the same extractor": dict(mu=mu, sigma=sigma, extractor="lenet",
                                   weights_sha256=lenet.weights_sha256, n=10),
    }  # fmt: skip
    for name, arrays in files.items():
        np.savez(root / f"{name}.npz", **arrays)
    return {name: root / f"{name}.npz" for name in files}


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("another extractor", [], "holds statistics of 2048-d features, but the lenet extractor"),
        ("other weights", [], "holds statistics of the lenet extractor (weights 000000000000), "
                              "but this evaluation uses lenet (weights"),
        ("no extractor named", [], "does not say which extractor made it"),
        ("2048-d no name", ["accept_unnamed_stats=true"], "holds statistics of 2048-d"),
    ],
)  # fmt: skip
def test_statistics_of_another_extractor_are_refused_in_one_line(
    tmp_path: Path, case: str, extra: list[str], message: str
) -> None:
    stats = foreign_statistics(tmp_path)
    samples = write_npz(tmp_path / "s.npz", digits("test", 20)[0])
    cfg = compose_config("eval", [f"samples={samples}", f"reference={stats[case]}", *extra],
                         tmp_path / "e")  # fmt: skip
    with pytest.raises(GenlabError) as err:
        evaluate(cfg)
    assert message in one_line(err)


def test_an_unnamed_statistics_file_is_read_when_accepted(tmp_path: Path) -> None:
    stats = foreign_statistics(tmp_path)
    samples = write_npz(tmp_path / "s.npz", digits("test", 20)[0])
    results = {}
    for case in ("no extractor named", "the same extractor"):
        cfg = compose_config("eval", [f"samples={samples}", f"reference={stats[case]}",
                                      "accept_unnamed_stats=true"], tmp_path / case)  # fmt: skip
        results[case] = evaluate(cfg)["fid"]
    assert results["no extractor named"] == pytest.approx(results["the same extractor"], rel=1e-9)


def test_samples_without_a_reference_name_what_to_give(tmp_path: Path) -> None:
    samples = write_npz(tmp_path / "s.npz", digits("test", 20)[0])
    cfg = compose_config("eval", [f"samples={samples}"], tmp_path / "e")
    with pytest.raises(GenlabError) as err:
        evaluate(cfg)
    assert one_line(err).startswith("samples need a reference to compare with: reference=")


def test_a_folder_and_an_array_reference_are_the_same_reference(
    tmp_path: Path, run_eval: MakeEval
) -> None:
    """The same 200 real digits as a folder of PNGs and as an .npz reference: the FID of 150
    other digits against each is pytorch-fid's on LeNet features computed here."""
    real, real_labels = digits("test", 200)
    samples, _ = digits("train", 150)
    folder = write_png_folder(tmp_path / "ref_pngs", real, real_labels)
    array = write_npz(tmp_path / "ref.npz", real, real_labels)
    sample_file = write_npz(tmp_path / "s.npz", samples)
    expected = calculate_frechet_distance(
        *moments(lenet_features(real)), *moments(lenet_features(samples))
    )
    for reference, kind in ((folder, "folder"), (array, "array")):
        result = run_eval(f"samples={sample_file}", f"reference={reference}",
                          "metrics.n_samples=150")  # fmt: skip
        assert result["reference_kind"] == kind and result["n_real"] == 200
        assert result["fid"] == pytest.approx(expected, rel=1e-6)
        assert result["precision"] is not None and result["coverage"] is not None


@pytest.mark.parametrize(
    ("make_reference", "message"),
    [
        (lambda root: (root / "empty").mkdir() or root / "empty", "no images (.png"),
        (lambda root: root / "missing.npz", "reference="),
        (lambda root: np.save(root / "floats.npy", np.zeros((4, 28, 28, 1))) or
         root / "floats.npy", "holds float64 values, but images must be uint8"),
    ],
    ids=["folder without images", "missing file", "float pixels"],
)  # fmt: skip
def test_a_bad_reference_fails_in_one_line(
    tmp_path: Path, make_reference: Callable[[Path], Path], message: str
) -> None:
    reference = make_reference(tmp_path)
    samples = write_npz(tmp_path / "s.npz", digits("test", 20)[0])
    cfg = compose_config("eval", [f"samples={samples}", f"reference={reference}"], tmp_path / "e")
    with pytest.raises(GenlabError) as err:
        evaluate(cfg)
    text = one_line(err)
    assert "reference" in text and message in text and str(reference) in text
