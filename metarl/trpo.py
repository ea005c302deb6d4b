"""Trust-region machinery: conjugate gradient and the backtracking line search (Schulman et al. 2015).

Vectors are flat tensors; :func:`flatten` and :func:`unflatten` convert parameter dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from metarl.policies import Params


def flatten(params: Params) -> torch.Tensor:
    """Concatenate a parameter dict into one flat vector (dict order)."""
    return torch.cat([value.reshape(-1) for value in params.values()])


def unflatten(vector: torch.Tensor, like: Params) -> Params:
    """Split a flat vector into a dict shaped like ``like``."""
    out: Params = {}
    offset = 0
    for name, value in like.items():
        out[name] = vector[offset : offset + value.numel()].reshape(value.shape)
        offset += value.numel()
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters need {offset}")
    return out


def conjugate_gradient(
    matrix_vector_product: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iterations: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given only ``v -> A v``."""
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    residual_sq = residual @ residual
    for _ in range(iterations):
        if residual_sq <= residual_tol:
            break
        product = matrix_vector_product(direction)
        alpha = residual_sq / (direction @ product)
        x = x + alpha * direction
        residual = residual - alpha * product
        new_residual_sq = residual @ residual
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return x


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of a backtracking line search."""

    accepted: bool
    params: torch.Tensor  # the new flat parameters (the old ones if nothing was accepted)
    loss: float
    kl: float
    backtracks: int  # steps shrunk before acceptance (the search length if rejected)
    step_fraction: float  # fraction of the full step taken (0 if rejected)


def line_search(
    evaluate: Callable[[torch.Tensor], tuple[float, float]],
    params: torch.Tensor,
    full_step: torch.Tensor,
    old_loss: float,
    max_kl: float,
    max_backtracks: int = 15,
    backtrack_ratio: float = 0.8,
) -> LineSearchResult:
    """Shrink ``full_step`` until the loss improves and the KL stays within ``max_kl``.

    ``evaluate(candidate) -> (loss, kl)``. A candidate is accepted only if both are finite,
    ``loss < old_loss`` and ``kl <= max_kl``; if none is, the parameters stay as they were.
    """
    loss, kl = old_loss, 0.0
    for backtrack in range(max_backtracks):
        fraction = backtrack_ratio**backtrack
        candidate = params + fraction * full_step
        loss, kl = evaluate(candidate)
        if math.isfinite(loss) and math.isfinite(kl) and loss < old_loss and kl <= max_kl:
            return LineSearchResult(True, candidate, loss, kl, backtrack, fraction)
    return LineSearchResult(False, params, loss, kl, max_backtracks, 0.0)


def trust_region_step(
    gradient: torch.Tensor,
    fisher_vector_product: Callable[[torch.Tensor], torch.Tensor],
    max_kl: float,
    cg_iterations: int = 10,
    cg_damping: float = 1e-5,
) -> torch.Tensor:
    """The full TRPO step ``-sqrt(2 max_kl / s^T F s) s`` with ``s = F^{-1} g`` by conjugate gradient.

    ``gradient`` is the gradient of the loss to minimise; the step is a descent direction
    whose quadratic KL model equals ``max_kl``.
    """

    def damped(vector: torch.Tensor) -> torch.Tensor:
        return fisher_vector_product(vector) + cg_damping * vector

    direction = conjugate_gradient(damped, gradient, cg_iterations)
    curvature = direction @ damped(direction)
    if not torch.isfinite(curvature) or curvature <= 0:
        return torch.zeros_like(gradient)
    return -torch.sqrt(2.0 * max_kl / curvature) * direction
