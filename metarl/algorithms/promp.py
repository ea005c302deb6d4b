"""ProMP (Rothfuss et al. 2019): LVC inner step, PPO-style outer step with a KL penalty.

Outer loss, minimised with several Adam steps on one sampled meta-batch:

    L(theta) = mean_i -E[min(r A, clip(r, 1 - eps, 1 + eps) A)]  +  eta * KL(pi_theta_old || pi_theta)

with ``r = pi_{phi_i(theta)} / pi_{phi_i(theta_old)}`` on the post-update episodes and the
KL between the old and new pre-update policies on the pre-update episodes (a per-task mean
over steps, then a mean over tasks, like every other mean here). ``eta`` is
fixed, or adapted after each meta-iteration towards ``kl_target`` (halved when the KL is
below ``kl_target / 1.5``, doubled above ``1.5 * kl_target``), as in ProMP's code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from metarl.adaptation import split_meta_params
from metarl.algorithms.base import InnerLoop, MetaBatch
from metarl.distributed import World
from metarl.losses import clipped_surrogate_loss, masked_mean
from metarl.policies import Params, distribution_params, gaussian_kl, gaussian_log_prob


@dataclass
class ProMP:
    """Proximal meta-policy search: the outer update of MAML as a PPO-style step."""

    policy: nn.Module
    inner: InnerLoop
    learning_rate: float = 1e-3
    outer_steps: int = 5
    clip: float = 0.3
    kl_coeff: float = 5e-4
    adaptive_kl: bool = False
    kl_target: float = 0.01
    world: World = field(default_factory=World)  # ranks whose tasks' means are averaged
    _optimizer: torch.optim.Adam | None = field(default=None, repr=False)
    _leaves: Params | None = field(default=None, repr=False)

    def _ensure_optimizer(self, params: Params) -> Params:
        if self._leaves is None or self._leaves.keys() != params.keys():
            self._leaves = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
            self._optimizer = torch.optim.Adam(self._leaves.values(), lr=self.learning_rate)
        with torch.no_grad():
            for name, value in params.items():
                self._leaves[name].copy_(value)
        return self._leaves

    def step(self, params: Params, batch: MetaBatch) -> tuple[Params, dict[str, float]]:
        policy, first, post = self.policy, batch.pre[0], batch.post
        leaves = self._ensure_optimizer(params)
        with torch.no_grad():
            theta_old = {k: v.detach() for k, v in params.items()}
            pre_mean_old, pre_log_std_old = distribution_params(
                policy, split_meta_params(theta_old)[0], first.observations, False
            )
            phi_old = self.inner(policy, theta_old, batch.pre)
            mean, log_std = distribution_params(policy, phi_old, post.observations, True)
            old_log_probs = gaussian_log_prob(mean, log_std, post.actions)

        def losses() -> tuple[torch.Tensor, torch.Tensor]:
            phi = self.inner(policy, leaves, batch.pre)
            mean, log_std = distribution_params(policy, phi, post.observations, True)
            log_probs = gaussian_log_prob(mean, log_std, post.actions)
            surrogate = clipped_surrogate_loss(
                log_probs, old_log_probs, post.advantages, post.mask, self.clip
            ).mean()
            pre_mean, pre_log_std = distribution_params(
                policy, split_meta_params(leaves)[0], first.observations, False
            )
            kl = gaussian_kl(pre_mean_old, pre_log_std_old, pre_mean, pre_log_std)
            return surrogate, masked_mean(kl, first.mask, task_axis=1).mean()

        surrogate_before = None
        for _ in range(self.outer_steps):
            surrogate, kl = losses()
            if surrogate_before is None:
                surrogate_before = self.world.mean(surrogate.detach()).item()
            loss = surrogate + self.kl_coeff * kl
            self._optimizer.zero_grad()
            loss.backward()
            self._average_gradients_over_ranks(list(leaves.values()))
            self._optimizer.step()
        with torch.no_grad():
            surrogate, kl = self.world.mean(torch.stack(losses())).tolist()
        metrics = {
            "losses/surrogate_before": surrogate_before,
            "losses/surrogate": surrogate,
            "losses/kl": kl,
            "losses/kl_coeff": self.kl_coeff,
        }
        if self.adaptive_kl:
            if kl < self.kl_target / 1.5:
                self.kl_coeff /= 2.0
            elif kl > self.kl_target * 1.5:
                self.kl_coeff *= 2.0
        return {k: v.detach().clone() for k, v in leaves.items()}, metrics

    def _average_gradients_over_ranks(self, leaves: list[torch.Tensor]) -> None:
        """Replace each rank's block gradient by the meta-batch's (one all-reduce)."""
        if self.world.size == 1:
            return
        flat = self.world.mean(torch.cat([leaf.grad.reshape(-1) for leaf in leaves]))
        for leaf, part in zip(leaves, flat.split([leaf.numel() for leaf in leaves]), strict=True):
            leaf.grad.copy_(part.view_as(leaf))

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kl_coeff": self.kl_coeff}
        if self._optimizer is not None and self._leaves is not None:
            # a copy: the optimizer updates its moment tensors in place
            state["optimizer"] = copy.deepcopy(self._optimizer.state_dict())
            state["names"] = list(self._leaves)
        return state

    def load_state_dict(self, state: dict[str, Any], params: Params | None = None) -> None:
        self.kl_coeff = float(state["kl_coeff"])
        if "optimizer" in state and params is not None:
            self._ensure_optimizer({name: params[name] for name in state["names"]})
            self._optimizer.load_state_dict(state["optimizer"])
