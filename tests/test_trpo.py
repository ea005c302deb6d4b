"""Trust-region machinery: KL Hessian-vector products, conjugate gradient, line search."""

import dataclasses

import torch
from torch.autograd.functional import hessian

from metarl.adaptation import learned_step_sizes
from metarl.algorithms.maml_trpo import InnerLoop, MamlTrpo, MetaBatch, PostUpdateObjective
from metarl.episodes import Episodes
from metarl.losses import masked_mean
from metarl.policies import distribution_params, gaussian_kl
from metarl.trpo import conjugate_gradient, flatten, line_search, unflatten
from tests.helpers import random_episodes, tiny_policy

D = torch.float64


def make_objective(inner_steps=1, first_order=False, seed=0):
    policy, theta = tiny_policy(seed)
    batch = MetaBatch(
        pre=[random_episodes(10 + s) for s in range(inner_steps)], post=random_episodes(20)
    )
    return (
        policy,
        theta,
        batch,
        PostUpdateObjective(policy, InnerLoop(0.3, first_order), theta, batch),
    )


def explicit_kl_hessian(objective, theta):
    return hessian(lambda flat: objective.kl(unflatten(flat, theta)), flatten(theta))


def test_kl_hessian_vector_product_equals_explicit_hessian():
    for inner_steps, first_order in [(1, False), (2, False), (1, True)]:
        _, theta, _, objective = make_objective(inner_steps, first_order)
        h = explicit_kl_hessian(objective, theta)
        product = objective.fisher_vector_product()
        generator = torch.Generator().manual_seed(inner_steps)
        for _ in range(3):
            v = torch.randn(h.shape[0], generator=generator, dtype=D)
            torch.testing.assert_close(product(v), h @ v, rtol=1e-7, atol=1e-10)


def test_kl_hessian_vector_product_for_every_inner_loop_variant():
    """Meta-SGD (learned step sizes), ANIL (head only) and LVC go through the same products."""
    policy, theta = tiny_policy(3)
    batch = MetaBatch(pre=[random_episodes(11), random_episodes(12)], post=random_episodes(21))
    head = ["mean.2.weight", "mean.2.bias"]
    meta_sgd = {**theta, **learned_step_sizes(theta, 0.2)}
    meta_sgd = {
        k: v + 0.05 * torch.rand_like(v) if k.startswith("inner_lr") else v
        for k, v in meta_sgd.items()
    }
    cases = [
        (meta_sgd, InnerLoop(0.3)),
        (theta, InnerLoop(0.3, adapted_names=head)),
        (theta, InnerLoop(0.3, estimator="lvc")),
    ]
    for params, inner in cases:
        for steps in (1, 2):
            objective = PostUpdateObjective(
                policy, inner, params, MetaBatch(batch.pre[:steps], batch.post)
            )
            h = explicit_kl_hessian(objective, params)
            v = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(steps), dtype=D)
            torch.testing.assert_close(
                objective.fisher_vector_product()(v), h @ v, rtol=1e-7, atol=1e-10
            )
            # the line search's graph-free inner loop lands where the differentiable one does
            moved = {k: x + 0.1 * torch.randn_like(x) for k, x in params.items()}
            expected, values = objective.adapted(moved), objective.adapted_values(moved)
            for name in expected:
                torch.testing.assert_close(values[name], expected[name], rtol=1e-10, atol=1e-12)


def test_subsampled_product_is_the_same_kl_hessian_with_averages_over_the_subsample():
    """At fraction f: J_sub^T F_sub J_sub with phi_old from the FULL pre-update batch.

    J_sub = I - alpha H_sub (inner-loss Hessian averaged over the chosen pre-update episodes),
    F_sub = Hessian in phi of the KL averaged over the chosen post-update episodes, at phi_old.
    """
    policy, theta, batch, objective = make_objective()
    phi_old = objective.phi_old
    chosen = 2  # of 4 episodes: fraction 0.5

    def first(episodes):  # the first `chosen` episodes of every task, sliced by hand
        return Episodes(
            **{
                f.name: None
                if getattr(episodes, f.name) is None
                else getattr(episodes, f.name)[:, :, :chosen]
                for f in dataclasses.fields(episodes)
            }
        )

    pre_sub = [first(e) for e in batch.pre]
    post_sub = first(batch.post)
    inner = objective.inner
    jacobian = torch.autograd.functional.jacobian(
        lambda flat: flatten(inner(policy, unflatten(flat, theta), pre_sub)), flatten(theta)
    )

    def kl_sub(flat_phi):
        phi = unflatten(flat_phi, phi_old)
        mean, log_std = distribution_params(policy, phi, post_sub.observations, True)
        kl = gaussian_kl(objective.mean_old[:, :, :chosen], objective.log_std_old, mean, log_std)
        return masked_mean(kl, post_sub.mask, task_axis=1).mean()

    fisher = hessian(kl_sub, flatten(phi_old))
    expected = jacobian.T @ fisher @ jacobian
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(expected.shape[0], generator=generator, dtype=D)
        torch.testing.assert_close(
            objective.fisher_vector_product(0.5)(v), expected @ v, rtol=1e-7, atol=1e-10
        )
    # the points differ from those a re-adaptation on the subsample would give
    assert not torch.allclose(flatten(inner(policy, theta, pre_sub)), flatten(phi_old))


