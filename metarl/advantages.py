"""Returns, generalized advantage estimation and the linear feature baseline (pure functions).

Every function takes time-major tensors ``[T, ...]`` with a ``mask`` that is 1 on
valid steps and 0 on padding after an episode ended; padding never leaks into results.
"""

from __future__ import annotations

import torch

from metarl.episodes import Episodes


def discount_matrix(horizon: int, discount: float, dtype: torch.dtype) -> torch.Tensor:
    """``M[t, s] = discount^(s - t)`` for ``s >= t``, else 0: ``M @ x`` is a reverse discounted sum."""
    steps = torch.arange(horizon, dtype=dtype)
    powers = steps[None, :] - steps[:, None]
    return torch.where(powers >= 0, discount ** powers.clamp(min=0), torch.zeros((), dtype=dtype))


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """``R_t = sum_{s >= t} gamma^(s-t) r_s`` within each episode; 0 on padding.

    Episodes do not restart inside a batch column, so padding (masked to 0) ends the sum.
    """
    horizon = rewards.shape[0]
    flat = (rewards * mask).reshape(horizon, -1)
    returns = discount_matrix(horizon, gamma, rewards.dtype) @ flat
    return returns.reshape(rewards.shape) * mask


def generalized_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """GAE (Schulman et al. 2016): ``A_t = sum_l (gamma*lam)^l delta_{t+l}``.

    ``delta_t = r_t + gamma V_{t+1} - V_t`` with ``V`` taken as 0 after the episode's last
    step (no bootstrapping at the horizon, as in the MAML paper's code).
    """
    horizon = rewards.shape[0]
    values = values * mask
    next_values = torch.cat([values[1:], torch.zeros_like(values[:1])]) * torch.cat(
        [mask[1:], torch.zeros_like(mask[:1])]
    )
    deltas = (rewards + gamma * next_values - values) * mask
    flat = deltas.reshape(horizon, -1)
    advantages = discount_matrix(horizon, gamma * lam, rewards.dtype) @ flat
    return advantages.reshape(rewards.shape) * mask


def baseline_features(observations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Linear-baseline features (Duan et al. 2016): ``[s, s^2, t/100, (t/100)^2, (t/100)^3, 1]``.

    Observations are clipped to ``[-10, 10]`` as in rllab so the squares stay tame.
    Returns ``[T, ..., 2 * obs_dim + 4]``, zeroed on padding.
    """
    obs = observations.clamp(-10.0, 10.0)
    horizon = obs.shape[0]
    time = torch.arange(horizon, dtype=obs.dtype) / 100.0
    time = time.reshape((horizon,) + (1,) * (obs.dim() - 1)).expand(*obs.shape[:-1], 1)
    ones = torch.ones_like(time)
    features = torch.cat([obs, obs**2, time, time**2, time**3, ones], dim=-1)
    return features * mask.unsqueeze(-1)


def fit_linear_baseline(
    features: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, reg: float = 1e-5
) -> torch.Tensor:
    """Ridge regression of returns on features, one fit per task.

    ``features [T, tasks, episodes, F]``, ``returns``/``mask [T, tasks, episodes]``;
    returns weights ``[tasks, F]``. Solved in float64 by Cholesky (the ridge makes the
    system positive definite); the ridge coefficient grows tenfold (up to 1e5 times) until
    the factorisation succeeds and the solution is finite, and a fit that never does gives
    zero weights (a zero baseline) rather than NaN. Cholesky, not LU: this torch build's
    batched LU (``torch.linalg.solve``) fails on 2 threads from about 160 features
    (Ant's 254), with oneMKL "Parameter 6 was incorrect on entry to DLASWP".
    """
    x = (features * mask.unsqueeze(-1)).to(torch.float64)
    y = (returns * mask).to(torch.float64)
    x = x.transpose(0, 1).reshape(x.shape[1], -1, x.shape[-1])  # [tasks, T*episodes, F]
    y = y.transpose(0, 1).reshape(y.shape[1], -1, 1)
    gram = x.transpose(1, 2) @ x
    target = x.transpose(1, 2) @ y
    eye = torch.eye(gram.shape[-1], dtype=torch.float64)
    weights = torch.zeros(gram.shape[0], gram.shape[-1], dtype=torch.float64)
    unsolved = torch.ones(gram.shape[0], dtype=torch.bool)
    for attempt in range(6):
        coefficient = reg * 10.0**attempt
        factor, info = torch.linalg.cholesky_ex(gram + coefficient * eye)
        solution = torch.cholesky_solve(target, factor).squeeze(-1)
        solved = unsolved & (info == 0) & torch.isfinite(solution).all(-1)
        weights = torch.where(solved[:, None], solution, weights)
        unsolved &= ~solved
        if not unsolved.any():
            break
    return weights.to(features.dtype)


def predict_linear_baseline(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Baseline values ``[T, tasks, episodes]`` from features and per-task weights ``[tasks, F]``."""
    return torch.einsum("tnef,nf->tne", features, weights)


def normalize_per_task(
    advantages: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Zero-mean, unit-std advantages within each task (axis 1) over its valid steps."""
    count = mask.sum(dim=(0, 2), keepdim=True).clamp(min=1.0)
    mean = (advantages * mask).sum(dim=(0, 2), keepdim=True) / count
    var = ((advantages - mean).pow(2) * mask).sum(dim=(0, 2), keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + eps) * mask


def add_advantages(
    episodes: Episodes, gamma: float, gae_lambda: float, normalize: bool = True
) -> Episodes:
    """Fit the linear baseline per task and attach (optionally normalized) GAE advantages."""
    returns = discounted_returns(episodes.rewards, episodes.mask, gamma)
    features = baseline_features(episodes.observations, episodes.mask)
    weights = fit_linear_baseline(features, returns, episodes.mask)
    values = predict_linear_baseline(features, weights)
    advantages = generalized_advantages(episodes.rewards, values, episodes.mask, gamma, gae_lambda)
    if normalize:
        advantages = normalize_per_task(advantages, episodes.mask)
    return episodes.with_advantages(advantages.detach())
