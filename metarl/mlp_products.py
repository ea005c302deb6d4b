"""Exact derivative products of the Gaussian MLP policy, written out by hand.

The outer step of MAML-TRPO spends nearly all its time in two kinds of products at
fixed per-task parameters: Hessian-vector products of the REINFORCE inner loss (the
Jacobian of the inner step) and Fisher-vector products of the post-update policies.
Autograd's double backward builds and walks a graph of some twenty kernels per layer
for each of them. Here both are Pearlmutter's R-operator applied to the network's
forward and backward pass, written for ``Linear -> activation -> ... -> Linear`` with a
state-independent log-std (:class:`~metarl.policies.GaussianMLPPolicy`): every product
is a fixed sequence of batched matrix products over the task axis, and everything that
does not depend on the vector (activations, their derivatives, the backward pass's
errors) is computed once, when the point is fixed.

Notation, per task (``n`` indexes its valid and padded steps, ``c_n`` the weight of
step ``n`` in the loss): ``h_0 = x``, ``z_l = h_{l-1} W_l^T + b_l``, ``h_l = act(z_l)``,
``mu = z_L``; ``e = a - mu``, ``s = exp(-2 rho)``. The inner loss
``-sum_n c_n log pi(a_n | x_n)`` has ``dL/dmu = -c e s`` and
``dL/drho = sum_n c (1 - e^2 s)``; for a direction ``(V_l, u_l, r)``:

- ``R{z_l} = R{h_{l-1}} W_l^T + h_{l-1} V_l^T + u_l``, ``R{h_l} = act'(z_l) R{z_l}``;
- ``R{dL/dmu} = c s (R{mu} + 2 e r)``, ``R{dL/drho} = 2 sum_n c s e (R{mu} + e r)``;
- backward: ``R{dW_l} = R{d_l}^T h_{l-1} + d_l^T R{h_{l-1}}``,
  ``R{d_{l-1}} = act'(z) (R{d_l} W_l + d_l V_l) + act''(z) (d_l W_l) R{z_{l-1}}``.

ProMP's LVC inner loss ``-sum_n c_n w_n`` with ``w_n = pi(a_n | x_n) / pi_old(a_n | x_n)``
(``pi_old`` the sampling policy, or ``w = 1`` at the point itself when no log-probs were
recorded) has the gradient of the REINFORCE loss with weights ``c w`` and the Hessian
``H_reinforce(c w) - sum_n c_n w_n g_n g_n^T``, ``g_n = grad log pi(a_n | x_n)``: its
product adds ``g . v = e s R{mu} + (e^2 s - 1) r`` per step, pulled back with
``-c w (g . v)``.

The tests check every product against autograd (``tests/test_mlp_products.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from metarl.episodes import Episodes, flagged_first
from metarl.policies import GaussianMLPPolicy, Params

_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh"}


@dataclass(frozen=True)
class MlpLayout:
    """The parameter names of a Gaussian MLP policy, layer by layer, and its activation."""

    layers: tuple[tuple[str, str], ...]  # (weight name, bias name), input layer first
    log_std: str
    activation: str  # "relu" or "tanh"


def mlp_layout(policy: nn.Module) -> MlpLayout | None:
    """The layout of ``policy`` if the hand-written products apply to it, else ``None``.

    They apply to :class:`~metarl.policies.GaussianMLPPolicy` exactly (not to subclasses,
    which may change the forward pass) with ReLU or tanh hidden layers.
    """
    if type(policy) is not GaussianMLPPolicy:
        return None
    modules = list(policy.mean)
    activations = {type(m) for m in modules if not isinstance(m, nn.Linear)}
    if len(activations) > 1 or not activations <= set(_ACTIVATIONS):
        return None
    layers = tuple(
        (f"mean.{i}.weight", f"mean.{i}.bias")
        for i, m in enumerate(modules)
        if isinstance(m, nn.Linear)
    )
    expected = [isinstance(m, nn.Linear) for m in modules]
    if expected != [i % 2 == 0 for i in range(len(modules))]:
        return None
    activation = _ACTIVATIONS[activations.pop()] if activations else "relu"
    return MlpLayout(layers, "log_std", activation)


def task_major(values: torch.Tensor, trailing: int) -> torch.Tensor:
    """``[T, tasks, episodes, *rest]`` -> contiguous ``[tasks, T * episodes, *rest]``."""
    moved = values.movedim(1, 0)
    rest = moved.shape[moved.dim() - trailing :] if trailing else ()
    return moved.reshape(moved.shape[0], -1, *rest).contiguous()


def valid_rows(mask: torch.Tensor) -> torch.Tensor | None:
    """Per task, the indices of its valid rows first, cut to the most valid rows any task has.

    ``mask`` is task-major (``[tasks, N]``); returns ``[tasks, M]`` indices for
    :func:`take_rows`, or ``None`` when some task has every row valid (nothing to drop).
    Padded rows weigh zero in every loss, gradient and product here, so the products can
    skip them: episodes that end early (goals reached, falls, the paper's batch per task)
    then cost what their valid steps cost. Rows a task lacks up to ``M`` stay padding.
    """
    rows = flagged_first(mask)
    return None if rows.shape[1] >= mask.shape[1] else rows


def take_rows(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``values[i, rows[i]]`` for every task ``i``: ``[tasks, N, *rest]`` -> ``[tasks, M, *rest]``."""
    return torch.take_along_dim(values, rows.reshape(*rows.shape, *[1] * (values.dim() - 2)), 1)


class MlpPoint:
    """The network's forward pass at per-task parameters, with what its products reuse."""

    def __init__(self, layout: MlpLayout, params: Params, inputs: torch.Tensor) -> None:
        self.layout = layout
        self.weights = [params[w].detach() for w, _ in layout.layers]
        self.log_std = params[layout.log_std].detach()  # [tasks, act]
        self.inputs: list[torch.Tensor] = [inputs]  # h_0 ... h_{L-1}
        self.slopes: list[torch.Tensor] = []  # act'(z_l), hidden layers
        self.curvatures: list[torch.Tensor | None] = []  # act''(z_l) (None for ReLU)
        h = inputs
        for index, (_, b) in enumerate(layout.layers):
            z = torch.baddbmm(params[b].detach().unsqueeze(1), h, self.weights[index].mT)
            if index == len(layout.layers) - 1:
                self.mean = z
                break
            if layout.activation == "relu":
                h = torch.relu(z)
                self.slopes.append((z > 0).to(z.dtype))
                self.curvatures.append(None)
            else:
                h = torch.tanh(z)
                slope = 1.0 - h * h
                self.slopes.append(slope)
                self.curvatures.append(-2.0 * h * slope)
            self.inputs.append(h)

    def tangent(
        self, direction: Params
    ) -> tuple[torch.Tensor, list[torch.Tensor | None], list[torch.Tensor | None]]:
        """Forward mode along ``direction``: ``R{mu}``, the hidden ``R{z_l}`` (kept only where
        ``act''`` is not zero, else ``None``) and ``R{h_l}`` for each layer's input (``None``
        for the observations)."""
        layers = self.layout.layers
        pre_activations: list[torch.Tensor | None] = []
        inputs: list[torch.Tensor | None] = [None]
        for index, (w, b) in enumerate(layers):
            r_z = torch.baddbmm(direction[b].unsqueeze(1), self.inputs[index], direction[w].mT)
            r_h = inputs[index]
            if r_h is not None:
                r_z.baddbmm_(r_h, self.weights[index].mT)
            if index == len(layers) - 1:
                return r_z, pre_activations, inputs
            if self.curvatures[index] is None:  # in place: R{z_l} is not needed again
                pre_activations.append(None)
                inputs.append(r_z.mul_(self.slopes[index]))
            else:
                pre_activations.append(r_z)
                inputs.append(self.slopes[index] * r_z)
        raise AssertionError("unreachable: a layout has at least one layer")

    def pullback(self, mean_cotangent: torch.Tensor) -> Params:
        """``(d mu / d params)^T`` applied to ``mean_cotangent`` (no log-std entry)."""
        out: Params = {}
        delta = mean_cotangent
        for index in reversed(range(len(self.layout.layers))):
            w, b = self.layout.layers[index]
            out[w] = torch.bmm(delta.mT, self.inputs[index])
            out[b] = delta.sum(1)
            if index > 0:
                delta = torch.bmm(delta, self.weights[index]).mul_(self.slopes[index - 1])
        return out


INNER_ESTIMATORS_BY_HAND = ("reinforce", "lvc")


class InnerLossCurvature:
    """The inner loss of each task at per-task parameters: gradient and ``v -> H v``.

    ``estimator="reinforce"``: ``loss_i = -sum_n c_in log pi(a_n | x_n)`` with ``c =
    advantage * mask / (valid steps of the task)``; ``"lvc"``: ``-sum_n c_in pi / pi_old``
    with ``pi_old`` the recorded sampling log-probs (``episodes.log_probs``; the point itself
    if there are none). That is :func:`~metarl.losses.inner_loss` with the same estimator.
    The work runs over chunks of tasks (see :func:`task_chunks`).
    """

    def __init__(
        self,
        layout: MlpLayout,
        params: Params,
        episodes: Episodes,
        estimator: str = "reinforce",
    ) -> None:
        if estimator not in INNER_ESTIMATORS_BY_HAND:
            raise ValueError(
                f"no hand-written products for the {estimator!r} inner estimator; "
                f"choose from {INNER_ESTIMATORS_BY_HAND}"
            )
        if episodes.advantages is None:
            raise ValueError("episodes need advantages before adaptation (see add_advantages)")
        mask = task_major(episodes.mask, 0)
        coefficient = task_major(episodes.advantages, 0) * mask
        coefficient = coefficient / mask.sum(1, keepdim=True).clamp(min=1.0)
        observations = task_major(episodes.observations, 1)
        actions = task_major(episodes.actions, 1)
        # LVC with recorded sampling log-probs: those and the mask (padded steps get weight 1)
        reference = None
        if estimator == "lvc" and episodes.log_probs is not None:
            reference = (mask, task_major(episodes.log_probs, 0))
        rows = valid_rows(mask)
        if rows is not None:
            observations, actions, coefficient = (
                take_rows(values, rows) for values in (observations, actions, coefficient)
            )
            if reference is not None:
                reference = tuple(take_rows(values, rows) for values in reference)
        self._chunks = [
            (
                part,
                _InnerLossChunk(
                    layout,
                    _sliced(params, part),
                    observations[part],
                    actions[part],
                    coefficient[part],
                    estimator == "lvc",
                    None if reference is None else tuple(values[part] for values in reference),
                ),
            )
            for part in task_chunks(*coefficient.shape)
        ]
        self.gradient = _joined([chunk.gradient for _, chunk in self._chunks], params)

    def hessian_product(self, direction: Params) -> Params:
        """``H v`` per task, ``direction`` shaped like the per-task parameters."""
        parts = [chunk.hessian_product(_sliced(direction, part)) for part, chunk in self._chunks]
        return _joined(parts, direction)


class _InnerLossChunk:
    """:class:`InnerLossCurvature` on one chunk of tasks, from task-major tensors."""

    def __init__(
        self,
        layout: MlpLayout,
        params: Params,
        observations: torch.Tensor,
        actions: torch.Tensor,
        coefficient: torch.Tensor,
        lvc: bool = False,
        lvc_reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.point = point = MlpPoint(layout, params, observations)
        self.precision = torch.exp(-2.0 * point.log_std).unsqueeze(1)  # s, [tasks, 1, act]
        self.error = actions - point.mean  # e
        # LVC: weights c w with w = pi / pi_old, and the g g^T term in the products
        self.lvc = lvc
        if lvc_reference is not None:
            mask, old_log_probs = lvc_reference
            log_probs = (
                -0.5 * self.error.square() * self.precision
                - point.log_std.unsqueeze(1)
                - 0.5 * math.log(2 * math.pi)
            ).sum(-1)
            coefficient = coefficient * torch.exp(
                torch.where(mask > 0, log_probs - old_log_probs, 0.0)
            )
        self.coefficient = coefficient.unsqueeze(-1)  # [tasks, N, 1]
        self.weighted_error = self.coefficient * self.precision * self.error  # c s e
        # the backward pass's errors d_l (on z_l) and (d_l W_l) act''(z_{l-1}), reused by
        # every product
        self.deltas: list[torch.Tensor] = []
        self.back_curvatures: list[torch.Tensor | None] = []
        gradient: Params = {}
        delta = -self.weighted_error
        for index in reversed(range(len(layout.layers))):
            w, b = layout.layers[index]
            self.deltas.insert(0, delta)
            gradient[w] = torch.bmm(delta.mT, point.inputs[index])
            gradient[b] = delta.sum(1)
            if index > 0:
                back = torch.bmm(delta, point.weights[index])
                curvature = point.curvatures[index - 1]
                self.back_curvatures.insert(0, None if curvature is None else back * curvature)
                delta = back * point.slopes[index - 1]
        gradient[layout.log_std] = (
            self.coefficient * (1.0 - self.error.square() * self.precision)
        ).sum(1)
        self.gradient = _ordered(gradient, params)

    def hessian_product(self, direction: Params) -> Params:
        """``H v`` per task, ``direction`` shaped like the per-task parameters."""
        point, layout = self.point, self.point.layout
        r_mean, r_pre, r_h = point.tangent(direction)
        r_log_std = direction[layout.log_std].unsqueeze(1)  # r, [tasks, 1, act]
        scaled = self.coefficient * self.precision
        out: Params = {
            layout.log_std: 2.0 * (self.weighted_error * (r_mean + self.error * r_log_std)).sum(1)
        }
        r_delta = scaled * (r_mean + 2.0 * r_log_std * self.error)
        if self.lvc:  # - sum_n c_n w_n g_n (g_n . v)
            score_error = self.precision * self.error  # s e = d log pi / d mu
            score_log_std = self.error * score_error - 1.0  # e^2 s - 1 = d log pi / d rho
            along = self.coefficient * (
                (score_error * r_mean).sum(-1, keepdim=True)
                + (score_log_std * r_log_std).sum(-1, keepdim=True)
            )
            r_delta = r_delta - along * score_error
            out[layout.log_std] = out[layout.log_std] - (along * score_log_std).sum(1)
        for index in reversed(range(len(layout.layers))):
            w, b = layout.layers[index]
            delta = self.deltas[index]
            r_weight = torch.bmm(r_delta.mT, point.inputs[index])
            if r_h[index] is not None:
                r_weight.baddbmm_(delta.mT, r_h[index])
            out[w] = r_weight
            out[b] = r_delta.sum(1)
            if index > 0:
                r_back = torch.bmm(delta, direction[w]).baddbmm_(r_delta, point.weights[index])
                r_delta = r_back.mul_(point.slopes[index - 1])
                back_curvature = self.back_curvatures[index - 1]
                if back_curvature is not None:
                    r_delta.addcmul_(back_curvature, r_pre[index - 1])
        return _ordered(out, direction)


class PolicyFisher:
    """``u -> F u``: the Fisher of the per-task Gaussian policies, as :class:`GaussianFisher`.

    ``observations`` are task-major (``[tasks, N, obs]``); ``mean_weight`` (``[tasks, N,
    act]``) and ``log_std_weight`` (``[tasks, act]``) are the KL's second derivatives in the
    mean and the log-std, times each step's weight. The work runs over chunks of tasks.
    """

    def __init__(
        self,
        layout: MlpLayout,
        params: Params,
        observations: torch.Tensor,
        mean_weight: torch.Tensor,
        log_std_weight: torch.Tensor,
    ) -> None:
        self.layout = layout
        self._chunks = [
            (part, MlpPoint(layout, _sliced(params, part), observations[part]), mean_weight[part])
            for part in task_chunks(*observations.shape[:2])
        ]
        self.log_std_weight = log_std_weight

    def __call__(self, tangent: Params) -> Params:
        parts = []
        for part, point, mean_weight in self._chunks:
            r_mean, _, _ = point.tangent(_sliced(tangent, part))
            parts.append(point.pullback(mean_weight * r_mean))
        out = _joined(parts, {name: tangent[name] for name in parts[0]})
        out[self.layout.log_std] = self.log_std_weight * tangent[self.layout.log_std]
        return _ordered(out, tangent)


# Rows (steps) per chunk of tasks. A product's temporaries for one chunk (a hidden layer of
# 100 units: about 3 MB) stay in the cache between the kernels that write and read them;
# over the whole batch (16-64 MB each) every elementwise pass goes to memory. Measured on
# 2D navigation and HalfCheetahDir: products 20-25% faster than on the whole batch.
CHUNK_ROWS = 8192


def task_chunks(num_tasks: int, rows_per_task: int) -> list[slice]:
    """Consecutive slices of the task axis, each about :data:`CHUNK_ROWS` rows (at least one task)."""
    size = max(1, CHUNK_ROWS // max(rows_per_task, 1))
    return [slice(start, min(start + size, num_tasks)) for start in range(0, num_tasks, size)]


def _sliced(params: Params, part: slice) -> Params:
    return {name: value[part] for name, value in params.items()}


def _joined(parts: list[Params], like: Params) -> Params:
    """Per-chunk results concatenated on the task axis, in the key order of ``like``."""
    if len(parts) == 1:
        return _ordered(parts[0], like)
    return {name: torch.cat([part[name] for part in parts]) for name in like}


def _ordered(values: Params, like: Params) -> Params:
    """``values`` in the key order of ``like`` (flatten/unflatten rely on dict order)."""
    return {name: values[name] for name in like}
