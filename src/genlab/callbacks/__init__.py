"""Lightning callbacks: everything with a side effect (images, files, checkpoint contents)."""

from genlab.callbacks.run_config import StoreRunConfig
from genlab.callbacks.sample_grid import SampleGrid

__all__ = ["SampleGrid", "StoreRunConfig"]
