"""THE inner loop: gradient-step adaptation of parameters to each task.

:func:`gradient_step` is the one place where an inner update happens; everything else
is a thin wrapper: :func:`inner_step`/:func:`adapt` for policies on episode batches
(used by the sampler, the outer algorithms and the evaluator), and any supervised
loss (``examples``: sinusoid regression) through ``gradient_step`` directly.

It is written with ``torch.func.grad`` and ``vmap``: the per-task gradients of all tasks
come from one batched call, and because ``torch.func`` transforms compose, an outer
``torch.func.vjp``/``jvp`` or plain autograd differentiates through the inner step,
giving the exact second-order meta-gradient. Under ``torch.no_grad`` it still adapts
(``torch.func.grad`` ignores an outer ``no_grad``).

Step sizes are a scalar, or a dict of tensors shaped like the parameters (Meta-SGD).
Meta-parameters may carry learned step sizes as entries named ``inner_lr.<param>``;
:func:`split_meta_params` separates them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from metarl.episodes import Episodes
from metarl.losses import inner_loss
from metarl.policies import Params, gaussian_log_prob

StepSize = float | Params  # a scalar, or one tensor per parameter (Meta-SGD)
STEP_SIZE_PREFIX = "inner_lr."


def split_meta_params(meta_params: Params) -> tuple[Params, Params | None]:
    """Split meta-parameters into model parameters and learned step sizes (or ``None``)."""
    params = {k: v for k, v in meta_params.items() if not k.startswith(STEP_SIZE_PREFIX)}
    step_sizes = {
        k[len(STEP_SIZE_PREFIX) :]: v
        for k, v in meta_params.items()
        if k.startswith(STEP_SIZE_PREFIX)
    }
    return params, (step_sizes or None)


def learned_step_sizes(
    params: Params, initial: float, names: Collection[str] | None = None
) -> Params:
    """Meta-SGD's per-parameter step sizes, one entry ``inner_lr.<name>`` per adapted parameter."""
    return {
        STEP_SIZE_PREFIX + name: torch.full_like(value, initial)
        for name, value in params.items()
        if names is None or name in names
    }


def gradient_step(
    loss: Callable[..., torch.Tensor],
    params: Params,
    data: Sequence[torch.Tensor],
    step_size: StepSize,
    per_task: bool,
    task_axis: int = 0,
    first_order: bool = False,
    adapted_names: Collection[str] | None = None,
) -> Params:
    """One gradient step per task: ``phi_i = params_(i) - step_size * grad loss(params_(i), data_i)``.

    ``loss(params, *task_data)`` is the loss of one task; ``data`` holds every task's data
    with the task on axis ``task_axis``. ``params`` are shared, or per task (leading task
    dimension) if ``per_task``. ``first_order`` stops the gradient through the inner
    gradient (first-order MAML); ``adapted_names`` restricts the update to those
    parameters (ANIL: the last layer). Returns per-task parameters.
    """
    gradients = vmap(grad(loss), in_dims=(0 if per_task else None, *[task_axis] * len(data)))(
        params, *data
    )
    num_tasks = data[0].shape[task_axis]
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


def task_inner_loss(
    policy: nn.Module,
    params: Params,
    observations: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    sampling_log_probs: torch.Tensor | None,
    estimator: str,
) -> torch.Tensor:
    """Policy-gradient inner loss of one task from its ``[T, episodes, ...]`` slice of a batch."""
    mean, log_std = functional_call(policy, params, (observations,))
    log_probs = gaussian_log_prob(mean, log_std, actions)
    return inner_loss(estimator, log_probs, advantages, mask, sampling_log_probs)


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
    """One policy-gradient step per task on its episodes; returns per-task parameters."""
    if episodes.advantages is None:
        raise ValueError("episodes need advantages before adaptation (see add_advantages)")
    data = [episodes.observations, episodes.actions, episodes.advantages, episodes.mask]
    if episodes.log_probs is not None:
        data.append(episodes.log_probs)

    def loss(p: Params, obs, act, adv, mask, sampling_log_probs=None) -> torch.Tensor:
        return task_inner_loss(policy, p, obs, act, adv, mask, sampling_log_probs, estimator)

    return gradient_step(loss, params, data, step_size, per_task, 1, first_order, adapted_names)


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
    parameters ``{name: [tasks, ...]}``; at least one batch is required.
    """
    if len(batches) == 0:
        raise ValueError("adapt needs at least one batch of episodes")
    if isinstance(step_sizes, float | int | dict):
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
