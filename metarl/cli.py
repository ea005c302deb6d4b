"""Command-line value types shared by the scripts: every number checked at parse time.

Each factory returns an ``argparse`` ``type=`` callable that turns a string into a value
inside a range that can run, or raises :class:`argparse.ArgumentTypeError`; argparse then
exits with status 2 and ``argument --flag: <reason>``, so every message names the flag and
the range it accepts. Non-finite numbers (``nan``, ``inf``) are always refused.

:func:`run_script` is the scripts' entry-point wrapper: Ctrl-C ends a script with a line
and status 130, and a file-system error (a folder that cannot be created or written, a path
through a file) with one line naming the path and status 2, instead of a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

# upper limits that no run on one machine can reach anyway (memory is checked separately)
MAX_COUNT = 10**7
MAX_SEED = 2**32 - 1
MAX_THREADS = 1024


def integer(minimum: int = 0, maximum: int = MAX_COUNT) -> Callable[[str], int]:
    """An integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer in [{minimum}, {maximum}], got {text!r}"
            ) from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be an integer in [{minimum}, {maximum}], got {value}"
            )
        return value

    parse.__name__ = "integer"
    return parse


def number(
    minimum: float = 0.0, maximum: float = math.inf, *, open_minimum: bool = False
) -> Callable[[str], float]:
    """A finite number in ``[minimum, maximum]`` (``(minimum, maximum]`` if ``open_minimum``)."""
    left = "(" if open_minimum else "["
    accepted = f"a finite number in {left}{minimum:g}, {maximum:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {accepted}, got {text!r}") from None
        below = value <= minimum if open_minimum else value < minimum
        if not math.isfinite(value) or below or value > maximum:
            raise argparse.ArgumentTypeError(f"must be {accepted}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


count = integer(1)  # a positive count (tasks, episodes, iterations, ...)
seed = integer(0, MAX_SEED)
threads = integer(1, MAX_THREADS)
step_size = number(0.0, 100.0, open_minimum=True)  # an inner-loop step size
positive = number(0.0, open_minimum=True)
fraction = number(0.0, 1.0)


def flag(name: str) -> str:
    """The command-line spelling of a setting's name: ``inner_lr`` -> ``--inner-lr``."""
    return "--" + name.replace("_", "-")


def figure_file(text: str) -> Path:
    """A figure's output path, whose suffix matplotlib can write (checked before any work)."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(text)
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise argparse.ArgumentTypeError(
            f"must end in a figure format matplotlib writes ({', '.join(sorted(formats))}), "
            f"got {text!r}"
        )
    return path


def run_script(main: Callable[[], int | None], distributed: bool = False) -> None:
    """Run a script's ``main`` and exit with its status; Ctrl-C exits 130 with one line.

    Unless ``distributed``, a launch over several ranks (torchrun) is refused: only
    training splits its work over ranks; any other script would run N times over.
    """
    from metarl.distributed import refuse_ranks

    if not distributed:
        try:
            refuse_ranks(Path(sys.argv[0]).name)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
    try:
        status = main()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    except OSError as error:  # the file system refused: say which path and why
        print(f"error: {error}", file=sys.stderr)
        status = 2
    sys.exit(status or 0)
