"""Read data files that are pickles (CIFAR-10's batches) without running code stored in them.

`pickle.load` calls whatever a file names, so a file placed in `data_dir` (or a checkpoint
whose config points `data_dir` at such files) could run any code. CIFAR-10's files hold
only dicts, lists, strings, numbers and numpy arrays; this unpickler builds those and
refuses every other name.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

# What a pickled numpy array needs, under numpy 1's and numpy 2's module names.
ARRAY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol 2
    }
)


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain data and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ARRAY_GLOBALS:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which a data file has no use for; not loaded"
            )
        return super().find_class(module, name)


def load_data_pickle(path: Path) -> Any:
    """The contents of a pickled data file (Python 2's str read as latin-1, as torchvision does)."""
    with path.open("rb") as file:
        return ArrayUnpickler(file, encoding="latin1").load()
