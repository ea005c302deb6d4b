"""Time-major episode batches: ``[T, tasks, episodes, ...]`` with a validity mask."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Episodes:
    """Rollouts of ``episodes`` episodes for each of ``tasks`` tasks, ``T`` steps long.

    ``mask[t, i, j]`` is 1 while episode ``j`` of task ``i`` is running at step ``t``
    and 0 after it ended; rewards and advantages are 0 there too. Tasks may hold different
    numbers of episodes (the paper's batch of at least K x H steps per task): a task's
    unused episode slots are all-zero in ``mask`` (see :attr:`present`).
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

    @property
    def present(self) -> torch.Tensor:
        """``[tasks, episodes]``: 1 for an episode slot that holds an episode, else 0."""
        return (self.mask[0] > 0).to(self.rewards.dtype)

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode, ``[tasks, episodes]`` (0 in unused slots)."""
        return (self.rewards * self.mask).sum(0)

    def _per_task_mean(self, values: torch.Tensor) -> torch.Tensor:
        present = self.present
        return (values * present).sum(1) / present.sum(1).clamp(min=1.0)

    def mean_returns(self) -> torch.Tensor:
        """Mean undiscounted episode return of each task, ``[tasks]``."""
        return self._per_task_mean(self.episode_returns())

    def mean_lengths(self) -> torch.Tensor:
        """Mean episode length of each task, ``[tasks]``."""
        return self._per_task_mean(self.mask.sum(0))

    def success_rate(self) -> torch.Tensor | None:
        """Per task, the fraction of episodes in which ``info["success"]`` was ever 1
        (Meta-World's criterion), ``[tasks]``; ``None`` if the env reports no success."""
        if self.successes is None:
            return None
        succeeded = ((self.successes * self.mask) >= 1).any(dim=0)
        return self._per_task_mean(succeeded.to(self.rewards.dtype))

    def first_episodes(self, fraction: float) -> Episodes:
        """The first ``max(1, round(fraction * n_i))`` episodes of each task ``i`` of ``n_i``
        (episodes are i.i.d., so a fair subsample; it depends on that task alone)."""
        counts = (self.present.sum(1) * fraction).round().clamp(min=1.0)  # [tasks]
        width = int(counts.max().item())
        slots = torch.arange(width, dtype=counts.dtype)
        keep = (slots[None, :] < counts[:, None]).to(self.rewards.dtype)  # [tasks, width]
        fields = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                value = value[:, :, :width]
                if f.name not in ("observations", "actions"):  # zero the dropped episodes
                    value = value * keep
            fields[f.name] = value
        return Episodes(**fields)

    def with_advantages(self, advantages: torch.Tensor) -> Episodes:
        return dataclasses.replace(self, advantages=advantages)

    def to(self, device: torch.device | str) -> Episodes:
        """This batch with every tensor on ``device``."""
        fields = {
            f.name: None if (value := getattr(self, f.name)) is None else value.to(device)
            for f in dataclasses.fields(self)
        }
        return Episodes(**fields)


def flagged_first(flags: torch.Tensor) -> torch.Tensor:
    """Per row of ``flags`` (``[rows, N]``, true or nonzero = flagged), the column indices of
    its flagged entries first, in order, cut to the most any row has: ``[rows, M]``.

    Gathering with them (``torch.take_along_dim``) packs each row's flagged entries to the
    front; entries past a row's own count are unflagged ones.
    """
    width = int((flags != 0).sum(1).max().item()) if flags.numel() else 0
    order = torch.sort((flags == 0).to(torch.uint8), dim=1, stable=True).indices
    return order[:, : max(width, 1)]
