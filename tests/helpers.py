"""Small synthetic batches and policies for exact-math tests (float64)."""

from pathlib import Path

import torch

from metarl.advantages import add_advantages
from metarl.episodes import Episodes
from metarl.policies import GaussianMLPPolicy, policy_params

D = torch.float64
ROOT = Path(__file__).resolve().parents[1]
# the smallest meta-training run the CLI accepts for end-to-end tests
TINY_TRAIN_ARGS = [
    "--meta-batch-size",
    "3",
    "--episodes-per-task",
    "2",
    "--hidden-sizes",
    "8",
    "8",
    "--no-progress",
]


def tiny_policy(seed: int = 0, obs_dim: int = 2, act_dim: int = 2, hidden=(5,), activation="tanh"):
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(obs_dim, act_dim, hidden, activation, 0.7, init="torch").to(D)
    params = policy_params(policy)
    params["log_std"] = params["log_std"] + 0.1 * torch.randn_like(params["log_std"])
    return policy, params


def random_episodes(
    seed: int, T=6, tasks=3, episodes=4, obs_dim=2, act_dim=2, padded=True
) -> Episodes:
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, tasks, episodes, obs_dim, generator=generator, dtype=D)
    actions = torch.randn(T, tasks, episodes, act_dim, generator=generator, dtype=D)
    rewards = torch.randn(T, tasks, episodes, generator=generator, dtype=D)
    mask = torch.ones(T, tasks, episodes, dtype=D)
    if padded:
        mask[T // 2 :, 0, 0] = 0.0
    return add_advantages(Episodes(obs, actions, rewards * mask, mask), 0.99, 0.95)
