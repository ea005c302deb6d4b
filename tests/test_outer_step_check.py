"""scripts/outer_step_check.py: the paper's finite-difference curvature against the exact one."""

import torch
from torch.func import grad

from metarl.trpo import flatten, unflatten
from scripts import outer_step_check
from tests.test_trpo import explicit_kl_hessian, make_objective


def test_finite_difference_product_approaches_the_explicit_kl_hessian():
    _, theta, _, objective = make_objective()
    point = flatten(theta)
    hessian = explicit_kl_hessian(objective, theta)
    kl_gradient = grad(lambda flat: objective.kl(unflatten(flat, theta)))
    v = torch.randn(point.numel(), generator=torch.Generator().manual_seed(0), dtype=point.dtype)
    small = outer_step_check.finite_difference_product(kl_gradient, point, 1e-6)(v)
    torch.testing.assert_close(small, hessian @ v, rtol=1e-5, atol=1e-8)
    # the paper's step (base_eps 1, e = 1 / ||theta||) is a secant over a finite distance
    large = outer_step_check.finite_difference_product(kl_gradient, point, 1.0)(v)
    assert not torch.allclose(large, hessian @ v, rtol=1e-5, atol=1e-8)


def test_finite_difference_step_is_base_eps_over_the_parameter_norm():
    # for g(x) = x^3 the central difference is exactly 3 x^2 v + e^2 v^3
    point = torch.tensor([3.0, 4.0], dtype=torch.float64)  # norm 5
    v = torch.tensor([1.0, -2.0], dtype=torch.float64)
    product = outer_step_check.finite_difference_product(lambda x: x**3, point, 1.0)(v)
    e = 1.0 / 5.0
    torch.testing.assert_close(product, 3 * point**2 * v + e**2 * v**3, rtol=1e-10, atol=1e-10)


def test_compare_steps_reports_the_exact_step_first_and_the_finite_difference_ones_near_it():
    _, _, _, objective = make_objective()
    # a small trust region, where the KL's quadratic model (which sets the step) holds
    algorithm = outer_step_check.MamlTrpo(objective.policy, objective.inner, max_kl=1e-6)
    exact, fine = outer_step_check.compare_steps(objective, algorithm, [1e-6])
    assert exact.curvature == "exact" and abs(exact.cosine_with_exact - 1.0) < 1e-12
    assert fine.cosine_with_exact > 0.999
    assert abs(fine.step_norm - exact.step_norm) < 1e-3 * exact.step_norm
    assert abs(exact.full_step_kl - 1e-6) < 0.05e-6
    assert exact.accepted and exact.step_fraction == 1.0 and exact.accepted_kl <= 1e-6
    assert exact.accepted_surrogate_change == exact.full_step_surrogate_change < 0


def test_outer_step_check_script_on_a_tiny_run(tmp_path, capsys):
    from scripts import train as train_script
    from tests.helpers import TINY_TRAIN_ARGS

    run = tmp_path / "run"
    assert train_script.main([*TINY_TRAIN_ARGS, "--iterations", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert outer_step_check.main([str(run / "checkpoints" / "latest.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("exact | ") and "| 1.000 |" in lines[1]
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "finite difference, base_eps 1",
        "finite difference, base_eps 0.001",
    ]
    assert outer_step_check.main([str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    from metarl.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(run / "checkpoints" / "latest.pt")
    save_checkpoint(tmp_path / "baseline.pt", {**payload, "baseline": {"kind": "pretrained"}})
    assert outer_step_check.main([str(tmp_path / "baseline.pt")]) == 2
    assert "baseline" in capsys.readouterr().err


def test_autograd_check_finds_the_products_exact_and_a_wrong_product_wrong():
    _, _, _, objective = make_objective()
    report = outer_step_check.autograd_check(objective)
    assert report.gradient_error < 1e-10
    assert set(report.product_errors) == {"the gradient", "a random direction"}
    assert max(report.product_errors.values()) < 1e-10
    # a product that is off by 1% is reported as such
    right = objective.fisher_vector_product
    objective.fisher_vector_product = lambda *a: lambda v: 1.01 * right(*a)(v)
    wrong = outer_step_check.autograd_check(objective)
    assert all(abs(error - 0.01) < 1e-6 for error in wrong.product_errors.values())


def test_against_autograd_on_a_tiny_run_in_float64(tmp_path, capsys):
    from scripts import train as train_script
    from tests.helpers import TINY_TRAIN_ARGS

    run = tmp_path / "run"
    assert train_script.main([*TINY_TRAIN_ARGS, "--iterations", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    checkpoint = str(run / "checkpoints" / "latest.pt")
    assert outer_step_check.main([checkpoint, "--against-autograd", "--float64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "precision: torch.float64"
    assert [line.split(": relative error ")[0] for line in lines[1:]] == [
        "meta-gradient",
        "curvature product along the gradient",
        "curvature product along a random direction",
    ]
    assert all(float(line.split("relative error ")[1]) < 1e-10 for line in lines[1:])
