"""Reptile (Nichol et al. 2018): move the initialisation towards the adapted parameters.

``theta <- theta + step_size * mean_i(phi_i - theta)``, with ``phi_i`` the parameters after
the training-time inner steps on task ``i``. First order by construction: no gradient
flows through the inner loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from metarl.algorithms.base import InnerLoop, MetaBatch
from metarl.distributed import World
from metarl.policies import Params


@dataclass
class Reptile:
    """The Reptile outer update on top of the shared inner loop."""

    policy: nn.Module
    inner: InnerLoop
    step_size: float = 0.1
    world: World = field(default_factory=World)  # ranks whose tasks' means are averaged

    def step(self, params: Params, batch: MetaBatch) -> tuple[Params, dict[str, float]]:
        with torch.no_grad():
            adapted = self.inner(self.policy, params, batch.pre)
            new = dict(params)
            norm_sq = 0.0
            for name, value in adapted.items():
                direction = self.world.mean((value - params[name]).mean(0))
                new[name] = params[name] + self.step_size * direction
                norm_sq += float(direction.pow(2).sum())
        return new, {"losses/reptile_direction_norm": norm_sq**0.5}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any], params: Params | None = None) -> None:
        del state, params
