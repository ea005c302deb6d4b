"""MAML-TRPO (Finn et al. 2017): REINFORCE inner step, TRPO outer step on post-adaptation rollouts.

The outer objective is the importance-weighted surrogate of the post-update policies,
``L(theta) = mean_i -E[pi_{phi_i(theta)} / pi_{phi_i(theta_old)} * A]`` with
``phi_i(theta) = adapt(theta, pre_i)``; the trust region is the mean KL between the old
and new post-update policies. Both are differentiated exactly through the inner step:

- gradient: ``J^T dL/dphi`` with ``J = dphi/dtheta`` from ``torch.func.vjp`` of ``adapt``;
- KL Hessian at ``theta_old``: ``J^T H_phi J`` where ``H_phi`` is the Hessian of the KL in
  ``phi``. This is exact, not an approximation: the KL's gradient is zero at the old
  parameters, so the term with the second derivative of ``phi`` vanishes. ``J u`` comes
  from ``torch.func.jvp`` of ``adapt``, ``J^T w`` from the same ``vjp``.

The KL Hessian-vector products cost about ten times the gradient and are the bulk of
the step. ``fisher_subsample < 1`` computes them on that fraction of each task's
episodes (pre- and post-update), as sb3-contrib's TRPO ``sub_sampling_factor`` does;
the gradient, the line search and its KL check always use the full batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import grad, grad_and_value, jvp, vjp

from metarl.algorithms.base import InnerLoop, MetaBatch
from metarl.losses import masked_mean, surrogate_loss
from metarl.policies import Params, distribution_params, gaussian_kl, gaussian_log_prob
from metarl.trpo import flatten, line_search, trust_region_step, unflatten


class PostUpdateObjective:
    """The outer surrogate and KL of post-update policies as functions of the initialisation.

    Built at the sampling parameters ``theta_old``: the importance weights and the KL are
    taken against the post-update policies of ``theta_old``.
    """

    def __init__(
        self, policy: nn.Module, inner: InnerLoop, theta_old: Params, batch: MetaBatch
    ) -> None:
        self.policy, self.inner, self.batch = policy, inner, batch
        self.theta_old = {name: value.detach() for name, value in theta_old.items()}
        self.phi_old, self.adapt_vjp = vjp(self.adapted, self.theta_old)
        self.phi_old = {name: value.detach() for name, value in self.phi_old.items()}
        post = batch.post
        with torch.no_grad():
            self.mean_old, self.log_std_old = distribution_params(
                policy, self.phi_old, post.observations, True
            )
            self.old_log_probs = gaussian_log_prob(self.mean_old, self.log_std_old, post.actions)

    def adapted(self, theta: Params) -> Params:
        return self.inner(self.policy, theta, self.batch.pre)

    def surrogate_of_phi(self, phi: Params) -> torch.Tensor:
        post = self.batch.post
        mean, log_std = distribution_params(self.policy, phi, post.observations, True)
        log_probs = gaussian_log_prob(mean, log_std, post.actions)
        return surrogate_loss(log_probs, self.old_log_probs, post.advantages, post.mask).mean()

    def kl_of_phi(self, phi: Params) -> torch.Tensor:
        post = self.batch.post
        mean, log_std = distribution_params(self.policy, phi, post.observations, True)
        kl = gaussian_kl(self.mean_old, self.log_std_old, mean, log_std)
        return masked_mean(kl, post.mask, task_axis=1).mean()

    def surrogate(self, theta: Params) -> torch.Tensor:
        """``L(theta)``: mean over tasks of the post-update surrogate loss."""
        return self.surrogate_of_phi(self.adapted(theta))

    def kl(self, theta: Params) -> torch.Tensor:
        """Mean KL between the old and the new post-update policies."""
        return self.kl_of_phi(self.adapted(theta))

    def gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``L(theta_old)`` and its exact meta-gradient (flat), through the inner loop."""
        surrogate_gradient, loss = grad_and_value(self.surrogate_of_phi)(self.phi_old)
        return loss, flatten(self.adapt_vjp(surrogate_gradient)[0])

    def fisher_vector_product(
        self, subsample: float = 1.0
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``v -> J^T H_phi J v``, the exact Hessian of :meth:`kl` at ``theta_old``.

        With ``subsample < 1`` it is the Hessian of the same KL on that fraction of
        each task's episodes (pre- and post-update).
        """
        objective = self
        if subsample < 1.0:
            count = max(1, round(self.batch.post.mask.shape[2] * subsample))
            pre = [episodes.first_episodes(count) for episodes in self.batch.pre]
            small = MetaBatch(pre=pre, post=self.batch.post.first_episodes(count))
            objective = PostUpdateObjective(self.policy, self.inner, self.theta_old, small)
        kl_gradient = grad(objective.kl_of_phi)
        theta = objective.theta_old

        def product(vector: torch.Tensor) -> torch.Tensor:
            _, direction = jvp(objective.adapted, (theta,), (unflatten(vector, theta),))
            _, curvature = jvp(kl_gradient, (objective.phi_old,), (direction,))
            return flatten(objective.adapt_vjp(curvature)[0])

        return product


@dataclass
class MamlTrpo:
    """The outer TRPO step of MAML, differentiating exactly through the inner loop."""

    policy: nn.Module
    inner: InnerLoop
    max_kl: float = 0.01
    cg_iterations: int = 10
    cg_damping: float = 1e-5
    line_search_steps: int = 15
    line_search_ratio: float = 0.8
    fisher_subsample: float = 1.0

    def step(self, params: Params, batch: MetaBatch) -> tuple[Params, dict[str, float]]:
        """One TRPO update of the shared initialisation; returns new params and metrics."""
        objective = PostUpdateObjective(self.policy, self.inner, params, batch)
        theta = objective.theta_old
        old_loss, gradient = objective.gradient()
        full_step = trust_region_step(
            gradient,
            objective.fisher_vector_product(self.fisher_subsample),
            self.max_kl,
            self.cg_iterations,
            self.cg_damping,
        )

        def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
            phi = objective.adapted(unflatten(candidate, theta))
            with torch.no_grad():
                return objective.surrogate_of_phi(phi).item(), objective.kl_of_phi(phi).item()

        result = line_search(
            evaluate,
            flatten(theta),
            full_step,
            old_loss.item(),
            self.max_kl,
            self.line_search_steps,
            self.line_search_ratio,
        )
        new_params = {
            name: value.clone() for name, value in unflatten(result.params, theta).items()
        }
        metrics = {
            "losses/surrogate_before": old_loss.item(),
            "losses/surrogate": result.loss if result.accepted else old_loss.item(),
            "losses/kl": result.kl if result.accepted else 0.0,
            "losses/grad_norm": gradient.norm().item(),
            "charts/line_search_accepted": float(result.accepted),
            "charts/line_search_backtracks": float(result.backtracks),
            "charts/step_fraction": result.step_fraction,
        }
        return new_params, metrics

    def state_dict(self) -> dict[str, object]:
        return {}  # TRPO keeps no state between iterations

    def load_state_dict(self, state: dict[str, object], params: Params | None = None) -> None:
        del state, params
