"""One meta-batch over several processes and machines with ``torch.distributed``.

``torchrun`` starts the processes (ranks); :meth:`World.join` connects them (gloo). Each
rank owns an equal, contiguous block of the meta-batch's tasks: it samples, adapts and
differentiates only those. Every quantity the outer step needs is a mean over tasks, so
the mean of the ranks' block means (one all-reduce) is the meta-batch's: gradients,
curvature-vector products, line-search losses and KLs, ProMP's loss gradients and the
logged statistics are combined that way, and every rank takes the same step. Random
streams are per task (:mod:`metarl.sampler`), so tasks, episodes and, up to the order of
floating-point sums, parameters are the same with any number of ranks.

In one process (no ``torchrun``) :class:`World` is a single rank and every collective is
the identity: the same code runs.

Failure: a rank that dies closes its sockets, so the others' next collective fails at
once; a rank that hangs is named by a monitored barrier after each sampling phase, and
any other collective gives up after the same timeout. Either way every rank ends with a
:class:`RankFailure` and the last checkpoint stays as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 300.0
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

T = TypeVar("T")


class RankFailure(RuntimeError):
    """Another rank died, hung past the timeout, or refused the run."""


def launched_ranks() -> int:
    """How many ranks ``torchrun`` (or another launcher) started this process among; 1 if none."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {text!r}") from None


def refuse_ranks(script: str) -> None:
    """Refuse to run ``script`` under a multi-rank launch (only training is distributed)."""
    if launched_ranks() > 1:
        raise ValueError(
            f"{script} runs in one process; only scripts/train.py runs over several ranks "
            "(launch this one with python, not torchrun)"
        )


_joined: World | None = None  # the ranks this process is connected to, once joined


def leave_ranks() -> None:
    """Disconnect from the other ranks, if connected (at the end of a distributed run)."""
    global _joined
    _joined = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` ranks, and the collectives that join them."""

    rank: int = 0
    size: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    # the launcher's key-value store: where each rank notes how far it got, so that the
    # ranks left standing can name one that died or hangs
    store: Any = field(default=None, compare=False, repr=False)
    # what this rank has sent through collectives: {"collectives": n, "bytes": b}
    traffic: dict[str, int] = field(
        default_factory=lambda: {"collectives": 0, "bytes": 0}, compare=False, repr=False
    )

    @classmethod
    def join(cls, timeout_s: float = DEFAULT_TIMEOUT_S) -> World:
        """Connect to the ranks a launcher started (gloo), or be the only rank.

        ``timeout_s`` bounds every wait for another rank.
        """
        size = launched_ranks()
        if size <= 1:
            return cls(timeout_s=timeout_s)
        missing = [name for name in LAUNCHER_VARIABLES if name not in os.environ]
        if missing:
            raise ValueError(
                f"WORLD_SIZE={size} but {', '.join(missing)} not set: launch with torchrun"
            )
        global _joined
        if _joined is not None and dist.is_initialized():
            return _joined  # a second run in the same processes (metarl.train called again)
        if dist.is_initialized():
            raise ValueError(
                "torch.distributed was initialised outside metarl: let metarl.train (or "
                "World.join) connect the ranks, so that it can name a rank that fails"
            )
        timeout = timedelta(seconds=timeout_s)
        try:
            store, rank, size = next(dist.rendezvous("env://", timeout=timeout))
            dist.init_process_group(
                "gloo", store=store, rank=rank, world_size=size, timeout=timeout
            )
        except (RuntimeError, ValueError) as error:
            raise RankFailure(
                f"rank {os.environ['RANK']}: could not connect to the other ranks at "
                f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}: {error}"
            ) from error
        _joined = cls(rank, size, timeout_s, store)
        return _joined

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files."""
        return self.rank == 0

    def block(self, num_items: int) -> slice:
        """This rank's equal, contiguous share of ``num_items`` (tasks of a meta-batch)."""
        if num_items % self.size:
            divisors = [n for n in range(1, num_items + 1) if num_items % n == 0]
            raise ValueError(
                f"a meta-batch of {num_items} tasks does not split evenly over {self.size} "
                f"ranks; use a number of ranks that divides it: {divisors}"
            )
        share = num_items // self.size
        return slice(self.rank * share, (self.rank + 1) * share)

    # --- collectives (the identity in one process) -----------------------------------------
    def _collective(
        self, what: str, call: Any, *args: Any, payload_bytes: int = 0, **kwargs: Any
    ) -> Any:
        self.traffic["collectives"] += 1
        self.traffic["bytes"] += payload_bytes
        try:
            return call(*args, **kwargs)
        except (RuntimeError, ValueError) as error:  # DistBackendError is a RuntimeError
            raise RankFailure(
                f"rank {self.rank}: waiting for the other ranks ({what}) failed: {error}. "
                f"Another rank died or hung for more than {self.timeout_s:g} s (its own "
                "output says why); the last checkpoint is unaffected: resume with --resume"
            ) from error

    def mean(self, local: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of ``local`` (a block's mean: the meta-batch's mean)."""
        if self.size == 1:
            return local
        total = local.detach().to("cpu", copy=True)  # gloo reduces CPU tensors
        self._all_reduce(total)
        return (total / self.size).to(local.device)

    def sum(self, local: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``local``."""
        if self.size == 1:
            return local
        total = local.detach().to("cpu", copy=True)
        self._all_reduce(total)
        return total.to(local.device)

    def _all_reduce(self, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        self._collective("all-reduce", dist.all_reduce, tensor, payload_bytes=size)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank."""
        if self.size == 1:
            return flag
        return bool(self.sum(torch.tensor([float(flag)])).item() > 0)

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (picklable), in rank order."""
        if self.size == 1:
            return [value]
        values: list[Any] = [None] * self.size
        self._collective("gather", dist.all_gather_object, values, value)
        return values

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (picklable) on every rank."""
        if self.size == 1:
            return value
        box = [value if self.is_main else None]
        self._collective("broadcast", dist.broadcast_object_list, box, src=0)
        return box[0]

    def wait_for_all(self, what: str, step: int) -> None:
        """Meet every rank after ``what`` of ``step``; ranks not there within the timeout,
        or dead, are named in the :class:`RankFailure` every other rank raises."""
        if self.size == 1:
            return
        self.store.set(f"metarl/reached/{self.rank}", str(step))
        self.traffic["collectives"] += 1
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=self.timeout_s), wait_all_ranks=True)
        except RuntimeError as error:
            missing = self._ranks_behind(step)
            who = f"rank {', '.join(map(str, missing))}" if missing else "another rank"
            raise RankFailure(
                f"rank {self.rank}: {who} did not finish {what} of iteration {step}: it died, "
                f"or hung for more than {self.timeout_s:g} s (its own output says which). The "
                f"run stops; the last checkpoint is unaffected: resume with --resume. [{error}]"
            ) from error

    def _ranks_behind(self, step: int) -> list[int]:
        """Ranks whose last note in the store is before ``step`` (empty if unreadable)."""
        behind = []
        try:
            for rank in range(self.size):
                key = f"metarl/reached/{rank}"
                if not self.store.check([key]) or int(self.store.get(key)) < step:
                    behind.append(rank)
        except (RuntimeError, ValueError):  # the store went down with its host
            return []
        return behind
