"""One process per run folder: an advisory lock on ``<run_dir>/.lock``.

The lock is ``flock``-based, so the kernel releases it when its process dies: a lock left
by a killed run never blocks the ``--resume`` that follows. The file keeps the holder's pid
and host, for the message the second process gets. Where ``fcntl`` is missing (Windows),
runs are not locked.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunLocked(FileExistsError):
    """Another live process holds the run folder."""


class RunLock:
    """Holds ``run_dir``'s lock from construction until :meth:`release` (or process exit)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / LOCK_NAME
        self._handle: IO[str] | None = open(self.path, "a+")  # noqa: SIM115 - held open
        if fcntl is None:
            return
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "unknown process"
            self._handle.close()
            self._handle = None
            raise RunLocked(
                f"run dir {self.run_dir} is in use by another run ({holder}); wait for it to "
                "finish or stop it, or choose another --run-dir"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._handle.flush()

    def release(self) -> None:
        """Give the folder up (idempotent); the lock file itself stays, empty."""
        if self._handle is None:
            return
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.close()  # closing drops the flock
        self._handle = None
