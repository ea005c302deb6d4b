"""What every outer algorithm shares: the meta-batch, the configured inner loop, and its interface."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from torch import nn

from metarl.adaptation import LinearizedAdaptation, StepSize, adapt, split_meta_params
from metarl.episodes import Episodes
from metarl.policies import Params


class MetaBatch(NamedTuple):
    """The data of one meta-iteration: pre-update batches (one per inner step) and post-update."""

    pre: Sequence[Episodes]
    post: Episodes


@dataclass(frozen=True)
class InnerLoop:
    """How :func:`~metarl.adaptation.adapt` is called during meta-training.

    Meta-parameters may hold learned step sizes (``inner_lr.<name>``, Meta-SGD); then those
    are used instead of ``step_size`` and receive meta-gradients like the initialisation.
    """

    step_size: StepSize = 0.1
    first_order: bool = False
    estimator: str = "reinforce"
    adapted_names: Collection[str] | None = None

    def __call__(
        self, policy: nn.Module, meta_params: Params, batches: Sequence[Episodes]
    ) -> Params:
        params, learned = split_meta_params(meta_params)
        return adapt(
            policy,
            params,
            batches,
            learned if learned is not None else self.step_size,
            self.first_order,
            self.estimator,
            self.adapted_names,
        )

    def linearize(
        self,
        policy: nn.Module,
        meta_params: Params,
        batches: Sequence[Episodes],
    ) -> LinearizedAdaptation:
        """This inner loop at ``meta_params`` with exact Jacobian products (see
        :class:`~metarl.adaptation.LinearizedAdaptation`)."""
        return LinearizedAdaptation(
            policy,
            meta_params,
            batches,
            self.step_size,
            self.first_order,
            self.estimator,
            self.adapted_names,
        )


class OuterAlgorithm(Protocol):
    """An outer (meta) update: new meta-parameters from the old ones and a meta-batch."""

    policy: nn.Module
    inner: InnerLoop

    def step(self, params: Params, batch: MetaBatch) -> tuple[Params, dict[str, float]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], params: Params | None = None) -> None: ...
