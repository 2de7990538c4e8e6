"""Find the images of a folder and their labels: flat, or one subfolder per class."""

from __future__ import annotations

import logging
from pathlib import Path

from genlab.data.errors import DatasetNotFoundError

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def normalise_extensions(extensions: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Lower-case, with a leading dot, so that `PNG`, `png` and `.png` all match `x.png`."""
    return tuple("." + e.lower().lstrip(".") for e in extensions)


def find_images(
    root: Path, extensions: tuple[str, ...], key: str = "data.path"
) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, label) pairs, sorted by path, and the class names.

    Images inside subfolders make the ImageFolder layout that torchvision reads:
    the label is the index of the top subfolder among the sorted names of the
    subfolders that hold images, and images directly in `root` are left out (with
    a warning). A folder with no subfolder images is flat: every label is -1 and
    there are no classes. Hidden files and folders (`.name`) are skipped. `key` is the
    config key that named the folder, for the error messages.
    """
    if not root.is_dir():
        raise DatasetNotFoundError(f"{key}={root} is not a folder; point it at a folder of images")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in extensions
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DatasetNotFoundError(
            f"no images ({' '.join(extensions)}) found in {root}; "
            f"check {key}" + (" or data.extensions" if key == "data.path" else "")
        )
    nested = [p for p in files if p.parent != root]
    if not nested:
        return [(p, -1) for p in files], []
    if len(nested) < len(files):
        log.warning(
            "%d image(s) directly in %s are not read: with class subfolders, only images inside "
            "them are",
            len(files) - len(nested),
            root,
        )
    classes = sorted({p.relative_to(root).parts[0] for p in nested})
    index = {name: i for i, name in enumerate(classes)}
    return [(p, index[p.relative_to(root).parts[0]]) for p in nested], classes
