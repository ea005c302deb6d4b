"""The outer TRPO step at a snapshot: exact curvature against the paper's finite difference.

    python scripts/outer_step_check.py runs/repro_cheetah_dir/maml/checkpoints/snapshot_000050.pt

Samples one fresh meta-batch at the checkpoint (the run's own settings, --seed), then
computes the TRPO step three ways and runs the line search on each: with the exact KL
Hessian (what training uses), and with the central finite difference of the KL's gradient
that the paper's code used, ``H v ~ (g(theta + e v) - g(theta - e v)) / 2e`` with
``e = base_eps / ||theta||``. The paper's code meant ``base_eps = 1e-8`` but passed its
``num_slices`` (1) in that position (``FiniteDifferenceHvp(num_slices)`` in maml_rl's
``conjugate_gradient_optimizer.py``), so it ran with ``base_eps = 1``; both are shown
(``--base-eps`` sets others). Printed per step: its length, its cosine with the exact
step, the surrogate change and the KL at the full step, and what the line search accepts.
Tells whether the paper's curvature would have moved the initialisation differently.

    python scripts/outer_step_check.py CHECKPOINT --against-autograd --float64

checks instead that the step's ingredients are the true derivatives at the run's own scale:
the meta-gradient and two curvature products (along the gradient and along a random
direction), as training computes them (hand-written products over chunks of tasks, the
inner loop linearized once), against plain autograd through the inner loop (reverse mode,
and double backward for the KL's Hessian). Printed: each one's relative error. The tests
check the same on small batches; this is the check at the real size (memory: autograd keeps
the whole batch's graph, a few GB for HalfCheetahDir's 40 x 20 episodes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.func import grad

from envs import make_task_env
from metarl import cli
from metarl.algorithms.maml_trpo import MamlTrpo, PostUpdateObjective
from metarl.baselines import baseline_info
from metarl.checkpoint import CheckpointError, load_checkpoint
from metarl.config import config_from_dict
from metarl.distributed import World
from metarl.runtime import configure_process
from metarl.trainer import make_algorithm, make_policy, sample_meta_batch
from metarl.trpo import flatten, line_search, trust_region_step, unflatten

Product = Callable[[torch.Tensor], torch.Tensor]


def finite_difference_product(
    gradient: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor, base_eps: float
) -> Product:
    """``v -> (g(x + e v) - g(x - e v)) / 2e`` with ``e = base_eps / ||x||`` (rllab's form)."""
    eps = base_eps / (point.norm().item() + 1e-8)

    def product(vector: torch.Tensor) -> torch.Tensor:
        return (gradient(point + eps * vector) - gradient(point - eps * vector)) / (2 * eps)

    return product


@dataclass(frozen=True)
class StepReport:
    """One way of computing the outer step, and what became of it."""

    curvature: str
    step_norm: float
    cosine_with_exact: float
    full_step_surrogate_change: float
    full_step_kl: float
    accepted: bool
    step_fraction: float
    accepted_surrogate_change: float
    accepted_kl: float


def compare_steps(
    objective: PostUpdateObjective, algorithm: MamlTrpo, base_eps: list[float]
) -> list[StepReport]:
    """The TRPO step with the exact KL Hessian and with each finite-difference one."""
    theta = objective.theta_old
    point = flatten(theta)
    old_loss, gradient = objective.gradient()
    kl_gradient = grad(lambda flat: objective.kl(unflatten(flat, theta)))

    def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
        phi = objective.adapted_values(unflatten(candidate, theta))
        with torch.no_grad():
            surrogate, kl = objective.surrogate_and_kl_of_phi(phi)
        return surrogate.item(), kl.item()

    products: list[tuple[str, Product]] = [("exact", objective.fisher_vector_product())]
    products += [
        (f"finite difference, base_eps {eps:g}", finite_difference_product(kl_gradient, point, eps))
        for eps in base_eps
    ]
    reports, exact_step = [], None
    for name, product in products:
        step = trust_region_step(
            gradient, product, algorithm.max_kl, algorithm.cg_iterations, algorithm.cg_damping
        )
        exact_step = step if exact_step is None else exact_step
        full_loss, full_kl = evaluate(point + step)
        result = line_search(
            evaluate,
            point,
            step,
            old_loss.item(),
            algorithm.max_kl,
            algorithm.line_search_steps,
            algorithm.line_search_ratio,
        )
        cosine = torch.nn.functional.cosine_similarity(step, exact_step, dim=0).item()
        reports.append(
            StepReport(
                name,
                step.norm().item(),
                cosine,
                full_loss - old_loss.item(),
                full_kl,
                result.accepted,
                result.step_fraction,
                (result.loss - old_loss.item()) if result.accepted else 0.0,
                result.kl if result.accepted else 0.0,
            )
        )
    return reports


@dataclass(frozen=True)
class AutogradReport:
    """Relative errors of the outer step's ingredients against plain autograd."""

    gradient_error: float
    product_errors: dict[str, float]  # curvature product along each named direction


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value - reference).norm() / reference.norm().clamp(min=1e-300)).item()


