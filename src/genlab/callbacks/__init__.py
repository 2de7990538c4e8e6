"""Lightning callbacks: everything with a side effect (images, files, checkpoint contents)."""

from genlab.callbacks.ema import EMA
from genlab.callbacks.interrupt_checkpoint import InterruptCheckpoint
from genlab.callbacks.last_checkpoint import LastCheckpoint
from genlab.callbacks.nan_guard import NanGuard, NonFiniteLossError
from genlab.callbacks.posthoc_ema import PostHocEMA
from genlab.callbacks.progress_bar import IntervalProgressBar
from genlab.callbacks.rng_states import RNGStates
from genlab.callbacks.run_config import StoreRunConfig
from genlab.callbacks.sample_grid import SampleGrid

__all__ = [
    "EMA",
    "InterruptCheckpoint",
    "IntervalProgressBar",
    "LastCheckpoint",
    "NanGuard",
    "NonFiniteLossError",
    "PostHocEMA",
    "RNGStates",
    "SampleGrid",
    "StoreRunConfig",
]
