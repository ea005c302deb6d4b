"""Checkpoints: written atomically, loaded without unpickling arbitrary objects.

A checkpoint is a ``torch.save`` of plain containers, numbers, strings and tensors,
read back with ``torch.load(weights_only=True)``: a file crafted to run code when
unpickled is refused, not executed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "metarl-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit the run."""


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.

    A reader (or a resumed run) sees the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically save ``payload`` (plain data and tensors only) as a checkpoint."""
    atomic_write(path, lambda file: torch.save({"format": FORMAT, **payload}, file))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely; every failure is a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"checkpoint {path} holds objects that are not plain data and was refused "
            f"(it is not a metarl checkpoint, or it was tampered with): {error}"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint")
    return payload
