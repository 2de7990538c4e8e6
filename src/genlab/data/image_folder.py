"""Any folder of images: flat, or one subfolder per class as torchvision's ImageFolder reads."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from genlab.data.base import ImageDataModule, RawSplit
from genlab.data.errors import DataError, DatasetNotFoundError

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
SHOWN_BAD_FILES = 3


class ImageFolderDataModule(ImageDataModule):
    """Decodes every image once at setup: converted to `channels` (L or RGB), resized so the
    shorter side is `image_size`, centre-cropped to a square.

    Labels are class-subfolder indices (sorted names), or -1 for a flat folder.
    """

    name = "image_folder"

    def __init__(
        self,
        *args: object,
        path: str,
        skip_bad_files: bool = False,
        extensions: tuple[str, ...] | list[str] = DEFAULT_EXTENSIONS,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.channels not in (1, 3):
            raise DataError(f"data.channels must be 1 or 3 for an image folder, got {self.channels}")
        self.path = Path(path)
        self.skip_bad_files = skip_bad_files
        self.extensions = tuple(e.lower() for e in extensions)
        self.classes: list[str] = []
        self.n_skipped = 0

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) or None

    def _files(self) -> list[tuple[Path, int]]:
        if not self.path.is_dir():
            raise DatasetNotFoundError(f"data.path={self.path} is not a directory; point it at a folder of images")
        files = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in self.extensions)
        if not files:
            raise DatasetNotFoundError(
                f"no images ({' '.join(self.extensions)}) found in {self.path}; "
                "check data.path or data.extensions"
            )
        nested = [p for p in files if p.parent != self.path]
        if not nested:
            return [(p, -1) for p in files]
        self.classes = sorted({p.relative_to(self.path).parts[0] for p in nested})
        index = {name: i for i, name in enumerate(self.classes)}
        return [(p, index[p.relative_to(self.path).parts[0]]) for p in nested]

    def _decode(self, path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            image = image.convert("L" if self.channels == 1 else "RGB")
            tensor = TF.pil_to_tensor(image)
        tensor = TF.resize(tensor, [self.image_size], antialias=True)
        return TF.center_crop(tensor, [self.image_size, self.image_size])

    def load_raw(self) -> dict[str, RawSplit]:
        images, labels, bad = [], [], []
        for path, label in self._files():
            try:
                images.append(self._decode(path))
                labels.append(label)
            except (UnidentifiedImageError, OSError, ValueError):
                bad.append(path)
        if bad and not self.skip_bad_files:
            shown = ", ".join(str(p) for p in bad[:SHOWN_BAD_FILES])
            more = f" and {len(bad) - SHOWN_BAD_FILES} more" if len(bad) > SHOWN_BAD_FILES else ""
            raise DataError(
                f"{len(bad)} unreadable image file(s) in {self.path}: {shown}{more}; "
                "remove them or set data.skip_bad_files=true"
            )
        self.n_skipped = len(bad)
        if bad:
            log.warning("skipped %d unreadable image file(s) in %s", len(bad), self.path)
        if not images:
            raise DataError(f"no readable images in {self.path}")
        return {"train": (torch.stack(images), torch.tensor(labels, dtype=torch.long))}
