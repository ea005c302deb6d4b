"""The hand-written MLP products equal autograd's (float64, padded episodes, both activations).

The end-to-end checks (meta-gradient against finite differences, the curvature against the
explicit Hessian of the KL) in test_meta_gradient.py and test_trpo.py run through these
products too; here each product is compared on its own, per task.
"""

import dataclasses

import pytest
import torch
from torch import nn
from torch.func import vjp

from metarl import mlp_products
from metarl.adaptation import _expand, _task_gradients
from metarl.advantages import add_advantages
from metarl.curvature import GaussianFisher
from metarl.episodes import Episodes
from metarl.mlp_products import InnerLossCurvature, mlp_layout, take_rows, valid_rows
from metarl.policies import GaussianMLPPolicy, gaussian_log_prob
from tests.helpers import D, random_episodes

# episode lengths [task][episode] of the ragged batch: every task has padding (16, 13 and 14
# valid rows of 24), so the products drop padded rows (24 -> 16 per task)
RAGGED_LENGTHS = [[3, 6, 2, 5], [1, 4, 4, 4], [6, 5, 2, 1]]


def ragged_episodes(seed: int, T=6, obs_dim=3, act_dim=2) -> Episodes:
    generator = torch.Generator().manual_seed(seed)
    tasks, episodes = len(RAGGED_LENGTHS), len(RAGGED_LENGTHS[0])
    obs = torch.randn(T, tasks, episodes, obs_dim, generator=generator, dtype=D)
    actions = torch.randn(T, tasks, episodes, act_dim, generator=generator, dtype=D)
    rewards = torch.randn(T, tasks, episodes, generator=generator, dtype=D)
    steps = torch.arange(T).reshape(T, 1, 1)
    mask = (steps < torch.tensor(RAGGED_LENGTHS).unsqueeze(0)).to(D)
    return add_advantages(Episodes(obs, actions, rewards * mask, mask), 0.99, 0.95)


@pytest.fixture(params=["padded", "ragged"])
def batch(request):
    """Episodes with one padded task (nothing to drop), and with every task padded."""
    if request.param == "padded":
        return lambda seed: random_episodes(seed, obs_dim=3)
    return ragged_episodes


class AutogradPolicy(GaussianMLPPolicy):
    """The same network; a subclass, so the products fall back to autograd."""


def _pair(hidden, activation, obs_dim=3, act_dim=2):
    torch.manual_seed(0)
    fast = GaussianMLPPolicy(obs_dim, act_dim, hidden, activation, 0.7, init="torch").to(D)
    slow = AutogradPolicy(obs_dim, act_dim, hidden, activation, 0.7, init="torch").to(D)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def _point(policy, tasks, seed=1):
    generator = torch.Generator().manual_seed(seed)
    params = _expand({k: v.detach() for k, v in policy.named_parameters()}, tasks)
    # per-task points away from the shared initialisation, and some ReLUs switched off
    return {
        k: v + 0.3 * torch.randn(v.shape, generator=generator, dtype=D) for k, v in params.items()
    }


def _random_like(params, seed):
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator, dtype=D) for k, v in params.items()}


CASES = [((7, 5), "relu"), ((7, 5), "tanh"), ((6,), "tanh"), ((4, 5, 3), "relu"), ((), "relu")]


@pytest.fixture(params=[8192, 30], ids=["one-chunk", "chunk-per-task"])
def chunk_rows(request, monkeypatch):
    """Products over the whole batch, and over chunks of one task (24 rows per task here)."""
    monkeypatch.setattr(mlp_products, "CHUNK_ROWS", request.param)
    return request.param


