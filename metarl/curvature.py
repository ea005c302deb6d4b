"""The Fisher information of Gaussian policies, as a product with the work done once.

For ``pi_phi(a|s) = N(mu_phi(s), diag(exp(rho))^2)`` the Hessian in ``phi`` of the mean KL
``KL(pi_old || pi_phi)`` at ``phi = phi_old`` is the Fisher information

    F = E_s[ J_mu(s)^T diag(1 / sigma^2) J_mu(s) ] + 2 * (Jacobian of rho)^T (Jacobian of rho)

(the KL's second derivative is ``1/sigma^2`` in the mean, ``2`` in the log-std and 0 across
them). With ``Jv`` by forward mode and ``J^T w`` by a reverse pass whose forward is stored,
one product costs a forward-mode and a backward pass of the policy, no second derivatives.
The outer step of MAML uses it as ``J_adapt^T F J_adapt`` (see ``algorithms/maml_trpo.py``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import jvp, vjp

from metarl.episodes import Episodes
from metarl.mlp_products import (
    MlpLayout,
    PolicyFisher,
    mlp_layout,
    take_rows,
    task_major,
    valid_rows,
)
from metarl.policies import Params, distribution_params


class GaussianFisher:
    """``u -> F u`` for per-task parameters ``phi`` (leading task axis) on a batch of episodes.

    ``F`` is the Hessian of ``mean_i masked_mean_t KL(pi_{phi_i}(.|s_t) || pi_{phi'_i}(.|s_t))``
    in ``phi'`` at ``phi' = phi``: the KL averaged over each task's valid steps, then over
    tasks, exactly what :class:`~metarl.algorithms.maml_trpo.PostUpdateObjective` bounds.
    """

    def __init__(self, policy: nn.Module, phi: Params, episodes: Episodes) -> None:
        phi = {k: v.detach() for k, v in phi.items()}
        layout = mlp_layout(policy)
        self._by_hand: PolicyFisher | None = None
        if layout is not None:  # the same products, written out for the MLP (2-3x faster)
            self._by_hand = _mlp_fisher(layout, phi, episodes)
            return
        observations = episodes.observations

        def distribution(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
            return distribution_params(policy, p, observations, True)

        self._phi = phi
        self._distribution = distribution
        (_, log_std), self._pullback = vjp(distribution, phi)
        mask = episodes.mask
        num_tasks = mask.shape[1]
        counts = mask.sum(dim=tuple(d for d in range(mask.dim()) if d != 1), keepdim=True)
        step_weight = mask / counts.clamp(min=1.0) / num_tasks  # [T, tasks, episodes]
        self._mean_weight = step_weight.unsqueeze(-1) * torch.exp(-2.0 * log_std.detach())
        # sum over a task's valid steps of its weights: 1/num_tasks (0 if it has no step)
        task_weight = (counts > 0).to(mask.dtype) / num_tasks  # [1, tasks, 1]
        self._log_std_weight = 2.0 * task_weight.unsqueeze(-1).expand(log_std.shape)

    def __call__(self, tangent: Params) -> Params:
        if self._by_hand is not None:
            return self._by_hand(tangent)
        _, (mean_tangent, log_std_tangent) = jvp(self._distribution, (self._phi,), (tangent,))
        cotangent = (self._mean_weight * mean_tangent, self._log_std_weight * log_std_tangent)
        return self._pullback(cotangent)[0]


def _mlp_fisher(layout: MlpLayout, phi: Params, episodes: Episodes) -> PolicyFisher:
    """:class:`GaussianFisher`'s weights, task-major, for the hand-written products."""
    mask = task_major(episodes.mask, 0)  # [tasks, N]
    num_tasks = mask.shape[0]
    counts = mask.sum(1, keepdim=True)
    step_weight = mask / counts.clamp(min=1.0) / num_tasks
    precision = torch.exp(-2.0 * phi[layout.log_std]).unsqueeze(1)  # [tasks, 1, act]
    mean_weight = step_weight.unsqueeze(-1) * precision
    log_std_weight = (
        2.0 * (counts > 0).to(mask.dtype) / num_tasks * torch.ones_like(phi[layout.log_std])
    )
    observations = task_major(episodes.observations, 1)
    rows = valid_rows(mask)  # padded steps weigh zero: skip them
    if rows is not None:
        observations, mean_weight = take_rows(observations, rows), take_rows(mean_weight, rows)
    return PolicyFisher(layout, phi, observations, mean_weight, log_std_weight)
