"""Stop a training loop cleanly on SIGINT (Ctrl-C) or SIGTERM (cluster pre-emption).

Inside :class:`StopRequest`, the first of these signals only sets :attr:`signal_name`;
the loop checks it after each iteration, writes a checkpoint and stops. A second signal
raises ``KeyboardInterrupt`` at once (the user insists). Outside the main thread signals
cannot be caught, and the context manager does nothing.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint at ``iteration``.

    ``exit_code`` is the shell's convention for death by that signal, 128 + its number.
    """

    def __init__(self, message: str, signal_name: str, exit_code: int, iteration: int) -> None:
        super().__init__(message)
        self.signal_name, self.exit_code, self.iteration = signal_name, exit_code, iteration


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current iteration."""

    def __init__(self, what: str = "finishing the current iteration") -> None:
        self.what = what
        self.signal_name: str | None = None
        self.signal_number = 0
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.requested:
            raise KeyboardInterrupt
        self.signal_number = signum
        self.signal_name = signal.Signals(signum).name
        print(
            f"\n{self.signal_name}: {self.what}, then saving a checkpoint "
            "(Ctrl-C again to exit at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        self._previous.clear()