def test_subsample_fraction_one_is_exact_and_products_never_re_adapt(monkeypatch):
    _, theta, _, objective = make_objective()
    v = torch.randn(flatten(theta).shape[0], generator=torch.Generator().manual_seed(1), dtype=D)
    exact = objective.fisher_vector_product()(v)
    calls = []
    monkeypatch.setattr(InnerLoop, "__call__", lambda *a, **k: calls.append(1))
    torch.testing.assert_close(objective.fisher_vector_product(1.0)(v), exact, rtol=0, atol=0)
    objective.fisher_vector_product(0.5)(v)
    assert calls == []


def test_conjugate_gradient_solves_random_spd_system():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(12, 12, generator=generator, dtype=D)
    matrix = a @ a.T + 0.5 * torch.eye(12, dtype=D)
    b = torch.randn(12, generator=generator, dtype=D)
    x = conjugate_gradient(lambda v: matrix @ v, b, iterations=40, residual_tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(matrix, b), rtol=1e-8, atol=1e-10)


def test_line_search_accepts_only_improving_steps_within_kl():
    params = torch.zeros(2, dtype=D)
    full_step = torch.tensor([1.0, 0.0], dtype=D)

    # loss decreases along the step but KL = 10 x^2 breaks the bound until x <= ~0.0316
    def evaluate(candidate):
        x = candidate[0].item()
        return -x, 10 * x * x

    result = line_search(evaluate, params, full_step, 0.0, max_kl=0.01, max_backtracks=30)
    assert result.accepted and result.kl <= 0.01 and result.loss < 0.0
    assert result.backtracks == 16  # 0.8^16 = 0.028 is the first fraction inside the bound

    worsening = line_search(lambda c: (c[0].item(), 0.0), params, full_step, 0.0, max_kl=0.01)
    assert not worsening.accepted and worsening.step_fraction == 0.0
    torch.testing.assert_close(worsening.params, params)

    too_far = line_search(lambda c: (-1.0, 1.0), params, full_step, 0.0, max_kl=0.01)
    assert not too_far.accepted
    torch.testing.assert_close(too_far.params, params)

    nan = line_search(lambda c: (float("nan"), 0.0), params, full_step, 0.0, max_kl=0.01)
    assert not nan.accepted


def test_trpo_step_improves_surrogate_within_kl():
    policy, theta, batch, objective = make_objective()
    algorithm = MamlTrpo(policy, InnerLoop(0.3), max_kl=0.01)
    new, metrics = algorithm.step(theta, batch)
    assert metrics["charts/line_search_accepted"] == 1.0
    with torch.no_grad():
        assert objective.surrogate(new) < objective.surrogate(theta)
        assert objective.kl(new) <= 0.01 + 1e-12
    assert metrics["losses/kl"] > 0.005  # the step uses the trust region, not a tiny move
    assert any(not torch.equal(new[k], theta[k]) for k in theta)


def test_rejected_step_leaves_parameters_unchanged():
    policy, theta, batch, _ = make_objective()
    # zero post-update advantages: no step can lower the surrogate, so every candidate fails
    flat = MetaBatch(batch.pre, batch.post.with_advantages(torch.zeros_like(batch.post.rewards)))
    new, metrics = MamlTrpo(policy, InnerLoop(0.3)).step(theta, flat)
    assert metrics["charts/line_search_accepted"] == 0.0
    for name in theta:
        torch.testing.assert_close(new[name], theta[name], rtol=0, atol=0)
