"""Figures as PNG files: adaptation curves, learning curves, 2D-navigation paths.

Figures are drawn with matplotlib's object-oriented API on the Agg canvas, so nothing
here touches pyplot's global state or needs a display.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metarl.evaluation import CurveSummary

LEARNING_TAGS = ("charts/return_pre_adaptation", "charts/return_post_adaptation")


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_adaptation_curves(
    summaries: Sequence[CurveSummary], path: str | Path, title: str = ""
) -> Path:
    """The paper's figure: mean return vs number of gradient steps, 95% CI bands.

    One line per method; an oracle (evaluated without adaptation) is a horizontal line.
    """
    figure = Figure(figsize=(6, 4.2))
    axes = figure.add_subplot()
    max_steps = max([1, *(len(s.mean) - 1 for s in summaries)])
    for index, summary in enumerate(summaries):
        color = f"C{index}"
        mean, half = np.asarray(summary.mean), np.asarray(summary.ci95)
        if summary.oracle or len(mean) == 1:
            axes.axhline(mean[0], color=color, linestyle="--", label=summary.label)
            axes.axhspan(mean[0] - half[0], mean[0] + half[0], color=color, alpha=0.12)
            continue
        steps = np.arange(len(mean))
        axes.plot(steps, mean, marker="o", color=color, label=summary.label)
        axes.fill_between(steps, mean - half, mean + half, color=color, alpha=0.2)
    axes.set_xticks(range(max_steps + 1))
    axes.set_xlabel("number of gradient steps")
    axes.set_ylabel("average return")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def read_scalars(
    run_dir: str | Path, tags: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{tag: (steps, values)}`` from the TensorBoard event files directly in ``run_dir``.

    Events rewritten after a resume are deduplicated by step (the last value wins).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    available = set(accumulator.Tags().get("scalars", []))
    result = {}
    for tag in tags:
        if tag not in available:
            continue
        by_step = {event.step: event.value for event in accumulator.Scalars(tag)}
        steps = np.array(sorted(by_step), dtype=np.float64)
        result[tag] = (steps, np.array([by_step[s] for s in sorted(by_step)], dtype=np.float64))
    return result


def plot_learning_curves(
    runs: Sequence[tuple[str, str | Path]],
    path: str | Path,
    tags: Sequence[str] = LEARNING_TAGS,
    smoothing: int = 1,
    title: str = "",
) -> Path:
    """Returns vs environment steps, one panel per tag, one line per label.

    Runs that share a label (e.g. several seeds) are interpolated onto a common step grid
    and drawn as their mean with a band from the lowest to the highest run.
    ``smoothing`` is a moving-average window in logged points.
    """
    grouped: dict[str, list[Path]] = defaultdict(list)
    for label, run_dir in runs:
        grouped[label].append(Path(run_dir))
    curves = {label: [read_scalars(d, tags) for d in dirs] for label, dirs in grouped.items()}
    if not any(tag in scalars for runs_ in curves.values() for scalars in runs_ for tag in tags):
        raise ValueError(f"none of the runs {[str(d) for _, d in runs]} logged any of {list(tags)}")
    figure = Figure(figsize=(5.5 * len(tags), 4))
    panels = figure.subplots(1, len(tags), squeeze=False)[0]
    for axes, tag in zip(panels, tags, strict=True):
        for index, (label, per_run) in enumerate(curves.items()):
            series = [run[tag] for run in per_run if tag in run and len(run[tag][0])]
            if not series:
                continue
            color = f"C{index}"
            series = [(steps, _smooth(values, smoothing)) for steps, values in series]
            if len(series) == 1:
                steps, values = series[0]
                axes.plot(steps, values, color=color, label=label)
                continue
            end = min(steps[-1] for steps, _ in series)
            start = max(steps[0] for steps, _ in series)
            grid = np.linspace(start, end, 200)
            stacked = np.stack([np.interp(grid, steps, values) for steps, values in series])
            axes.plot(grid, stacked.mean(0), color=color, label=f"{label} (n={len(series)})")
            axes.fill_between(grid, stacked.min(0), stacked.max(0), color=color, alpha=0.2)
        axes.set_title(tag)
        axes.set_xlabel("environment steps")
        axes.set_ylabel("mean return per episode")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_navigation_paths(
    goal: Sequence[float],
    stages: Sequence[tuple[str, Sequence[np.ndarray]]],
    path: str | Path,
    title: str = "",
    goal_box: float = 0.5,
    mean_paths: Sequence[np.ndarray] | None = None,
) -> Path:
    """2D-navigation paths of a policy before and after adaptation.

    ``stages`` holds ``(label, paths)``, each path an array ``[points, 2]`` of positions
    from the start; ``mean_paths`` (one per stage, optional) are drawn bold: the path of
    the policy's mean action. The dotted square is the goal distribution's support.
    """
    figure = Figure(figsize=(5.5, 5.5))
    axes = figure.add_subplot()
    axes.add_patch(
        _rectangle(goal_box, edgecolor="0.6", facecolor="none", linestyle=":", linewidth=1)
    )
    for index, (label, paths) in enumerate(stages):
        for number, points in enumerate(paths):
            axes.plot(
                points[:, 0],
                points[:, 1],
                color=f"C{index}",
                alpha=0.6,
                linewidth=1,
                label=label if number == 0 else None,
            )
        if mean_paths is not None:
            points = mean_paths[index]
            axes.plot(points[:, 0], points[:, 1], color=f"C{index}", linewidth=2.5)
    axes.plot([0], [0], marker="o", color="black", linestyle="none", label="start")
    axes.plot(
        [goal[0]], [goal[1]], marker="*", markersize=16, color="red", linestyle="none", label="goal"
    )
    axes.set_aspect("equal")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    return _save(figure, path)


def _rectangle(half: float, **style):
    from matplotlib.patches import Rectangle

    return Rectangle((-half, -half), 2 * half, 2 * half, **style)
