"""Inner objectives, outer surrogates and the KL term, as pure functions of tensors.

Every loss is a per-task mean over valid steps: inputs are ``[T, (tasks,) episodes]``
with a mask, and the reduction is ``sum(x * mask) / sum(mask)`` over everything but
the task axis.
"""

from __future__ import annotations

import torch

INNER_ESTIMATORS = ("reinforce", "lvc", "dice")


def masked_mean(
    values: torch.Tensor, mask: torch.Tensor, task_axis: int | None = None
) -> torch.Tensor:
    """Mean of ``values`` over valid steps; per task if ``task_axis`` is given."""
    if task_axis is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    dims = tuple(d for d in range(values.dim()) if d != task_axis)
    return (values * mask).sum(dims) / mask.sum(dims).clamp(min=1.0)


def inner_loss(
    estimator: str,
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    sampling_log_probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inner-loop policy-gradient loss of one task (inputs ``[T, episodes]``), a scalar.

    - ``reinforce`` (MAML paper): ``-mean(log pi(a|s) * A)``.
    - ``lvc`` (ProMP, Rothfuss et al. 2019): ``-mean(pi / pi_sampling * A)``, the
      likelihood ratio to the policy that sampled the data (``stopgrad(pi)`` if that is not
      given). At the sampling parameters its gradient is the REINFORCE gradient, and its
      Hessian keeps the ``grad log pi grad log pi^T`` term that REINFORCE drops.
    - ``dice`` (Foerster et al. 2018): ``-mean(magic(sum_{t'<=t} log pi) * A_t)`` with
      ``magic(x) = exp(x - stopgrad(x))``: the unbiased estimator of all higher derivatives.
    """
    if estimator == "reinforce":
        surrogate = log_probs * advantages
    elif estimator == "lvc":
        reference = log_probs.detach() if sampling_log_probs is None else sampling_log_probs
        # padded steps get ratio 1: whatever they hold must not overflow into inf * 0
        log_ratio = torch.where(mask > 0, log_probs - reference, torch.zeros_like(log_probs))
        surrogate = torch.exp(log_ratio) * advantages
    elif estimator == "dice":
        cumulative = torch.cumsum(log_probs * mask, dim=0)
        surrogate = torch.exp(cumulative - cumulative.detach()) * advantages
    else:
        raise ValueError(f"unknown inner estimator {estimator!r}; choose from {INNER_ESTIMATORS}")
    return -masked_mean(surrogate, mask)


def surrogate_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """TRPO's importance-weighted surrogate ``-mean(pi/pi_old * A)``, per task ``[tasks]`` (axis 1)."""
    ratio = torch.exp(log_probs - old_log_probs)
    return -masked_mean(ratio * advantages, mask, task_axis=1)


def clipped_surrogate_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """PPO's clipped surrogate ``-mean(min(r A, clip(r, 1-eps, 1+eps) A))``, per task ``[tasks]``."""
    ratio = torch.exp(log_probs - old_log_probs)
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    return -masked_mean(torch.minimum(ratio * advantages, clipped * advantages), mask, task_axis=1)
