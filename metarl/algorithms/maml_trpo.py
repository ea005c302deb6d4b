"""MAML-TRPO (Finn et al. 2017): REINFORCE inner step, TRPO outer step on post-adaptation rollouts.

The outer objective is the importance-weighted surrogate of the post-update policies,
``L(theta) = mean_i -E[pi_{phi_i(theta)} / pi_{phi_i(theta_old)} * A]`` with
``phi_i(theta) = adapt(theta, pre_i)``; the trust region is the mean KL between the old
and new post-update policies. Both are differentiated exactly through the inner step:

- gradient: ``J^T dL/dphi`` with ``J = dphi/dtheta`` the Jacobian of the inner loop;
- KL Hessian at ``theta_old``: ``J^T F J`` where ``F`` is the Fisher of the post-update
  Gaussian policies (the KL's Hessian in ``phi``). This is exact, not an approximation:
  the KL's gradient is zero at the old parameters, so the term with the second
  derivative of ``phi`` vanishes.

``J`` is never formed: :class:`~metarl.adaptation.LinearizedAdaptation` gives ``J u`` and
``J^T w`` as inner-loss Hessian-vector products whose forward pass is stored once per
iteration, and :class:`~metarl.curvature.GaussianFisher` gives ``F d`` in closed form. So
one curvature product costs two reverse-over-reverse passes on the pre-update batch and a
forward-mode plus a backward pass of the policy on the post-update batch. First-order
MAML has ``J = I`` and skips the inner Hessians entirely.

``fisher_subsample < 1`` takes the averages inside ``J`` and ``F`` over that fraction of
each task's episodes (pre- and post-update) at the same points (the adapted parameters
come from the full batch), as sb3-contrib's TRPO ``sub_sampling_factor`` does; the
gradient, the line search and its KL check always use the full batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import grad_and_value

from metarl.algorithms.base import InnerLoop, MetaBatch
from metarl.curvature import GaussianFisher
from metarl.distributed import World
from metarl.losses import masked_mean, surrogate_loss
from metarl.mlp_products import InnerLossCurvature, mlp_layout
from metarl.policies import Params, distribution_params, gaussian_kl, gaussian_log_prob
from metarl.trpo import flatten, line_search, trust_region_step, unflatten


class PostUpdateObjective:
    """The outer surrogate and KL of post-update policies as functions of the initialisation.

    Built at the sampling parameters ``theta_old``: the importance weights and the KL are
    taken against the post-update policies of ``theta_old``. The inner loop is linearized
    there once (:class:`~metarl.adaptation.LinearizedAdaptation`), and the gradient and
    every curvature product reuse it.
    """

    def __init__(
        self, policy: nn.Module, inner: InnerLoop, theta_old: Params, batch: MetaBatch
    ) -> None:
        self.policy, self.inner, self.batch = policy, inner, batch
        self.theta_old = {name: value.detach() for name, value in theta_old.items()}
        self.linearized = inner.linearize(policy, self.theta_old, batch.pre)
        self.phi_old = self.linearized.adapted
        post = batch.post
        with torch.no_grad():
            self.mean_old, self.log_std_old = distribution_params(
                policy, self.phi_old, post.observations, True
            )
            self.old_log_probs = gaussian_log_prob(self.mean_old, self.log_std_old, post.actions)

    def adapted(self, theta: Params) -> Params:
        """The post-update parameters at ``theta`` (differentiable)."""
        return self.inner(self.policy, theta, self.batch.pre)

    def adapted_values(self, theta: Params) -> Params:
        """The post-update parameters at ``theta`` as values, for the line search."""
        return self.linearized.adapted_at(theta)

    def surrogate_of_phi(self, phi: Params) -> torch.Tensor:
        return self.surrogate_and_kl_of_phi(phi)[0]

    def kl_of_phi(self, phi: Params) -> torch.Tensor:
        return self.surrogate_and_kl_of_phi(phi)[1]

    def surrogate_and_kl_of_phi(self, phi: Params) -> tuple[torch.Tensor, torch.Tensor]:
        """The surrogate loss and the mean KL at post-update parameters ``phi`` (one forward)."""
        post = self.batch.post
        mean, log_std = distribution_params(self.policy, phi, post.observations, True)
        log_probs = gaussian_log_prob(mean, log_std, post.actions)
        surrogate = surrogate_loss(log_probs, self.old_log_probs, post.advantages, post.mask)
        kl = gaussian_kl(self.mean_old, self.log_std_old, mean, log_std)
        return surrogate.mean(), masked_mean(kl, post.mask, task_axis=1).mean()

    def surrogate(self, theta: Params) -> torch.Tensor:
        """``L(theta)``: mean over tasks of the post-update surrogate loss."""
        return self.surrogate_of_phi(self.adapted(theta))

    def kl(self, theta: Params) -> torch.Tensor:
        """Mean KL between the old and the new post-update policies."""
        return self.kl_of_phi(self.adapted(theta))

    def gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``L(theta_old)`` and its exact meta-gradient ``J^T dL/dphi`` (flat)."""
        layout = mlp_layout(self.policy)
        if layout is None:
            surrogate_gradient, loss = grad_and_value(self.surrogate_of_phi)(self.phi_old)
        else:
            # at phi_old every importance weight is 1: the surrogate's gradient is task i's
            # REINFORCE gradient on the post-update batch over the number of tasks
            post = self.batch.post
            num_tasks = post.num_tasks
            reinforce = InnerLossCurvature(layout, self.phi_old, post).gradient
            surrogate_gradient = {k: v / num_tasks for k, v in reinforce.items()}
            loss = -masked_mean(post.advantages, post.mask, task_axis=1).mean()
        return loss, flatten(self.linearized.vjp(surrogate_gradient))

    def fisher_vector_product(
        self, subsample: float = 1.0
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``v -> J^T F J v``, the exact Hessian of :meth:`kl` at ``theta_old``.

        ``J`` is the Jacobian of the inner loop and ``F`` the Gaussian policies' Fisher at
        the adapted parameters (:class:`~metarl.curvature.GaussianFisher`); the KL's
        gradient vanishes at ``theta_old``, so this Gauss-Newton form is the Hessian.

        With ``subsample < 1`` the averages inside ``J`` (the inner losses' Hessians) and
        ``F`` are taken over the first ``subsample`` fraction of each task's episodes
        (episodes are i.i.d., so a fair subsample); the adapted parameters, where both are
        evaluated, stay those of the full batch, so it estimates the same matrix.
        """
        linearized, post = self.linearized, self.batch.post
        if subsample < 1.0:
            pre = self.batch.pre
            pre_small = [episodes.first_episodes(subsample) for episodes in pre]
            post = post.first_episodes(subsample)
            linearized = linearized.with_hessians_on(pre_small)
        fisher = GaussianFisher(self.policy, self.phi_old, post)
        theta = self.theta_old

        def product(vector: torch.Tensor) -> torch.Tensor:
            direction = linearized.jvp(unflatten(vector, theta))
            return flatten(linearized.vjp(fisher(direction)))

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
    world: World = field(default_factory=World)  # ranks whose tasks' means are averaged

    def step(self, params: Params, batch: MetaBatch) -> tuple[Params, dict[str, float]]:
        """One TRPO update of the shared initialisation; returns new params and metrics."""
        started = time.perf_counter()
        objective = PostUpdateObjective(self.policy, self.inner, params, batch)
        theta, mean = objective.theta_old, self.world.mean  # block means -> meta-batch means
        local_loss, local_gradient = objective.gradient()
        loss_and_gradient = mean(torch.cat([local_loss.reshape(1), local_gradient]))
        old_loss, gradient = loss_and_gradient[0], loss_and_gradient[1:]
        gradient_done = time.perf_counter()
        local_product = objective.fisher_vector_product(self.fisher_subsample)
        full_step = trust_region_step(
            gradient,
            lambda vector: mean(local_product(vector)),
            self.max_kl,
            self.cg_iterations,
            self.cg_damping,
        )

        def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
            phi = objective.adapted_values(unflatten(candidate, theta))
            with torch.no_grad():
                local = torch.stack(objective.surrogate_and_kl_of_phi(phi))
            surrogate, kl = mean(local).tolist()
            return surrogate, kl

        curvature_done = time.perf_counter()
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
            # the outer step's parts: linearization and gradient, curvature products and
            # conjugate gradient, line search (seconds)
            "time/outer_gradient_s": gradient_done - started,
            "time/outer_curvature_s": curvature_done - gradient_done,
            "time/outer_line_search_s": time.perf_counter() - curvature_done,
        }
        return new_params, metrics

    def state_dict(self) -> dict[str, object]:
        return {}  # TRPO keeps no state between iterations

    def load_state_dict(self, state: dict[str, object], params: Params | None = None) -> None:
        del state, params
