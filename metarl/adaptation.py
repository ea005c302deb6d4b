"""THE inner loop: policy-gradient adaptation of the policy parameters to each task.

One function, :func:`adapt`, serves the sampler (to get adapted parameters to roll out),
the outer algorithms (which differentiate through it with ``torch.func.vjp``/``jvp``,
giving the exact second-order meta-gradient) and the evaluator.

It is written with ``torch.func.grad`` and ``vmap``: the per-task gradients of all
tasks come from one batched call, and because ``torch.func`` transforms compose, any
outer transform differentiates through the inner gradient step. Under ``torch.no_grad``
it still adapts (``torch.func.grad`` ignores an outer ``no_grad``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from metarl.episodes import Episodes
from metarl.losses import inner_loss
from metarl.policies import Params, gaussian_log_prob

StepSize = float | Params  # a scalar, or one tensor per parameter (Meta-SGD)


def task_inner_loss(
    policy: nn.Module,
    params: Params,
    observations: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    estimator: str,
) -> torch.Tensor:
    """Inner loss of one task from its ``[T, episodes, ...]`` slice of a batch."""
    mean, log_std = functional_call(policy, params, (observations,))
    log_probs = gaussian_log_prob(mean, log_std, actions)
    return inner_loss(estimator, log_probs, advantages, mask)


def inner_gradients(
    policy: nn.Module, params: Params, episodes: Episodes, estimator: str, per_task: bool
) -> Params:
    """Per-task gradients of the inner loss, each with a leading task dimension."""
    if episodes.advantages is None:
        raise ValueError("episodes need advantages before adaptation (see add_advantages)")

    def loss(p: Params, obs, act, adv, mask) -> torch.Tensor:
        return task_inner_loss(policy, p, obs, act, adv, mask, estimator)

    return vmap(grad(loss), in_dims=(0 if per_task else None, 1, 1, 1, 1))(
        params, episodes.observations, episodes.actions, episodes.advantages, episodes.mask
    )


def inner_step(
    policy: nn.Module,
    params: Params,
    episodes: Episodes,
    step_size: StepSize,
    per_task: bool,
    first_order: bool = False,
    estimator: str = "reinforce",
    adapted_names: Collection[str] | None = None,
) -> Params:
    """One gradient step per task: ``phi_i = params_(i) - step_size * grad L_i``.

    ``first_order`` stops the gradient through the inner gradient (first-order MAML);
    ``adapted_names`` restricts adaptation to those parameters (e.g. ANIL's last layer).
    Returns per-task parameters (leading task dimension).
    """
    gradients = inner_gradients(policy, params, episodes, estimator, per_task)
    num_tasks = episodes.num_tasks
    adapted: Params = {}
    for name, value in params.items():
        base = value if per_task else value.unsqueeze(0).expand(num_tasks, *value.shape)
        if adapted_names is not None and name not in adapted_names:
            adapted[name] = base
            continue
        gradient = gradients[name].detach() if first_order else gradients[name]
        rate = step_size[name] if isinstance(step_size, dict) else step_size
        adapted[name] = base - rate * gradient
    return adapted


def adapt(
    policy: nn.Module,
    params: Params,
    batches: Sequence[Episodes],
    step_sizes: Sequence[StepSize] | StepSize,
    first_order: bool = False,
    estimator: str = "reinforce",
    adapted_names: Collection[str] | None = None,
) -> Params:
    """Adapt shared ``params`` to every task with one inner step per batch in ``batches``.

    ``batches[k]`` holds the rollouts of all tasks sampled with the parameters after
    ``k`` steps. ``step_sizes`` is one step size for all steps or one per step (the
    paper's test-time schedule is ``[alpha, alpha/2, alpha/2, ...]``). Returns per-task
    parameters ``{name: [tasks, ...]}``; with no batches, ``params`` broadcast to tasks
    is not possible (task count unknown), so at least one batch is required.
    """
    if len(batches) == 0:
        raise ValueError("adapt needs at least one batch of episodes")
    if not isinstance(step_sizes, Sequence):
        step_sizes = [step_sizes] * len(batches)
    if len(step_sizes) != len(batches):
        raise ValueError(f"got {len(step_sizes)} step sizes for {len(batches)} inner steps")
    adapted, per_task = params, False
    for episodes, step_size in zip(batches, step_sizes, strict=True):
        adapted = inner_step(
            policy, adapted, episodes, step_size, per_task, first_order, estimator, adapted_names
        )
        per_task = True
    return adapted
