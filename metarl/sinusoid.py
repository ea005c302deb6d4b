"""Sinusoid regression (Finn et al. 2017, section 5.1): MAML is model-agnostic.

Each task is ``y = A sin(x - b)`` with amplitude ``A ~ U[0.1, 5]``, phase ``b ~ U[0, pi]``
and inputs ``x ~ U[-5, 5]``; a learner sees K = 10 points of a task. The same
:func:`~metarl.adaptation.gradient_step` that adapts policies adapts a regression MLP
here; the outer loop is Adam on the post-adaptation loss, through the inner step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from metarl.adaptation import gradient_step
from metarl.policies import Params, policy_params


@dataclass(frozen=True)
class SinusoidTasks:
    """A batch of sinusoid tasks: amplitudes and phases, ``[tasks]`` each."""

    amplitude: torch.Tensor
    phase: torch.Tensor

    @classmethod
    def sample(cls, n: int, rng: np.random.Generator) -> SinusoidTasks:
        amplitude = torch.as_tensor(rng.uniform(0.1, 5.0, n), dtype=torch.float32)
        phase = torch.as_tensor(rng.uniform(0.0, np.pi, n), dtype=torch.float32)
        return cls(amplitude, phase)

    def points(self, k: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` points of every task: ``x, y`` of shape ``[tasks, k, 1]``."""
        x = torch.as_tensor(
            rng.uniform(-5.0, 5.0, (len(self.amplitude), k, 1)), dtype=torch.float32
        )
        y = self.amplitude[:, None, None] * torch.sin(x - self.phase[:, None, None])
        return x, y


def regression_model(hidden: int = 40) -> nn.Module:
    """The paper's regressor: two hidden layers of 40 ReLU units."""
    return nn.Sequential(
        nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


def mse_loss(model: nn.Module):
    """``loss(params, x, y)``: mean squared error of one task."""

    def loss(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (functional_call(model, params, (x,)) - y).pow(2).mean()

    return loss


def adapt_regression(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    step_size: float,
    first_order: bool = False,
) -> Params:
    """``steps`` gradient steps on each task's ``(x, y)`` from shared ``params``; per-task result."""
    loss = mse_loss(model)
    adapted, per_task = params, False
    for _ in range(steps):
        adapted = gradient_step(loss, adapted, (x, y), step_size, per_task, 0, first_order)
        per_task = True
    return adapted


def per_task_loss(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, per_task: bool
) -> torch.Tensor:
    """Loss of every task ``[tasks]`` with shared or per-task parameters."""
    return vmap(mse_loss(model), in_dims=(0 if per_task else None, 0, 0))(params, x, y)


def meta_train(
    model: nn.Module,
    iterations: int,
    rng: np.random.Generator,
    meta_batch_size: int = 25,
    k: int = 10,
    step_size: float = 0.01,
    inner_steps: int = 1,
    learning_rate: float = 1e-3,
) -> Params:
    """MAML: Adam on the query loss after ``inner_steps`` steps on K support points."""
    params = {n: p.requires_grad_() for n, p in policy_params(model).items()}
    optimizer = torch.optim.Adam(params.values(), lr=learning_rate)
    for _ in range(iterations):
        tasks = SinusoidTasks.sample(meta_batch_size, rng)
        support, query = tasks.points(k, rng), tasks.points(k, rng)
        adapted = adapt_regression(model, params, *support, inner_steps, step_size)
        loss = per_task_loss(model, adapted, *query, per_task=True).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {n: p.detach() for n, p in params.items()}


def pretrain(
    model: nn.Module,
    iterations: int,
    rng: np.random.Generator,
    meta_batch_size: int = 25,
    k: int = 10,
    learning_rate: float = 1e-3,
) -> Params:
    """The paper's "pretrained" baseline: one model fitted to all tasks at once, no adaptation."""
    params = {n: p.requires_grad_() for n, p in policy_params(model).items()}
    optimizer = torch.optim.Adam(params.values(), lr=learning_rate)
    for _ in range(iterations):
        x, y = SinusoidTasks.sample(meta_batch_size, rng).points(k, rng)
        loss = per_task_loss(model, params, x, y, per_task=False).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {n: p.detach() for n, p in params.items()}


def adaptation_losses(
    model: nn.Module,
    params: Params,
    tasks: SinusoidTasks,
    steps: list[int],
    step_size: float,
    rng: np.random.Generator,
    k: int = 10,
    query_points: int = 100,
) -> dict[int, float]:
    """Mean query MSE over ``tasks`` after each number of gradient steps on K points."""
    support, query = tasks.points(k, rng), tasks.points(query_points, rng)
    results = {}
    for count in steps:
        with torch.no_grad():
            if count == 0:
                results[count] = per_task_loss(model, params, *query, per_task=False).mean().item()
                continue
            adapted = adapt_regression(model, params, *support, count, step_size, first_order=True)
            results[count] = per_task_loss(model, adapted, *query, per_task=True).mean().item()
    return results
