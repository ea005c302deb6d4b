"""Evaluate fast adaptation on held-out tasks: one run, or several runs and baselines compared.

    python scripts/evaluate.py --run-dir runs/nav --num-tasks 40 --adapt-steps 3 --seed 1234
    python scripts/evaluate.py --compare runs/nav runs/baselines/nav_pretrained \\
        runs/baselines/nav_random runs/baselines/nav_oracle \\
        --labels MAML pretrained random oracle --inner-lrs run 0.05 run run --out runs/compare_nav

Single run (--run-dir): loads the run's final checkpoint (or --checkpoint best), draws
--num-tasks tasks with --seed (a stream separate from training's), adapts to each with
0..K policy-gradient steps (step size alpha, then alpha/2, as in the paper), prints the mean
return per episode after each step, and writes <run-dir>/evaluation.json and eval/ scalars
to TensorBoard.

Comparison (--compare): evaluates every listed run or baseline (folders written by
scripts/train.py or scripts/baselines.py) on the same held-out tasks with the same seed,
and writes to --out: comparison.json and comparison.csv (mean and 95% confidence interval
over tasks after 0..K steps), comparison.png (return vs number of gradient steps, one line
per method with its CI band; the oracle, which sees the task and is not adapted, as a
horizontal line) and TensorBoard scalars eval/return (x-axis: gradient steps), one
TensorBoard run per method under tensorboard/<label>. Entries that share a label are
training seeds of one method: its row is the mean over seeds, with a 95% CI over the seeds'
means (Student t), and comparison.json keeps each seed's curve:

    python scripts/evaluate.py --compare runs/nav_s0 runs/nav_s1 runs/nav_s2 \
        --labels MAML MAML MAML --checkpoint select --out runs/compare_nav_seeds

Where the tasks are of a few kinds (the direction tasks: backwards and forwards), both modes
also print each kind's mean return after 0..K steps and write it as by_task_group in the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from metarl import cli
from metarl.api import evaluate, resolve
from metarl.checkpoint import CheckpointError, atomic_write
from metarl.comparison import write_comparison
from metarl.config import evaluation_protocol
from metarl.evaluation import (
    LoadedPolicy,
    comparison_table,
    evaluate_policy_curve,
    given_tasks,
    held_out_tasks,
    pool_by_label,
)
from metarl.runtime import configure_process
from metarl.selection import Selection
from metarl.task_groups import group_lines, task_groups


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="a training run's folder")
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="runs and/or baseline folders (or .pt files) to compare on the same tasks",
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        default=None,
        help="one label per --compare entry (default: names); entries sharing a label are "
        "training seeds of one method, pooled into one row with a CI over seeds",
    )
    parser.add_argument(
        "--inner-lrs",
        nargs="+",
        default=None,
        help="first step size per --compare entry, or 'run' for the checkpoint's inner_lr",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder: required with --compare; with --run-dir, where evaluation.json "
        "and evaluation.png go (default: the run folder)",
    )
    parser.add_argument(
        "--checkpoint",
        default="latest",
        help="'latest', 'best', an iteration number (each run's checkpoint of that iteration), "
        "a path to a .pt file, or 'select': the run's snapshot with the "
        "best return after --select-steps steps on validation tasks (--validation-seed), never "
        "the test tasks",
    )
    parser.add_argument(
        "--select-steps",
        type=cli.integer(1, 100),
        default=1,
        help="--checkpoint select scores each snapshot by its validation return after this many "
        "steps (default 1, the step meta-training optimises; the schedule is the evaluation's)",
    )
    parser.add_argument(
        "--validation-seed",
        type=cli.seed,
        default=None,
        help="seed of the validation tasks of --checkpoint select (default: --seed + 1)",
    )
    parser.add_argument(
        "--num-tasks", type=cli.integer(1, 10**5), default=40, help="held-out tasks (default: 40)"
    )
    parser.add_argument(
        "--paper-tasks",
        action="store_true",
        help="evaluate on the paper's own 40 test tasks for the env (drawn as its test scripts "
        "drew them; --seed then seeds only the rollouts) instead of --num-tasks drawn with --seed; "
        "--checkpoint select's validation tasks avoid them",
    )
    parser.add_argument(
        "--adapt-steps",
        type=cli.integer(0, 100),
        default=3,
        help="largest number of inner steps K (default: 3)",
    )
    parser.add_argument(
        "--episodes",
        type=cli.integer(1, 10**5),
        default=None,
        help="episodes per task per step (default: the paper's for the env: 40 for 2D "
        "navigation and AntDir, else 20)",
    )
    parser.add_argument(
        "--inner-lr",
        type=cli.step_size,
        default=None,
        help="first step size (default: the run's inner_lr); later steps use the paper's "
        "schedule for the env (half, or 1/100 for AntDir)",
    )
    parser.add_argument(
        "--later-step-ratio",
        type=cli.number(0.0, 100.0, open_minimum=True),
        default=None,
        help="size of the steps after the first, as a fraction of the first (default: the "
        "paper's for the env: 0.5, or 0.01 for AntDir)",
    )
    parser.add_argument(
        "--seed",
        type=cli.seed,
        default=1234,
        help="seed of the held-out tasks and rollouts (default: 1234)",
    )
    parser.add_argument(
        "--threads", type=cli.threads, default=2, help="torch CPU threads (default: 2)"
    )
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    if (args.run_dir is None) == (args.compare is None):
        raise ValueError("give either --run-dir (one run) or --compare DIR [DIR ...]")
    if args.select_steps != 1 and args.checkpoint != "select":
        raise ValueError("--select-steps only applies with --checkpoint select")
    if args.validation_seed is not None and args.checkpoint != "select":
        raise ValueError("--validation-seed only applies with --checkpoint select")
    if args.compare is None:
        for name in ("labels", "inner_lrs"):
            if getattr(args, name) is not None:
                raise ValueError(
                    f"{cli.flag(name)} only applies with --compare (one entry per run); with --run-dir "
                    "the step size is --inner-lr"
                )
        return
    if args.out is None:
        raise ValueError("--compare needs --out (the folder for the comparison's outputs)")
    for name in ("labels", "inner_lrs"):
        given = getattr(args, name)
        if given is not None and len(given) != len(args.compare):
            raise ValueError(
                f"--{name.replace('_', '-')} has {len(given)} entries for "
                f"{len(args.compare)} --compare entries"
            )
    for value in args.inner_lrs or []:
        if value != "run":
            try:
                cli.step_size(value)
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"--inner-lrs entries {error} (or 'run')") from None


def task_words(args: argparse.Namespace, num_tasks: int) -> str:
    """How the output names the test tasks."""
    return (
        f"the paper's {num_tasks} test tasks" if args.paper_tasks else f"{num_tasks} held-out tasks"
    )


def warn_if_seen(kind: str, training_seed: int, seed: int) -> None:
    if kind == "maml" and seed == training_seed:
        print(
            f"warning: --seed {seed} is the run's training seed: the held-out tasks are "
            "the first tasks it was trained on; choose another seed",
            file=sys.stderr,
        )


def resolve_entry(entry: Path, args: argparse.Namespace) -> tuple[LoadedPolicy, Selection | None]:
    """The policy an entry names (see :func:`metarl.api.resolve`), printing the validation
    scores of ``--checkpoint select``."""
    loaded, selection = resolve(
        entry,
        args.checkpoint,
        args.num_tasks,
        args.episodes,
        args.seed,
        args.validation_seed,
        args.select_steps,
        args.later_step_ratio,
        "paper" if args.paper_tasks else None,
    )
    if selection is not None:
        print_selection(entry, selection)
    return loaded, selection


def print_selection(entry: Path, selection: Selection) -> None:
    print(
        f"{entry}: validation return after {selection.steps} step(s) "
        f"(seed {selection.validation_seed}) per snapshot:"
    )
    for iteration, _, score in selection.scores:
        mark = "  <- selected" if iteration == selection.chosen.iteration else ""
        print(f"  iteration {iteration:5d}: {score:9.2f}{mark}")


def folder_of(entry: Path) -> Path:
    """The folder a single evaluation writes to by default: the run folder itself, or for a
    checkpoint file the run folder holding its ``checkpoints/`` (else the file's folder)."""
    if not entry.is_file():
        return entry
    if entry.parent.name == "checkpoints":
        return entry.parent.parent
    return entry.parent


def evaluate_run(args: argparse.Namespace) -> int:
    """The single-run mode: table on stdout, ``evaluation.json`` and ``evaluation.png`` in
    ``--out`` (default the run folder), eval/ scalars in the run folder."""
    from metarl.plotting import plot_adaptation_curves

    run_folder = folder_of(args.run_dir)
    out = args.out or run_folder
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a folder", file=sys.stderr)
        return 2
    configure_process(args.threads)
    try:
        evaluation = evaluate(
            args.run_dir,
            args.num_tasks,
            args.adapt_steps,
            args.episodes,
            args.seed,
            args.inner_lr,
            args.checkpoint,
            args.validation_seed,
            args.later_step_ratio,
            args.select_steps,
            "paper" if args.paper_tasks else None,
        )
    except (ValueError, CheckpointError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if evaluation.selection is not None:
        print_selection(args.run_dir, evaluation.selection)
    if not args.paper_tasks:
        warn_if_seen(evaluation.kind, evaluation.training_seed, args.seed)
    result = evaluation.to_dict()
    text = json.dumps(result, indent=2)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "evaluation.json", lambda file: file.write(text.encode()))
    title = (
        f"{evaluation.env.split('/')[-1]}, iteration {evaluation.iteration}: "
        f"{task_words(args, evaluation.num_tasks)}, {evaluation.episodes_per_task} episodes/step"
    )
    plot_adaptation_curves([evaluation.summary], out / "evaluation.png", title)
    writer = SummaryWriter(str(run_folder))
    env_steps = evaluation.summary.env_steps
    for k, value in enumerate(evaluation.mean_return):
        writer.add_scalar(f"eval/return_step_{k}", value, env_steps)
    success = evaluation.summary.success_rate  # envs reporting info["success"] (Meta-World)
    for k, value in enumerate(success or []):
        writer.add_scalar(f"eval/success_rate_step_{k}", value, env_steps)
    writer.close()
    print(
        f"{evaluation.env}, {task_words(args, evaluation.num_tasks)}, "
        f"{evaluation.episodes_per_task} episodes per step, checkpoint {evaluation.checkpoint}"
    )
    curve = torch.tensor(evaluation.returns, dtype=torch.float64)
    print("steps | mean return | std over tasks" + (" | success rate" if success else ""))
    for k in range(evaluation.adapt_steps + 1):
        rate = f" | {success[k]:12.1%}" if success else ""
        spread = f"{curve[k].std():14.2f}" if curve.shape[1] > 1 else f"{'-':>14}"
        print(f"{k:5d} | {curve[k].mean():11.2f} | {spread}{rate}")
    print_task_kinds(evaluation.tasks, evaluation.adapt_steps, [("  ", evaluation.returns)])
    print(f"wrote {out / 'evaluation.json'} and evaluation.png")
    return 0


def print_task_kinds(
    tasks: list[dict], adapt_steps: int, curves: list[tuple[str, list[list[float]]]]
) -> None:
    """Each kind of task's mean return after 0..K steps (direction tasks: backwards,
    forwards), one line per kind for each ``(prefix, returns)`` curve; nothing without kinds."""
    groups = task_groups(tasks)
    if not groups:
        return
    print(f"mean return after 0..{adapt_steps} steps, by kind of task:")
    for prefix, returns in curves:
        print("\n".join(group_lines(returns, groups, prefix)))


def default_labels(entries: list[Path]) -> list[str]:
    names = [entry.stem if entry.suffix == ".pt" else entry.name for entry in entries]
    return [name if names.count(name) == 1 else f"{name}_{i}" for i, name in enumerate(names)]


def compare(args: argparse.Namespace) -> int:
    """The comparison mode: every entry on the same held-out tasks; table, JSON, CSV, PNG, TB."""

    labels = args.labels or default_labels(args.compare)
    configure_process(args.threads)
    try:
        resolved = [resolve_entry(entry, args) for entry in args.compare]
        loaded = [item for item, _ in resolved]
        step_sizes: list[float | None] = []
        for value in args.inner_lrs or ["run"] * len(loaded):
            step_sizes.append(None if value == "run" else float(value))
        envs = {item.config.env for item in loaded}
        if len(envs) != 1:
            raise ValueError(f"cannot compare policies of different envs: {sorted(envs)}")
    except (ValueError, CheckpointError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    env_id = envs.pop()
    episodes = args.episodes or evaluation_protocol(env_id).episodes
    if args.paper_tasks:
        tasks = given_tasks(loaded[0].env, env_id, "paper")
    else:
        tasks = held_out_tasks(loaded[0].env, args.num_tasks, args.seed)
    summaries = []
    for (item, selection), label, step in zip(resolved, labels, step_sizes, strict=True):
        if not args.paper_tasks:
            warn_if_seen(item.kind, item.config.seed, args.seed)
        step = step if step is not None else args.inner_lr
        try:
            summary = evaluate_policy_curve(
                item,
                tasks,
                episodes,
                args.adapt_steps,
                args.seed,
                step,
                label,
                args.later_step_ratio,
            )
        except ValueError as error:  # e.g. more episodes than memory holds
            print(f"error: {error}", file=sys.stderr)
            return 2
        if selection is not None:
            summary = replace(summary, selection=selection.to_dict())
        summaries.append(summary)
    try:
        summaries = pool_by_label(summaries)
    except ValueError as error:  # a repeated label on entries that are not seeds of one method
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_comparison(args.out, summaries, env_id, tasks, episodes, args.seed, args.later_step_ratio)
    pooled = any(s.seeds for s in summaries)
    print(
        f"{env_id}, {task_words(args, len(tasks))} (rollout seed {args.seed}), {episodes} "
        "episodes per step; mean return ± 95% CI over tasks"
        + (" (over training seeds for a label given several runs)" if pooled else "")
    )
    print(comparison_table(summaries, args.adapt_steps))
    print_task_kinds(tasks, args.adapt_steps, [(f"  {s.label}, ", s.returns) for s in summaries])
    for s in summaries:
        for member in s.seeds or (s,):
            means = " / ".join(f"{m:.2f}" for m in member.mean)
            print(
                f"  {s.label}: {member.kind}, {member.path} (iteration {member.iteration}, "
                f"{member.env_steps} env steps)" + (f": {means}" if s.seeds else "")
            )
    print(f"wrote {args.out / 'comparison.json'}, comparison.csv, comparison.png, tensorboard/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_arguments(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return compare(args) if args.compare is not None else evaluate_run(args)


if __name__ == "__main__":
    cli.run_script(main)
