"""The meta-gradient is the exact second-order gradient through the inner loop.

Objective: the sampled post-update surrogate ``f(theta) = mean_i L_i(adapt(theta)_i)``
with the data held fixed; autograd's gradient must equal central finite differences.
"""

import pytest
import torch
from torch.autograd.functional import hessian
from torch.func import functional_call

from metarl.adaptation import adapt, task_inner_loss
from metarl.algorithms.maml_trpo import InnerLoop, MetaBatch, PostUpdateObjective
from metarl.policies import gaussian_log_prob
from metarl.trpo import flatten, unflatten
from tests.helpers import random_episodes, tiny_policy


def finite_difference_gradient(f, theta, eps=1e-6):
    flat = flatten(theta)
    grad = torch.zeros_like(flat)
    for i in range(flat.numel()):
        step = torch.zeros_like(flat)
        step[i] = eps
        grad[i] = (f(unflatten(flat + step, theta)) - f(unflatten(flat - step, theta))) / (2 * eps)
    return grad


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_meta_gradient_matches_finite_differences(inner_steps):
    policy, theta = tiny_policy()
    batch = MetaBatch(pre=[random_episodes(s) for s in range(inner_steps)], post=random_episodes(9))
    inner = InnerLoop(step_size=0.3)
    objective = PostUpdateObjective(policy, inner, theta, batch)
    loss, gradient = objective.gradient()

    def f(params):
        with torch.no_grad():
            return objective.surrogate(params)

    assert loss.item() == pytest.approx(f(theta).item())
    numeric = finite_difference_gradient(f, theta)
    torch.testing.assert_close(gradient, numeric, rtol=1e-6, atol=1e-8)
    # and it is not the first-order gradient: the second-order term matters here
    first_order = PostUpdateObjective(policy, InnerLoop(0.3, first_order=True), theta, batch)
    assert (first_order.gradient()[1] - numeric).abs().max() > 1e-4


def test_first_order_drops_exactly_the_second_order_term():
    policy, theta = tiny_policy(1)
    pre, post = random_episodes(3), random_episodes(4)
    alpha = 0.3
    batch = MetaBatch(pre=[pre], post=post)
    second = PostUpdateObjective(policy, InnerLoop(alpha), theta, batch)
    first = PostUpdateObjective(policy, InnerLoop(alpha, first_order=True), theta, batch)
    g_second, g_first = second.gradient()[1], first.gradient()[1]

    # d(surrogate)/d(phi_i), the gradient at each task's adapted parameters
    phi = {k: v.detach().requires_grad_() for k, v in second.phi_old.items()}
    outer = second.surrogate_of_phi(phi)
    per_task = torch.autograd.grad(outer, list(phi.values()))
    # explicit inner Hessian of each task's loss at theta
    correction = torch.zeros_like(g_first)
    for i in range(pre.num_tasks):

        def inner_loss_flat(flat, i=i):
            return task_inner_loss(
                policy,
                unflatten(flat, theta),
                pre.observations[:, i],
                pre.actions[:, i],
                pre.advantages[:, i],
                pre.mask[:, i],
                None,
                "reinforce",
            )

        h = hessian(inner_loss_flat, flatten(theta))
        g_i = torch.cat([g[i].reshape(-1) for g in per_task])
        correction += -alpha * h @ g_i
    torch.testing.assert_close(g_first, torch.cat([g.sum(0).reshape(-1) for g in per_task]))
    torch.testing.assert_close(g_second - g_first, correction, rtol=1e-8, atol=1e-10)


def test_adapt_is_one_sgd_step_per_task():
    policy, theta = tiny_policy(2)
    pre = random_episodes(5)
    phi = adapt(policy, theta, [pre], 0.25)
    for i in range(pre.num_tasks):
        params = {k: v.clone().requires_grad_() for k, v in theta.items()}
        mean, log_std = functional_call(policy, params, (pre.observations[:, i],))
        log_probs = gaussian_log_prob(mean, log_std, pre.actions[:, i])
        loss = -(log_probs * pre.advantages[:, i] * pre.mask[:, i]).sum() / pre.mask[:, i].sum()
        grads = torch.autograd.grad(loss, list(params.values()))
        for (name, value), g in zip(theta.items(), grads, strict=True):
            torch.testing.assert_close(phi[name][i], value - 0.25 * g)


def test_two_steps_with_step_size_schedule():
    policy, theta = tiny_policy(3)
    b0, b1 = random_episodes(6), random_episodes(7)
    two = adapt(policy, theta, [b0, b1], [0.2, 0.1])
    one = adapt(policy, theta, [b0], 0.2)
    from metarl.adaptation import inner_step

    by_hand = inner_step(policy, one, b1, 0.1, per_task=True)
    for name in theta:
        torch.testing.assert_close(two[name], by_hand[name])
    with pytest.raises(ValueError, match="2 step sizes for 1 inner steps"):
        adapt(policy, theta, [b0], [0.1, 0.2])
    with pytest.raises(ValueError, match="advantages"):
        adapt(policy, theta, [b0.with_advantages(None)], 0.1)