def with_sampling_log_probs(policy, episodes: Episodes) -> Episodes:
    """The episodes with log-probs recorded under ``policy``'s own parameters (the sampling
    policy), which differ from the per-task points of the tests: LVC weights away from 1.
    Padded steps get a large value, which must not reach the products."""
    mean, log_std = policy(episodes.observations)
    log_probs = gaussian_log_prob(mean, log_std, episodes.actions).detach()
    log_probs = torch.where(episodes.mask > 0, log_probs, torch.full_like(log_probs, -1e4))
    return dataclasses.replace(episodes, log_probs=log_probs)


# the inner estimators with hand-written products; LVC with and without recorded log-probs
ESTIMATORS = ["reinforce", "lvc", "lvc-recorded"]


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("hidden,activation", CASES)
def test_inner_gradient_and_hessian_products_equal_autograd(
    hidden, activation, estimator, chunk_rows, batch
):
    policy, _ = _pair(hidden, activation)
    episodes = batch(0)
    if estimator == "lvc-recorded":
        episodes, estimator = with_sampling_log_probs(policy, episodes), "lvc"
    point = _point(policy, episodes.num_tasks)
    gradients = _task_gradients(policy, estimator)
    expected_gradient, pullback = vjp(lambda p: gradients(p, episodes), point)
    curvature = InnerLossCurvature(mlp_layout(policy), point, episodes, estimator)
    assert len(curvature._chunks) == (1 if chunk_rows > 100 else episodes.num_tasks)
    assert list(curvature.gradient) == list(point)
    for name in point:
        torch.testing.assert_close(curvature.gradient[name], expected_gradient[name])
    for seed in (2, 3):
        direction = _random_like(point, seed)
        expected = pullback(direction)[0]
        product = curvature.hessian_product(direction)
        assert list(product) == list(point)
        for name in point:
            assert expected[name].abs().max() > 1e-6
            torch.testing.assert_close(product[name], expected[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hidden,activation", CASES)
def test_fisher_products_equal_autograd(hidden, activation, chunk_rows, batch):
    fast, slow = _pair(hidden, activation)
    episodes = batch(4)
    point = _point(fast, episodes.num_tasks)
    by_hand, by_autograd = (
        GaussianFisher(fast, point, episodes),
        GaussianFisher(slow, point, episodes),
    )
    assert by_hand._by_hand is not None and by_autograd._by_hand is None
    direction = _random_like(point, 5)
    expected, product = by_autograd(direction), by_hand(direction)
    assert list(product) == list(point)
    for name in point:
        torch.testing.assert_close(product[name], expected[name], rtol=1e-10, atol=1e-12)


def test_products_skip_padded_rows_only_when_every_task_has_some():
    layout = mlp_layout(_pair((7, 5), "relu")[0])
    ragged = ragged_episodes(0)
    point = _point(_pair((7, 5), "relu")[0], ragged.num_tasks)
    rows = InnerLossCurvature(layout, point, ragged)._chunks[0][1].point.inputs[0].shape[1]
    assert rows == 16  # the longest task's valid rows, not 6 x 4
    padded = random_episodes(0, obs_dim=3)
    assert valid_rows(mlp_products.task_major(padded.mask, 0)) is None
    mask = mlp_products.task_major(ragged.mask, 0)
    kept = take_rows(mask, valid_rows(mask))
    assert kept.shape == (3, 16)
    assert kept.sum(1).tolist() == mask.sum(1).tolist()  # every valid row kept
    assert kept[0].min() == 1  # the longest task: only valid rows


def test_layout_only_for_the_plain_mlp_policy():
    policy, subclass = _pair((4, 4), "tanh")
    layout = mlp_layout(policy)
    assert layout is not None and layout.activation == "tanh"
    assert layout.layers == (
        ("mean.0.weight", "mean.0.bias"),
        ("mean.2.weight", "mean.2.bias"),
        ("mean.4.weight", "mean.4.bias"),
    )
    assert mlp_layout(subclass) is None
    other = GaussianMLPPolicy(3, 2, (4,), "relu")
    other.mean[1] = nn.ELU()  # an activation the products do not know
    assert mlp_layout(other) is None
