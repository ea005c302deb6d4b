"""metarl: meta-reinforcement learning in the MAML family, batched over tasks and episodes.

The Python API (see the README's "From Python"):

- :class:`TrainConfig` (``TrainConfig.for_env(env_id, **overrides)`` for the paper's
  preset) and :func:`train`;
- :func:`load` a run, baseline or saved policy as a :class:`MetaPolicy`, then
  ``adapt`` / ``adapt_from`` / ``predict`` / ``save``;
- :func:`evaluate` on held-out tasks (what ``scripts/evaluate.py`` prints).

Names are imported on first use, so ``import metarl.config`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "metarl.config",
    "train": "metarl.api",
    "load": "metarl.api",
    "evaluate": "metarl.api",
    "MetaPolicy": "metarl.api",
    "Evaluation": "metarl.api",
    "CheckpointError": "metarl.checkpoint",
    "TrainingDiverged": "metarl.trainer",
}

__all__ = [
    "CheckpointError",
    "Evaluation",
    "MetaPolicy",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "load",
    "train",
]

if TYPE_CHECKING:
    from metarl.api import Evaluation, MetaPolicy, evaluate, load, train
    from metarl.checkpoint import CheckpointError
    from metarl.config import TrainConfig
    from metarl.trainer import TrainingDiverged


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'metarl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
