"""The sampler's bookkeeping of episodes that end early (a mutation pass found it untested)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.base import BatchedTaskEnv
from metarl.policies import GaussianMLPPolicy, policy_params
from metarl.sampler import rollouts


class EndsAfterItsLength(BatchedTaskEnv):
    """Copy ``i`` terminates after ``task["length"]`` steps; reward 1 per step, even after."""

    observation_dim, action_dim, max_episode_steps = 1, 1, 6

    def __init__(self, num_copies: int) -> None:
        self.num_copies = num_copies
        self.action_low, self.action_high = -np.ones(1), np.ones(1)

    def reset(self, tasks, seed=None):
        self.lengths = np.array([task["length"] for task in tasks])
        self.t = 0
        return np.zeros((self.num_copies, 1))

    def step(self, actions):
        self.t += 1
        terminated = self.t >= self.lengths
        truncated = np.full(self.num_copies, self.t >= self.max_episode_steps)
        return (
            np.full((self.num_copies, 1), self.t),
            np.ones(self.num_copies),
            terminated,
            truncated,
        )


def test_episodes_that_end_early_are_masked_from_their_end_on():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(1, 1, (4,), "tanh", 1.0)
    tasks = [{"length": 2}, {"length": 4}, {"length": 9}]
    episodes = rollouts(
        policy, policy_params(policy), EndsAfterItsLength(6), tasks, 2, torch.Generator()
    )
    lengths = episodes.mask.sum(0)
    assert lengths.tolist() == [[2, 2], [4, 4], [6, 6]]
    # rewards and log-probabilities after an episode's end are zero; before, they are not
    assert episodes.episode_returns().tolist() == [[2, 2], [4, 4], [6, 6]]
    assert (episodes.rewards[episodes.mask == 0] == 0).all()  # the env still paid 1 there
    assert (episodes.log_probs[episodes.mask == 0] == 0).all()
    assert (episodes.log_probs[episodes.mask == 1] != 0).all()


def test_trpo_surrogate_is_minus_the_importance_weighted_advantage_by_hand():
    """Sign and weighting of the outer loss: making good actions likelier lowers it."""
    from metarl.losses import surrogate_loss

    advantages = torch.tensor([[[1.0, -2.0]], [[3.0, 0.0]]])  # [T=2, tasks=1, episodes=2]
    mask = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]]])
    old = torch.zeros(2, 1, 2)
    new = torch.log(torch.tensor([[[2.0, 0.5]], [[1.0, 7.0]]]))
    # -(2*1 + 0.5*(-2) + 1*3) / 3 valid steps; the padded step is ignored
    assert surrogate_loss(new, old, advantages, mask).item() == pytest.approx(-4.0 / 3.0)
    assert surrogate_loss(old, old, advantages, mask).item() == pytest.approx(-2.0 / 3.0)
