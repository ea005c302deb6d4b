"""Writing a comparison of methods on the same held-out tasks: JSON, CSV, PNG, TensorBoard.

Shared by ``scripts/evaluate.py --compare`` and ``scripts/reproduce.py``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metarl.checkpoint import atomic_write
from metarl.config import evaluation_protocol
from metarl.evaluation import CurveSummary, adaptation_ratios
from metarl.task_groups import groups_dict, task_groups


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode()))


def comparison_csv(summaries: Sequence[CurveSummary], num_tasks: int) -> str:
    """One row per method and number of steps: mean and 95% CI bounds (over tasks, or over
    training seeds for a method pooled from several runs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "label",
            "kind",
            "inner_lr",
            "steps",
            "mean_return",
            "ci95_low",
            "ci95_high",
            "num_tasks",
            "num_seeds",
        ]
    )
    for s in summaries:
        for k, (mean, half) in enumerate(zip(s.mean, s.ci95, strict=True)):
            alpha = "" if s.step_size is None else s.step_size
            row = [s.label, s.kind, alpha, k, f"{mean:.6g}", f"{mean - half:.6g}"]
            writer.writerow([*row, f"{mean + half:.6g}", num_tasks, max(1, len(s.seeds))])
    return buffer.getvalue()


def comparison_dict(
    summaries: Sequence[CurveSummary],
    env_id: str,
    tasks: list[dict[str, Any]],
    episodes: int,
    seed: int,
    later_step_ratio: float | None = None,
) -> dict[str, Any]:
    """The content of ``comparison.json``, with adaptation ratios when an oracle is present."""
    ratio = later_step_ratio or evaluation_protocol(env_id).later_step_ratio
    result: dict[str, Any] = {
        "env": env_id,
        "adapt_steps": max(len(s.mean) for s in summaries) - 1,
        "num_tasks": len(tasks),
        "episodes_per_task": episodes,
        "seed": seed,
        "tasks": tasks,
        "step_schedule": f"alpha for the first step, {ratio} * alpha for later steps",
        "methods": [s.to_dict() for s in summaries],
    }
    groups = task_groups(tasks)
    if groups:  # e.g. backwards and forwards, each direction's mean on its own
        for method, s in zip(result["methods"], summaries, strict=True):
            method["by_task_group"] = groups_dict(s.returns, groups)
    oracle = next((s for s in summaries if s.oracle), None)
    if oracle is not None:
        for method, s in zip(result["methods"], summaries, strict=True):
            if not s.oracle:
                ratios = adaptation_ratios(s, oracle.mean[0])
                method["adaptation_ratio"] = {str(k): r for k, r in enumerate(ratios)}
    return result


def write_comparison(
    out: str | Path,
    summaries: Sequence[CurveSummary],
    env_id: str,
    tasks: list[dict[str, Any]],
    episodes: int,
    seed: int,
    later_step_ratio: float | None = None,
) -> dict[str, Any]:
    """Write ``comparison.json``, ``comparison.csv``, ``comparison.png`` (the paper's figure)
    and one TensorBoard run per method under ``tensorboard/<label>`` into ``out``."""
    from torch.utils.tensorboard import SummaryWriter

    from metarl.plotting import plot_adaptation_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = comparison_dict(summaries, env_id, tasks, episodes, seed, later_step_ratio)
    write_text(out / "comparison.json", json.dumps(result, indent=2))
    write_text(out / "comparison.csv", comparison_csv(summaries, len(tasks)))
    for s in summaries:
        log_dir = out / "tensorboard" / s.label
        for stale in log_dir.glob("events.out.tfevents.*"):  # a previous comparison's
            stale.unlink()
        writer = SummaryWriter(str(log_dir))
        for k, (mean, half) in enumerate(zip(s.mean, s.ci95, strict=True)):
            writer.add_scalar("eval/return", mean, k)
            writer.add_scalar("eval/return_ci95_low", mean - half, k)
            writer.add_scalar("eval/return_ci95_high", mean + half, k)
        for k, rate in enumerate(s.success_rate or []):
            writer.add_scalar("eval/success_rate", rate, k)
        writer.close()
    title = f"{env_id.split('/')[-1]}: {len(tasks)} held-out tasks, {episodes} episodes/step"
    plot_adaptation_curves(summaries, out / "comparison.png", title)
    return result
