"""Time-major episode batches: ``[T, tasks, episodes, ...]`` with a validity mask."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Episodes:
    """Rollouts of ``episodes`` episodes for each of ``tasks`` tasks, ``T`` steps long.

    ``mask[t, i, j]`` is 1 while episode ``j`` of task ``i`` is running at step ``t``
    and 0 after it ended; rewards and advantages are 0 there too.
    """

    observations: torch.Tensor  # [T, tasks, episodes, obs_dim]
    actions: torch.Tensor  # [T, tasks, episodes, act_dim]
    rewards: torch.Tensor  # [T, tasks, episodes]
    mask: torch.Tensor  # [T, tasks, episodes]
    advantages: torch.Tensor | None = None  # [T, tasks, episodes]
    log_probs: torch.Tensor | None = None  # [T, tasks, episodes], under the sampling policy
    # [T, tasks, episodes]: the env's info["success"] at each step, for envs that report one
    successes: torch.Tensor | None = None

    def __post_init__(self) -> None:
        horizon, tasks, episodes = self.rewards.shape
        expected = (horizon, tasks, episodes)
        names = (
            "observations",
            "actions",
            "rewards",
            "mask",
            "advantages",
            "log_probs",
            "successes",
        )
        for name in names:
            value = getattr(self, name)
            if value is not None and tuple(value.shape[:3]) != expected:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {expected}[...]")

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[1]

    @property
    def num_steps(self) -> int:
        """Number of valid environment steps in the batch."""
        return int(self.mask.sum().item())

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode, ``[tasks, episodes]``."""
        return (self.rewards * self.mask).sum(0)

    def success_rate(self) -> torch.Tensor | None:
        """Per task, the fraction of episodes in which ``info["success"]`` was ever 1
        (Meta-World's criterion), ``[tasks]``; ``None`` if the env reports no success."""
        if self.successes is None:
            return None
        succeeded = ((self.successes * self.mask) >= 1).any(dim=0)
        return succeeded.to(self.rewards.dtype).mean(dim=1)

    def first_episodes(self, count: int) -> Episodes:
        """The first ``count`` episodes of every task (episodes are i.i.d., so a fair subsample)."""
        fields = {
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[:, :, :count]
            for f in dataclasses.fields(self)
        }
        return Episodes(**fields)

    def with_advantages(self, advantages: torch.Tensor) -> Episodes:
        return dataclasses.replace(self, advantages=advantages)
