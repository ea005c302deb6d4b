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

import copy
from collections.abc import Callable, Collection, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from metarl.episodes import Episodes
from metarl.losses import inner_loss
from metarl.mlp_products import INNER_ESTIMATORS_BY_HAND, InnerLossCurvature, mlp_layout
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
    loss = _task_loss(policy, estimator)
    data = _episode_data(episodes)
    return gradient_step(loss, params, data, step_size, per_task, 1, first_order, adapted_names)


def _episode_data(episodes: Episodes) -> list[torch.Tensor]:
    """What the inner loss reads of a batch, task on axis 1 (log-probs only if recorded)."""
    if episodes.advantages is None:
        raise ValueError("episodes need advantages before adaptation (see add_advantages)")
    data = [episodes.observations, episodes.actions, episodes.advantages, episodes.mask]
    if episodes.log_probs is not None:
        data.append(episodes.log_probs)
    return data


def _task_loss(policy: nn.Module, estimator: str) -> Callable[..., torch.Tensor]:
    """``(params, *one task's episode data) -> inner loss``, as :func:`gradient_step` takes it."""

    def loss(p: Params, obs, act, adv, mask, sampling_log_probs=None) -> torch.Tensor:
        return task_inner_loss(policy, p, obs, act, adv, mask, sampling_log_probs, estimator)

    return loss


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


def _step_rates(step_size: StepSize, params: Params, adapted_names: Collection[str] | None):
    """The step size of each parameter: a number, a tensor (Meta-SGD) or 0 if not adapted."""
    rates: dict[str, float | torch.Tensor] = {}
    for name in params:
        if adapted_names is not None and name not in adapted_names:
            rates[name] = 0.0
        else:
            rates[name] = step_size[name] if isinstance(step_size, dict) else step_size
    return rates


def _scale(rates: dict[str, float | torch.Tensor], vector: Params) -> Params:
    """``S v``: each entry times its step size (per-entry for Meta-SGD, broadcast over tasks)."""
    return {name: rates[name] * value for name, value in vector.items()}


def _expand(params: Params, num_tasks: int) -> Params:
    # contiguous copies: batched kernels on stride-0 views are several times slower
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape).contiguous() for k, v in params.items()}


