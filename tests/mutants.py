"""A hand-written mutation pass over the core (not collected by pytest).

    python -m tests.mutants            # every mutant against the fast tests
    python -m tests.mutants --list

Each mutant changes one line of the sampler, an env's reward or termination, a loss, the
advantages or the outer step, the way a plausible bug would; the fast test suite must fail
on it ("killed"). A survivor needs a test, or a written reason why it cannot matter.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (file, original text, mutated text, what the bug would be)
MUTANTS = [
    (
        "metarl/sampler.py",
        "alive = alive & ~ended",
        "alive = alive | ended",
        "episodes never end in the sampler's masks",
    ),
    (
        "metarl/sampler.py",
        "rewards * mask, mask",
        "rewards, mask",
        "rewards after an episode's end are kept",
    ),
    (
        "metarl/advantages.py",
        "deltas = (rewards + gamma * next_values - values) * mask",
        "deltas = (rewards + next_values - values) * mask",
        "no discount in GAE's TD error",
    ),
    (
        "metarl/advantages.py",
        "return (advantages - mean) / (var.sqrt() + eps) * mask",
        "return (advantages - mean) * mask",
        "advantages centred but not scaled",
    ),
    (
        "metarl/advantages.py",
        "mean = (advantages * mask).sum(dim=(0, 2), keepdim=True) / count",
        "mean = (advantages * mask).sum(dim=(0, 2), keepdim=True) / count * 0",
        "advantages scaled but not centred",
    ),
    (
        "metarl/losses.py",
        "    return -masked_mean(ratio * advantages, mask, task_axis=1)",
        "    return masked_mean(ratio * advantages, mask, task_axis=1)",
        "the TRPO surrogate's sign flipped",
    ),
    (
        "metarl/trpo.py",
        "loss < old_loss and kl <= max_kl",
        "loss < old_loss",
        "the line search ignores the trust region",
    ),
    (
        "metarl/trpo.py",
        "loss < old_loss and kl <= max_kl",
        "kl <= max_kl",
        "the line search accepts a worse surrogate",
    ),
    (
        "envs/navigation.py",
        "terminated = live & np.all(np.abs(offset) < GOAL_TOLERANCE, axis=1)",
        "terminated = live & np.any(np.abs(offset) < GOAL_TOLERANCE, axis=1)",
        "batched 2D navigation ends when one coordinate is near the goal",
    ),
    (
        "envs/base.py",
        "clipped = np.clip(np.asarray(actions, dtype=np.float64), low, high)",
        "clipped = np.asarray(actions, dtype=np.float64)",
        "the control cost charges the unclipped action",
    ),
    (
        "envs/half_cheetah.py",
        "return params[:, 0] * x_velocity",
        "return x_velocity",
        "HalfCheetahDir ignores the direction",
    ),
    (
        "envs/half_cheetah.py",
        "return -np.abs(x_velocity - params[:, 0])",
        "return -np.square(x_velocity - params[:, 0])",
        "HalfCheetahVel's task term squared",
    ),
    (
        "metarl/mlp_products.py",
        "r_delta = scaled * (r_mean + 2.0 * r_log_std * self.error)",
        "r_delta = scaled * (r_mean + r_log_std * self.error)",
        "the inner Hessian's mean/log-std cross term halved",
    ),
    (
        "metarl/mlp_products.py",
        "r_delta.addcmul_(back_curvature, r_pre[index - 1])",
        "pass",
        "the inner Hessian drops tanh's second derivative",
    ),
]
# the unit tests of the core (the end-to-end tests add minutes and little power here)
UNIT_TESTS = [
    "tests/test_sampler.py",
    "tests/test_advantages.py",
    "tests/test_estimators.py",
    "tests/test_meta_gradient.py",
    "tests/test_trpo.py",
    "tests/test_mlp_products.py",
    "tests/test_navigation.py",
    "tests/test_mujoco_envs.py",
    "tests/test_protocol.py",
]
TESTS = ["-m", "not slow", "-x", "-q", "-p", "no:cacheprovider", *UNIT_TESTS]


def run_mutant(path: str, original: str, mutated: str) -> bool:
    """Apply one mutant, run the fast tests, restore; ``True`` if a test failed (killed)."""
    file = ROOT / path
    source = file.read_text()
    if source.count(original) != 1:
        raise SystemExit(f"{path}: the text to mutate is not there exactly once: {original!r}")
    try:
        file.write_text(source.replace(original, mutated))
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *TESTS], cwd=ROOT, capture_output=True, timeout=1800
        )
    finally:
        file.write_text(source)
    return result.returncode != 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args()
    killed = 0
    for path, original, mutated, bug in MUTANTS:
        if args.list:
            print(f"{path}: {bug}")
            continue
        dead = run_mutant(path, original, mutated)
        killed += dead
        print(f"{'killed  ' if dead else 'SURVIVED'} {path}: {bug}", flush=True)
    if not args.list:
        print(f"mutation score: {killed}/{len(MUTANTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