def autograd_check(objective: PostUpdateObjective) -> AutogradReport:
    """The meta-gradient and curvature products as training computes them, against
    autograd's derivatives of :meth:`~PostUpdateObjective.surrogate` and
    :meth:`~PostUpdateObjective.kl` (which re-run the inner loop with a graph)."""
    theta = objective.theta_old
    _, gradient = objective.gradient()
    point = flatten(theta).clone().requires_grad_(True)
    (reference_gradient,) = torch.autograd.grad(objective.surrogate(unflatten(point, theta)), point)
    (kl_gradient,) = torch.autograd.grad(
        objective.kl(unflatten(point, theta)), point, create_graph=True
    )
    product = objective.fisher_vector_product()
    generator = torch.Generator().manual_seed(0)
    random = torch.randn(point.shape, generator=generator, dtype=point.dtype)
    errors = {}
    for name, direction in [("the gradient", reference_gradient), ("a random direction", random)]:
        (reference,) = torch.autograd.grad(kl_gradient, point, direction, retain_graph=True)
        errors[name] = relative_error(product(direction), reference)
    return AutogradReport(relative_error(gradient, reference_gradient), errors)


def snapshot_objective(
    path: Path, seed: int, float64: bool = False
) -> tuple[PostUpdateObjective, MamlTrpo]:
    """A fresh meta-batch sampled at the checkpoint with its run's settings (in float64 if
    asked), and the outer step's objective and algorithm on it."""
    payload = load_checkpoint(path)
    if baseline_info(payload) is not None:
        raise ValueError(f"{path} is a baseline's checkpoint; this compares MAML-TRPO steps")
    try:
        values = dict(payload["config"])
        if float64:
            values["precision"] = "float64"
        config = config_from_dict(values)
        dtype = getattr(torch, config.precision)
        params = {name: value.detach().to(dtype) for name, value in payload["params"].items()}
    except KeyError as error:
        raise CheckpointError(
            f"{path} is not a training checkpoint (no {error.args[0]!r})"
        ) from None
    if config.algo != "maml-trpo" or config.meta_sgd:
        raise ValueError(f"{path} is a {config.algo} run; this compares MAML-TRPO steps")
    env = make_task_env(config.env)
    policy = make_policy(config, env)
    algorithm = make_algorithm(config, policy, World())
    if set(params) != {name for name, _ in policy.named_parameters()}:
        raise CheckpointError(f"{path}: its parameters do not fit its own config's policy")
    rng = np.random.default_rng(seed)
    tasks = env.sample_tasks(config.meta_batch_size, rng)
    copies = env.batched(config.meta_batch_size * config.episodes_per_task)
    batch = sample_meta_batch(policy, params, algorithm.inner, copies, tasks, config, rng)
    return PostUpdateObjective(policy, algorithm.inner, params, batch), algorithm


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, help="a MAML-TRPO training checkpoint (.pt)")
    parser.add_argument("--seed", type=cli.seed, default=99, help="seed of the fresh meta-batch")
    parser.add_argument(
        "--base-eps",
        nargs="+",
        type=cli.number(1e-12, 10.0),
        default=[1.0, 1e-3],
        help="finite-difference steps over ||theta|| (default: 1, what the paper's code ran, "
        "and 1e-3)",
    )
    parser.add_argument(
        "--against-autograd",
        action="store_true",
        help="check the meta-gradient and curvature products against plain autograd instead",
    )
    parser.add_argument(
        "--float64", action="store_true", help="sample and compute in float64 (run's precision)"
    )
    parser.add_argument("--threads", type=cli.integer(1, 512), default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_process(args.threads)
    try:
        objective, algorithm = snapshot_objective(args.checkpoint, args.seed, args.float64)
    except (ValueError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.against_autograd:
        check = autograd_check(objective)
        print(f"precision: {objective.old_log_probs.dtype}")
        print(f"meta-gradient: relative error {check.gradient_error:.2e}")
        for name, error in check.product_errors.items():
            print(f"curvature product along {name}: relative error {error:.2e}")
        return 0
    reports = compare_steps(objective, algorithm, args.base_eps)
    print(
        "curvature | |step| | cosine with exact | full step: d surrogate, KL | "
        "line search: fraction, d surrogate, KL"
    )
    for r in reports:
        search = (
            f"{r.step_fraction:.3f}, {r.accepted_surrogate_change:+.5f}, {r.accepted_kl:.4f}"
            if r.accepted
            else "rejected"
        )
        print(
            f"{r.curvature} | {r.step_norm:.4f} | {r.cosine_with_exact:.3f} | "
            f"{r.full_step_surrogate_change:+.5f}, {r.full_step_kl:.4f} | {search}"
        )
    return 0


if __name__ == "__main__":
    cli.run_script(main)
