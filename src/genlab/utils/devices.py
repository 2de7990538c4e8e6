"""The `device=` option of genlab-sample and genlab-eval, checked before any work."""

from __future__ import annotations

import torch

from genlab.errors import ConfigError


def checked_device(name: str) -> torch.device:
    """`torch.device(name)`, or one ConfigError line when it is not a device of this machine.

    Without the check, `device=cuda` on a machine without CUDA fails deep inside torch,
    after the checkpoint and the data have been loaded, with a driver traceback.
    """
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError) as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"device={name} is not a device ({reason}); use cpu or cuda") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device={name} but this machine has no usable CUDA GPU; use device=cpu"
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device={name} but this machine has {count} CUDA GPU(s): "
                f"use device=cuda:0 ... cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name} but MPS is not available here; use device=cpu")
    return device
