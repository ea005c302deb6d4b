"""Returns, GAE and the linear baseline against hand-computed values."""

import numpy as np
import pytest
import torch

from metarl.advantages import (
    add_advantages,
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    generalized_advantages,
    normalize_per_task,
    predict_linear_baseline,
)
from metarl.episodes import Episodes

D = torch.float64


def padded_batch():
    # [T=4, tasks=1, episodes=2]: episode 0 lasts 4 steps, episode 1 ends after 2 (padding after).
    rewards = torch.tensor([[1.0, 2.0], [2.0, 3.0], [3.0, 99.0], [4.0, -99.0]], dtype=D)[:, None]
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0]], dtype=D)[:, None]
    return rewards, mask


def test_discounted_returns_by_hand_ignores_padding():
    rewards, mask = padded_batch()
    returns = discounted_returns(rewards, mask, gamma=0.5)
    expected = torch.tensor(
        [
            [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4, 2 + 0.5 * 3],
            [2 + 0.5 * 3 + 0.25 * 4, 3.0],
            [3 + 0.5 * 4, 0.0],
            [4.0, 0.0],
        ],
        dtype=D,
    )[:, None]
    torch.testing.assert_close(returns, expected)


def test_gae_by_hand():
    rewards, mask = padded_batch()
    values = torch.tensor([[0.5, 1.0], [1.5, 2.0], [2.5, 50.0], [3.5, 50.0]], dtype=D)[:, None]
    gamma, lam = 0.9, 0.8
    advantages = generalized_advantages(rewards, values, mask, gamma, lam)
    # episode 0: delta_t = r_t + gamma V_{t+1} - V_t with V_4 = 0
    v0, r0 = [0.5, 1.5, 2.5, 3.5, 0.0], [1.0, 2.0, 3.0, 4.0]
    d0 = [r0[t] + gamma * v0[t + 1] - v0[t] for t in range(4)]
    a0 = [0.0] * 4
    running = 0.0
    for t in reversed(range(4)):
        running = d0[t] + gamma * lam * running
        a0[t] = running
    # episode 1: two steps; the padding's values (50) must not leak in
    d1 = [2.0 + gamma * 2.0 - 1.0, 3.0 + 0.0 - 2.0]
    a1 = [d1[0] + gamma * lam * d1[1], d1[1], 0.0, 0.0]
    expected = torch.tensor([a0, a1], dtype=D).T[:, None]
    torch.testing.assert_close(advantages, expected)


def test_gae_with_lambda_one_is_returns_minus_values():
    rewards, mask = padded_batch()
    values = torch.rand(4, 1, 2, dtype=D)
    advantages = generalized_advantages(rewards, values, mask, 0.99, 1.0)
    torch.testing.assert_close(
        advantages, (discounted_returns(rewards, mask, 0.99) - values) * mask
    )


def test_baseline_features_by_hand():
    obs = torch.tensor([[[[2.0]]], [[[20.0]]]], dtype=D)  # [T=2, 1, 1, obs_dim=1]
    mask = torch.ones(2, 1, 1, dtype=D)
    features = baseline_features(obs, mask)[:, 0, 0]
    expected = torch.tensor(
        [[2.0, 4.0, 0.0, 0.0, 0.0, 1.0], [10.0, 100.0, 0.01, 1e-4, 1e-6, 1.0]], dtype=D
    )
    torch.testing.assert_close(features, expected)


def test_linear_baseline_matches_numpy_ridge_and_ignores_padding():
    torch.manual_seed(0)
    T, tasks, episodes, obs_dim = 6, 2, 3, 2
    obs = torch.randn(T, tasks, episodes, obs_dim, dtype=D)
    returns = torch.randn(T, tasks, episodes, dtype=D)
    mask = torch.ones(T, tasks, episodes, dtype=D)
    mask[4:, 1, 0] = 0.0
    features = baseline_features(obs, mask)
    weights = fit_linear_baseline(features, returns, mask, reg=1e-5)
    for task in range(tasks):
        valid = mask[:, task].reshape(-1) > 0
        x = features[:, task].reshape(-1, features.shape[-1])[valid].numpy()
        y = returns[:, task].reshape(-1)[valid].numpy()
        expected = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
        np.testing.assert_allclose(weights[task].numpy(), expected, rtol=1e-6, atol=1e-8)
    changed = returns.clone()
    changed[4:, 1, 0] = 1e6  # padding values must not change the fit
    torch.testing.assert_close(fit_linear_baseline(features, changed, mask), weights)


def test_linear_baseline_with_ants_features_on_two_threads():
    # Ant's 125 observations give 254 features; torch.linalg.solve's batched LU failed on
    # them with 2 threads in this torch build (oneMKL DLASWP error), so every Ant run on
    # the default 2 threads stopped in its first iteration
    generator = torch.Generator().manual_seed(0)
    T, tasks, episodes, obs_dim = 40, 3, 10, 125
    obs = torch.randn(T, tasks, episodes, obs_dim, generator=generator)
    returns = torch.randn(T, tasks, episodes, generator=generator)
    mask = torch.ones(T, tasks, episodes)
    features = baseline_features(obs, mask)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        weights = fit_linear_baseline(features, returns, mask)
    finally:
        torch.set_num_threads(threads)
    for task in range(tasks):
        x = features[:, task].reshape(-1, features.shape[-1]).double().numpy()
        y = returns[:, task].reshape(-1).double().numpy()
        expected = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
        np.testing.assert_allclose(weights[task].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_linear_baseline_exact_on_linear_returns():
    T = 10
    obs = torch.linspace(-1, 1, T, dtype=D).reshape(T, 1, 1, 1).repeat(1, 1, 2, 1)
    mask = torch.ones(T, 1, 2, dtype=D)
    features = baseline_features(obs, mask)
    returns = 3.0 * obs[..., 0] - 2.0 * obs[..., 0] ** 2 + 0.5
    weights = fit_linear_baseline(features, returns, mask, reg=1e-10)
    torch.testing.assert_close(
        predict_linear_baseline(features, weights), returns, atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("case", ["equal_observations", "one_step", "all_padding"])
def test_linear_baseline_never_nan_on_degenerate_input(case):
    T, episodes = 5, 4
    obs = torch.zeros(T, 1, episodes, 3)
    returns = torch.randn(T, 1, episodes)
    mask = torch.ones(T, 1, episodes)
    if case == "one_step":
        mask[1:] = 0.0
    if case == "all_padding":
        mask[:] = 0.0
    weights = fit_linear_baseline(baseline_features(obs, mask), returns, mask)
    assert torch.isfinite(weights).all()
    episodes_batch = Episodes(obs, torch.zeros(T, 1, episodes, 2), returns * mask, mask)
    advantages = add_advantages(episodes_batch, 0.99, 1.0).advantages
    assert torch.isfinite(advantages).all()


def test_normalize_per_task_uses_valid_steps_only():
    advantages = torch.tensor([[1.0, 3.0], [5.0, 100.0]], dtype=D)[:, :, None]  # [T=2, tasks=2, 1]
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=D)[:, :, None]
    normalized = normalize_per_task(advantages, mask)
    task0 = torch.tensor([1.0, 5.0], dtype=D)
    torch.testing.assert_close(normalized[:, 0, 0], (task0 - 3.0) / (2.0 + 1e-8))
    assert (
        normalized[1, 1, 0] == 0.0 and normalized[0, 1, 0] == 0.0
    )  # one valid step: zero after centering
