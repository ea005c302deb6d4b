"""Adaptation curves on held-out tasks: returns after 0, 1, ..., K inner steps.

The paper's protocol (Finn et al. 2017, section 5.3): for each held-out task, sample
episodes with the current parameters, take a policy-gradient step with the same
:func:`~metarl.adaptation.inner_step` used in training (step size ``alpha`` first,
``alpha / 2`` afterwards), and repeat; report the mean undiscounted return per episode
after each number of steps. All tasks are evaluated at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.base import BatchedTaskEnv
from metarl.adaptation import inner_step
from metarl.advantages import add_advantages
from metarl.policies import Params
from metarl.sampler import rollouts


def test_time_step_sizes(step_size: float, steps: int) -> list[float]:
    """The paper's schedule: ``alpha`` for the first step, ``alpha / 2`` for later ones."""
    return [step_size if k == 0 else step_size / 2 for k in range(steps)]


def adaptation_curve(
    policy: nn.Module,
    params: Params,
    env: BatchedTaskEnv,
    tasks: Sequence[Mapping[str, Any]],
    episodes_per_task: int,
    adapt_steps: int,
    step_size: float,
    gamma: float = 0.99,
    gae_lambda: float = 1.0,
    seed: int = 0,
    step_sizes: Sequence[float] | None = None,
) -> torch.Tensor:
    """Mean return per task after ``k = 0..adapt_steps`` inner steps: ``[adapt_steps + 1, tasks]``.

    Deterministic for a given ``seed``. ``step_sizes`` overrides the paper's schedule.
    """
    if adapt_steps < 0:
        raise ValueError(f"adapt_steps must be >= 0, got {adapt_steps}")
    schedule = (
        list(step_sizes) if step_sizes is not None else test_time_step_sizes(step_size, adapt_steps)
    )
    if len(schedule) != adapt_steps:
        raise ValueError(f"got {len(schedule)} step sizes for {adapt_steps} steps")
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    current, per_task = params, False
    curve = []
    for k in range(adapt_steps + 1):
        env_seed = int(rng.integers(2**31 - 1))
        episodes = rollouts(
            policy, current, env, tasks, episodes_per_task, generator, env_seed, per_task
        )
        curve.append(episodes.episode_returns().mean(dim=1))
        if k == adapt_steps:
            break
        episodes = add_advantages(episodes, gamma, gae_lambda)
        adapted = inner_step(policy, current, episodes, schedule[k], per_task, first_order=True)
        current = {name: value.detach() for name, value in adapted.items()}
        per_task = True
    return torch.stack(curve)
