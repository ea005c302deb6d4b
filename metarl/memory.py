"""What a configuration will need in memory, checked before anything large is allocated.

A batch far larger than the machine otherwise fails deep inside numpy or torch with an
allocation traceback, or swaps for hours. The estimate is a linear model of the peak
resident memory of one meta-iteration, fitted to measurements on this project's envs
(2 cores, torch CPU; 2D navigation, HalfCheetah and Ant with hidden sizes 100-400):

- per sampled environment step kept for the outer step: ``40 * sum(hidden)`` bytes (the
  policy's activations for the second-order backward passes) plus ``96`` bytes per
  observation and action dimension (the episode buffers) plus ``512``;
- per batched env copy: the MuJoCo model's buffer and a tenth of its arena (measured
  0.7-1 MB per copy).

The estimate errs high; a configuration is refused only when it exceeds what the system
reports as available (``MemAvailable``), so it never refuses one that fits.
"""

from __future__ import annotations

from collections.abc import Sequence

GIB = 2**30
BYTES_PER_HIDDEN_UNIT = 40
BYTES_PER_DIMENSION = 96
BYTES_PER_STEP = 512
BASE_BYTES = 512 * 2**20  # interpreter, torch and MuJoCo themselves


class MemoryBudgetError(ValueError):
    """A configuration needs more memory than the machine has available."""


def available_bytes() -> int | None:
    """Memory the system can give this process now (Linux ``MemAvailable``), or ``None``."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def env_copy_bytes(env: object) -> int:
    """Resident memory of one batched copy of ``env`` (MuJoCo envs; others are negligible)."""
    model = getattr(env, "model", None)
    if model is None:
        return 4096
    return int(model.nbuffer + model.narena // 10)


def batch_bytes(
    steps: int, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], copies: int, copy: int
) -> int:
    """Estimated peak bytes of sampling ``steps`` env steps in ``copies`` batched copies and
    differentiating through them."""
    per_step = (
        BYTES_PER_HIDDEN_UNIT * sum(hidden_sizes)
        + BYTES_PER_DIMENSION * (obs_dim + act_dim)
        + BYTES_PER_STEP
    )
    return BASE_BYTES + steps * per_step + copies * copy


def check_fits(needed: int, what: str, advice: str) -> None:
    """Raise :class:`MemoryBudgetError` if ``needed`` bytes exceed what is available."""
    available = available_bytes()
    if available is None or needed <= available:
        return
    raise MemoryBudgetError(
        f"{what} needs about {needed / GIB:.1f} GiB of memory and {available / GIB:.1f} GiB "
        f"is available; {advice}"
    )