class LinearizedAdaptation:
    """The inner loop at fixed meta-parameters, with exact products by its Jacobian.

    With ``phi_0 = theta`` and ``phi_k = phi_{k-1} - S * grad L_k(phi_{k-1})`` (per task,
    ``S`` the step sizes, zero for parameters that are not adapted), the Jacobian is
    ``J = J_K ... J_1`` with ``J_k = I - S H_k`` and ``H_k`` the Hessian of task ``i``'s
    inner loss at ``phi_{k-1}``. Everything that does not depend on the vector (the forward
    and backward pass behind each ``H_k``) is computed once here, so each
    :meth:`jvp`/:meth:`vjp` costs one reverse-over-reverse pass per inner step.

    :meth:`with_hessians_on` gives the same linearization with each ``H_k`` averaged over
    other batches, e.g. a subsample of the episodes: an unbiased estimate of ``J`` at the
    same points ``phi_k``, which always come from the full batches (the curvature subsample).

    With learned step sizes (Meta-SGD) the meta-parameters are ``(theta, alpha)`` and
    ``d phi_k / d alpha = -grad L_k`` enters the products as well.
    """

    def __init__(
        self,
        policy: nn.Module,
        meta_params: Params,
        batches: Sequence[Episodes],
        step_size: StepSize,
        first_order: bool = False,
        estimator: str = "reinforce",
        adapted_names: Collection[str] | None = None,
    ) -> None:
        if len(batches) == 0:
            raise ValueError("adaptation needs at least one batch of episodes")
        params, learned = split_meta_params({k: v.detach() for k, v in meta_params.items()})
        self.learned = learned
        self.first_order = first_order
        self.num_tasks = batches[0].num_tasks
        self._adapted = adapted_names
        self.rates = _step_rates(
            learned if learned is not None else step_size, params, adapted_names
        )
        self._task_gradients = _task_gradients(policy, estimator)
        # the REINFORCE and LVC losses of the project's MLP policy have their products
        # written out by hand (metarl.mlp_products)
        self._estimator = estimator
        self._layout = mlp_layout(policy) if estimator in INNER_ESTIMATORS_BY_HAND else None
        self._batches = list(batches)
        self._points: list[Params] = []  # phi_{k-1}, where step k's Hessian is taken
        self._inner_gradients: list[Params] = []  # grad L_k at phi_{k-1}, per task
        self._hessian_products: list[Callable[[Params], Params]] = []
        point = _expand(params, self.num_tasks)
        for episodes in batches:
            self._points.append(point)
            if first_order:
                gradient = self._gradient(point, episodes)
            else:
                gradient, product = self._hessian_product(point, episodes)
                self._hessian_products.append(product)
            gradient = {k: v.detach() for k, v in gradient.items()}
            self._inner_gradients.append(gradient)
            point = {k: v - self.rates[k] * gradient[k] for k, v in point.items()}
        self.adapted: Params = point

    def adapted_at(self, meta_params: Params) -> Params:
        """The inner loop's result at other meta-parameters on the same batches, as values
        (no graph): what a line search evaluates."""
        params, learned = split_meta_params({k: v.detach() for k, v in meta_params.items()})
        rates = self.rates if learned is None else _step_rates(learned, params, self._adapted)
        point = _expand(params, self.num_tasks)
        for episodes in self._batches:
            gradient = {k: v.detach() for k, v in self._gradient(point, episodes).items()}
            point = {k: v - rates[k] * gradient[k] for k, v in point.items()}
        return point

    def _gradient(self, point: Params, episodes: Episodes) -> Params:
        """The inner gradients at ``point``, per task."""
        if self._layout is not None:
            return InnerLossCurvature(self._layout, point, episodes, self._estimator).gradient
        return self._task_gradients(point, episodes)

    def _hessian_product(
        self, point: Params, episodes: Episodes
    ) -> tuple[Params, Callable[[Params], Params]]:
        """The inner gradients at ``point`` and ``v -> H v`` with their reverse pass stored."""
        if self._layout is not None:
            curvature = InnerLossCurvature(self._layout, point, episodes, self._estimator)
            return curvature.gradient, curvature.hessian_product
        gradient, product = vjp(lambda p: self._task_gradients(p, episodes), point)
        return gradient, lambda v: product(v)[0]

    def with_hessians_on(self, hessian_batches: Sequence[Episodes]) -> LinearizedAdaptation:
        """This linearization with ``H_k`` averaged over ``hessian_batches[k]`` instead."""
        twin = copy.copy(self)
        if not self.first_order:
            twin._hessian_products = [
                self._hessian_product(point, episodes)[1]
                for point, episodes in zip(self._points, hessian_batches, strict=True)
            ]
        return twin

    def jvp(self, tangent: Params) -> Params:
        """``J u`` for a tangent of the meta-parameters; returns per-task tangents of ``phi``."""
        params_tangent, rates_tangent = split_meta_params(tangent)
        u = _expand(params_tangent, self.num_tasks)
        for k, gradient in enumerate(self._inner_gradients):
            if not self.first_order:
                curvature = _scale(self.rates, self._hessian_products[k](u))
                u = {name: value - curvature[name] for name, value in u.items()}
            if rates_tangent is not None:
                u = {
                    name: value - rates_tangent[name] * gradient[name]
                    if name in rates_tangent
                    else value
                    for name, value in u.items()
                }
        return u

    def vjp(self, cotangent: Params) -> Params:
        """``J^T w`` for per-task cotangents of ``phi``; returns meta-parameter cotangents."""
        w = dict(cotangent)
        rates_cotangent = (
            {name: torch.zeros_like(rate) for name, rate in self.learned.items()}
            if self.learned is not None
            else None
        )
        for k in reversed(range(len(self._inner_gradients))):
            if rates_cotangent is not None:
                for name in rates_cotangent:
                    rates_cotangent[name] -= (self._inner_gradients[k][name] * w[name]).sum(0)
            if not self.first_order:
                curvature = self._hessian_products[k](_scale(self.rates, w))
                w = {name: value - curvature[name] for name, value in w.items()}
        result = {name: value.sum(0) for name, value in w.items()}
        if rates_cotangent is not None:
            result.update({STEP_SIZE_PREFIX + n: v for n, v in rates_cotangent.items()})
        return result


def _task_gradients(policy: nn.Module, estimator: str) -> Callable[[Params, Episodes], Params]:
    """``(per-task params, episodes) -> per-task gradients of the inner loss``, batched over tasks."""
    loss = _task_loss(policy, estimator)

    def gradients(params: Params, episodes: Episodes) -> Params:
        # task-major, contiguous: batched kernels over a strided task axis run several times slower
        data = [x.movedim(1, 0).contiguous() for x in _episode_data(episodes)]
        return vmap(grad(loss), in_dims=(0, *[0] * len(data)))(params, *data)

    return gradients
