"""Numerical guards: find what would poison an update before it reaches the policy.

Each check returns ``None`` when all is well, or a sentence naming the cause, so a run
that keeps failing can stop with a message a user can act on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from metarl.episodes import Episodes
from metarl.policies import Params

MIN_LOG_STD = -20.0  # std below 2e-9: the policy has collapsed to a deterministic one
MAX_ABS_RETURN = 1e8


class RejectedBatch(RuntimeError):
    """Sampled data that must not be learned from; the message names the cause."""

    def __init__(self, problem: str, env_steps: int = 0) -> None:
        super().__init__(problem)
        self.env_steps = env_steps  # environment steps spent on the rejected data


def episodes_problem(episodes: Episodes, name: str) -> str | None:
    """Non-finite or exploding data in one batch of episodes (``name`` says which)."""
    for field in ("observations", "rewards"):
        value = getattr(episodes, field)
        if not torch.isfinite(value).all():
            count = int((~torch.isfinite(value)).sum())
            return f"the environment returned {count} non-finite {field} in the {name}"
    returns = episodes.episode_returns().abs().max().item()
    if returns > MAX_ABS_RETURN:
        return f"exploding returns: |return| reached {returns:.3g} in the {name}"
    if episodes.advantages is not None and not torch.isfinite(episodes.advantages).all():
        return f"non-finite advantages in the {name} (baseline fit failed)"
    return None


def check_episodes(episodes: Episodes, name: str) -> Episodes:
    """Return ``episodes``, or raise :class:`RejectedBatch` naming what is wrong with them."""
    problem = episodes_problem(episodes, name)
    if problem is not None:
        raise RejectedBatch(problem, episodes.num_steps)
    return episodes


def check_adapted(adapted: Params, step: int) -> Params:
    """Return the adapted parameters, or raise :class:`RejectedBatch` if any is not finite
    (an inner step so large that adaptation diverged): rolling them out would act NaN."""
    for name, value in adapted.items():
        if not torch.isfinite(value).all():
            raise RejectedBatch(
                f"non-finite adapted parameter {name!r} after inner step {step}: "
                "the inner step diverged (is --inner-lr too large?)"
            )
    return adapted


def update_problem(metrics: Mapping[str, float], params: Params) -> str | None:
    """A non-finite loss, gradient, KL or parameter, or a collapsed log-std, after a step."""
    for key in ("losses/surrogate", "losses/kl", "losses/grad_norm"):
        if key in metrics and not math.isfinite(metrics[key]):
            return f"non-finite {key.split('/')[1]} ({metrics[key]})"
    for name, value in params.items():
        if not torch.isfinite(value).all():
            return f"non-finite values in parameter {name!r}"
    log_std = params.get("log_std")
    if log_std is not None and log_std.min().item() < MIN_LOG_STD:
        return f"collapsed log-std (min {log_std.min().item():.1f}): the policy stopped exploring"
    return None
