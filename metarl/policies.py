"""Gaussian MLP policies whose parameters travel as dicts.

A policy module defines the architecture; the numbers live in a ``Params`` dict
(name -> tensor) and are applied with ``torch.func.functional_call``. Per-task
parameters carry a leading task dimension and are evaluated for all tasks at once
with ``torch.func.vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

Params = dict[str, torch.Tensor]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
INITS = ("glorot", "torch")


class GaussianMLPPolicy(nn.Module):
    """``pi(a|s) = N(mlp(s), diag(exp(log_std))^2)`` with a learned, state-independent log-std.

    The mean network is ``obs -> [hidden, activation]* -> act_dim`` (named ``mean.*``),
    laid out like Stable-Baselines3's ``mlp_extractor.policy_net`` + ``action_net``.
    Actions are in policy units ``[-1, 1]^d`` (``envs.to_env_actions`` maps them onto an
    env's bounds).

    ``init="glorot"`` (the paper's code): Glorot-uniform weights and zero biases on every
    layer, the output layer included, so the mean action is exactly 0 wherever the input
    is 0 (2D navigation's start). ``init="torch"``: PyTorch's default ``nn.Linear`` init.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: str = "relu",
        init_std: float = 1.0,
        init: str = "glorot",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}"
            )
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose from {list(INITS)}")
        if init_std <= 0:
            raise ValueError(f"init_std must be positive, got {init_std}")
        layers: list[nn.Module] = []
        width = obs_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            width = size
        layers.append(nn.Linear(width, act_dim))
        self.mean = nn.Sequential(*layers)
        if init == "glorot":
            for layer in self.mean:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``[..., act_dim]`` and log-std ``[act_dim]`` of the action distribution."""
        return self.mean(obs), self.log_std


def policy_params(policy: nn.Module) -> Params:
    """A detached copy of the policy's parameters as a dict."""
    return {name: p.detach().clone() for name, p in policy.named_parameters()}


def distribution_params(
    policy: nn.Module, params: Params, obs: torch.Tensor, per_task: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and log-std of ``pi_params(.|obs)``.

    ``obs`` is ``[T, tasks, ...rest, obs_dim]`` (time-major). With ``per_task`` the
    parameters have a leading task dimension that pairs with ``obs``'s task axis 1.
    Returns ``mean [T, tasks, ..., act_dim]`` and ``log_std`` broadcastable to it.
    """
    if not per_task:
        return functional_call(policy, params, (obs,))
    mean, log_std = vmap(
        lambda p, o: functional_call(policy, p, (o,)), in_dims=(0, 1), out_dims=(1, 0)
    )(params, obs)
    shape = [1] * mean.dim()
    shape[1], shape[-1] = log_std.shape[0], log_std.shape[-1]
    return mean, log_std.reshape(shape)


def gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """Log-density of ``actions`` under a diagonal Gaussian, summed over the action dimension."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_kl(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """``KL(p || q)`` between diagonal Gaussians, summed over the action dimension."""
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    kl = log_std_q - log_std_p + (var_p + (mean_p - mean_q).pow(2)) / (2 * var_q) - 0.5
    return kl.sum(-1)
