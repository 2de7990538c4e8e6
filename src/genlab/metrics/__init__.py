"""Generative metrics: FID, KID, IS, precision/recall, and the VAE's likelihood bounds."""

from genlab.metrics.callback import GenerativeMetrics

__all__ = ["GenerativeMetrics"]
