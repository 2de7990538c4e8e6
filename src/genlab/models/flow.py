"""FlowMatchingModule: conditional flow matching (Lipman et al., ICLR 2023).

A network v(x, t) regresses the velocity of a probability path from noise x0 ~ N(0, I) at
t = 0 to data x1 at t = 1; on the straight path of rectified flow (Liu et al., ICLR 2023),
x_t = (1 - t) x0 + t x1 with target x1 - x0, the loss is

    L = E_{t ~ U(0, 1), (x0, x1) ~ pi} || v(x_t, t) - (x1 - x0) ||^2  (mean over pixels),

whose minimiser is the marginal velocity E[x1 - x0 | x_t]. `coupling` chooses pi: the
independent pairing, or minibatch optimal transport (Tong et al., TMLR 2024: each batch's
noise re-assigned to its images by the exact assignment of least squared distance), whose
straighter paths need fewer solver steps. Sampling integrates dx/dt = v(x, t) from t = 0
to 1 with Euler, Heun or adaptive dopri5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from genlab.couplings import linear_path, ot_pairing
from genlab.errors import ConfigError
from genlab.models.iterative import IterativeModule
from genlab.sampling import FLOW_SAMPLERS, Model, get_sampler

COUPLINGS = ("independent", "ot")


class FlowMatchingModule(IterativeModule):
    """Logs `train/loss` and `val/loss`, the flow-matching regression loss (mean squared
    velocity error per pixel). Samples with `sampling.solver` (euler | heun | dopri5) in
    `sampling.steps` steps (dopri5: adaptive, within `rtol`/`atol`)."""

    solvers = FLOW_SAMPLERS
    #: dopri5's error tolerances per step (torchdiffeq's rtol and atol)
    sampling_defaults: ClassVar[Mapping[str, Any]] = {"rtol": 1e-5, "atol": 1e-5}

    def __init__(
        self, net: nn.Module, optimizer: Any, coupling: str = "independent", **options: Any
    ) -> None:
        super().__init__(net, optimizer, **options)
        if coupling not in COUPLINGS:
            raise ConfigError(
                f"model.coupling={coupling!r} is unknown; choose one of {', '.join(COUPLINGS)}"
            )
        self.coupling = coupling

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

    def integrate(
        self, model: Model, noise: Tensor, generator: torch.Generator | None, **settings: Any
    ) -> Tensor:
        times = torch.linspace(0.0, 1.0, settings["steps"] + 1)  # dopri5 reads only the ends
        solver = settings["solver"]
        options = {"rtol": settings["rtol"], "atol": settings["atol"]} if solver == "dopri5" else {}
        try:
            return get_sampler(solver, "flow")(model, noise, times, generator=generator, **options)
        except ImportError as err:  # dopri5 without torchdiffeq
            raise ConfigError(f"{err} (or sample with sampling.solver=heun)") from None

    def solver_calls(self, settings: dict[str, Any]) -> int | None:
        return {"euler": settings["steps"], "heun": 2 * settings["steps"]}.get(settings["solver"])
