"""FlowMatchingModule: conditional flow matching (Lipman et al., ICLR 2023).

A network v(x, t) regresses the velocity of a probability path from noise x0 ~ N(0, I) at
t = 0 to data x1 at t = 1; on the straight path of rectified flow (Liu et al., ICLR 2023),
x_t = (1 - t) x0 + t x1 with target x1 - x0, the loss is

    L = E_{t ~ U(0, 1), (x0, x1) ~ pi} || v(x_t, t) - (x1 - x0) ||^2  (mean over pixels),

whose minimiser is the marginal velocity E[x1 - x0 | x_t]. `coupling` chooses pi: the
independent pairing, or minibatch optimal transport (Tong et al., TMLR 2024: each batch's
noise re-assigned to its images by the exact assignment of least squared distance), whose
straighter paths need fewer solver steps.

In the denoiser view (`genlab.denoising`) the path is the process x = s (x0 + sigma n) with
s = t and sigma = (1 - t) / t, and the velocity predicts D = x + (1 - t) v; every sampler
serves it, and Euler on its own grid is Euler on dx/dt = v from t = 0 to 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.couplings import linear_path, ot_pairing
from genlab.denoising.denoisers import velocity
from genlab.denoising.processes import RectifiedFlow
from genlab.errors import ConfigError
from genlab.models.iterative import IterativeModule

COUPLINGS = ("independent", "ot")


class FlowMatchingModule(IterativeModule):
    """Logs `train/loss` and `val/loss`, the flow-matching regression loss (mean squared
    velocity error per pixel)."""

    parameterisation = staticmethod(velocity)

    def __init__(
        self, net: nn.Module, optimizer: Any, coupling: str = "independent", **options: Any
    ) -> None:
        super().__init__(net, optimizer, **options)
        if coupling not in COUPLINGS:
            raise ConfigError(
                f"model.coupling={coupling!r} is unknown; choose one of {', '.join(COUPLINGS)}"
            )
        self.coupling = coupling
        self.process = RectifiedFlow()

    def objective(
        self, x: Tensor, labels: Tensor | None, generator: torch.Generator | None = None
    ) -> Tensor:
        if generator is None:
            noise, t = torch.randn_like(x), torch.rand(x.shape[0], device=x.device)
        else:
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            t = torch.rand(x.shape[0], generator=generator).to(x.device)
        if self.coupling == "ot":
            noise = noise[ot_pairing(noise, x)]
        x_t, target = linear_path(noise, x, t)
        velocity = self.net(x_t, t, labels)
        return (velocity.float() - target.float()).pow(2).mean()
