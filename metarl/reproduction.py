"""One row of the paper's table, reproduced end to end and resumable stage by stage.

Stages, each skipped when its output already exists (so a killed reproduction resumes
where it stopped): meta-training (the trainer resumes from its last checkpoint), the
baselines (pretrained, random, oracle; Stable-Baselines3 PPO), the choice of the
baselines' fine-tuning step and of the MAML snapshot on validation tasks, the evaluation
of every method on the same held-out tasks (one file per method), and the table.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from envs import TaskEnv
from envs.task_api import require_task_vector
from metarl.baselines import PPOSettings, baseline_config, train_baseline
from metarl.checkpoint import load_checkpoint
from metarl.comparison import write_comparison, write_text
from metarl.config import TrainConfig, evaluation_protocol, load_config, resume_conflicts
from metarl.evaluation import (
    CurveSummary,
    LoadedPolicy,
    adaptation_ratios,
    evaluate_policy_curve,
    given_tasks,
    held_out_tasks,
    load_policy,
)
from metarl.paper_tasks import NUM_TEST_TASKS, paper_test_tasks
from metarl.run_lock import RunLock
from metarl.selection import Selection, select_snapshot, validation_tasks

# The paper's table (shared/REFERENCE.md section 1): mean return over 40 test tasks after
# 0..3 steps, and the iteration of the snapshot it reports (1b).
PAPER: dict[str, dict[str, Any]] = {
    "metarl/Navigation2D-v0": {
        "iteration": 100,
        "MAML": [-40.4, -11.7, -3.33, -3.23],
        "pretrained": [-40.8, -19.7, -11.7, -8.47],
        "random": [-82.7, -58.0, -53.8, -46.8],
        "oracle": [-2.29],
    },
    "metarl/HalfCheetahVel-v0": {
        "iteration": 475,
        "MAML": [-129.5, -78.6, -66.6, -60.8],
        "pretrained": [-158.0, -135.4, -128.5, -133.6],
        "oracle": [-54.5],
    },
    "metarl/HalfCheetahDir-v0": {
        "iteration": 100,
        "MAML": [-50.7, 293.2, 313.5, 315.7],
        "pretrained": [-43.0, -24.8, -12.9, 19.6],
        "oracle": [442.7],
    },
    "metarl/AntVel-v0": {"iteration": 375, "MAML": [30.6, 96.7, 100.1, 101.4], "oracle": [107.9]},
    "metarl/AntDir-v0": {"iteration": 575, "MAML": [8.7, 499.2, 500.7, 499.1], "oracle": [524.8]},
}
BASELINE_KINDS = ("pretrained", "random", "oracle")
# PPO budgets of the baselines (env steps), and the initial std PPO starts from: 2D
# navigation's tiny action bounds make PPO far faster from 0.1 (scripts/baselines.py).
PPO_TIMESTEPS = {"pretrained": 1_000_000, "oracle": 2_000_000}
PPO_INIT_STD = {"metarl/Navigation2D-v0": 0.1}
# Candidate first fine-tuning steps of the pretrained and random baselines, times the env's
# alpha, chosen on validation tasks. Wide on purpose: the paper's HalfCheetah test used 0.2
# (pretrained) and 1.0 (random) against MAML's 0.1, and a PPO-pretrained 2D-navigation policy
# needs about alpha / 32 (larger first steps made it worse than not adapting).
FINE_TUNING_RATIOS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 10.0)


def paper_iteration(env_id: str) -> int:
    """The iteration of the snapshot behind the paper's row (500 for an env not in the table)."""
    return PAPER.get(env_id, {}).get("iteration", 500)


def paper_ratios(env_id: str) -> list[float] | None:
    """The paper's adaptation ratios after 0..3 steps, from its table."""
    row = PAPER.get(env_id)
    if row is None:
        return None
    maml, oracle = row["MAML"], row["oracle"][0]
    return [(m - maml[0]) / (oracle - maml[0]) for m in maml]


@dataclass(frozen=True)
class ReproductionSettings:
    """What a reproduction runs: the training config, the test protocol and the baselines."""

    config: TrainConfig
    target_iteration: int  # the paper's snapshot iteration (or --iterations)
    budget_iterations: int | None = None  # stop training early, and say so
    num_tasks: int = 40
    adapt_steps: int = 3
    episodes: int | None = None  # per step; default the env's test protocol
    seed: int = 1234  # test tasks and rollouts
    paper_tasks: bool = False  # test on the paper's own 40 tasks instead of seed's draw
    validation_seed: int = 4321
    validation_tasks: int = 10  # for the fine-tuning step of the baselines
    baselines: tuple[str, ...] = BASELINE_KINDS
    ppo_timesteps: dict[str, int] = field(default_factory=lambda: dict(PPO_TIMESTEPS))
    ppo_threads: int = 1

    def __post_init__(self) -> None:
        if self.paper_tasks and self.num_tasks != NUM_TEST_TASKS:
            raise ValueError(
                f"--paper-tasks tests on the paper's {NUM_TEST_TASKS} tasks; leave --num-tasks "
                f"at {NUM_TEST_TASKS} (got {self.num_tasks})"
            )
        if self.paper_tasks:  # a clear error now, not after hours of training
            paper_test_tasks(self.config.env)

    @property
    def iterations(self) -> int:
        budget = self.budget_iterations
        return self.target_iteration if budget is None else min(budget, self.target_iteration)

    @property
    def episodes_per_step(self) -> int:
        return self.episodes or evaluation_protocol(self.config.env).episodes

    def evaluation_key(self) -> dict[str, Any]:
        """What a cached evaluation must match to be reused."""
        key: dict[str, Any] = {
            "num_tasks": self.num_tasks,
            "adapt_steps": self.adapt_steps,
            "episodes": self.episodes_per_step,
            "seed": self.seed,
        }
        if self.paper_tasks:
            key["tasks"] = "paper"
        return key

    def test_tasks(self, env: TaskEnv) -> list[dict[str, Any]]:
        """The held-out tasks every method is tested on: the paper's, or ``num_tasks`` drawn
        with ``seed``."""
        if self.paper_tasks:
            return given_tasks(env, self.config.env, "paper")
        return held_out_tasks(env, self.num_tasks, self.seed)


Log = Callable[[str], None]


class Reproduction:
    """The stages of one row in ``out``: ``maml/``, ``baselines/<kind>/``, ``evaluation/``,
    ``table.{json,csv,md}``, ``comparison.png``."""

    def __init__(self, settings: ReproductionSettings, out: str | Path, log: Log = print) -> None:
        self.settings, self.out, self.log = settings, Path(out), log
        if settings.validation_seed == settings.seed:
            raise ValueError("the validation seed must differ from the test seed")
        if "oracle" in settings.baselines:  # before hours of training, not after
            require_task_vector(settings.config.env)

    # --- stage 1: meta-training ---------------------------------------------------
    def train(self, progress: bool = True) -> Path:
        from metarl.trainer import Trainer

        run = self.out / "maml"
        config = dataclasses.replace(self.settings.config, iterations=self.settings.iterations)
        latest = run / "checkpoints" / "latest.pt"
        if latest.is_file():
            check_same_run(run, config)
        done = latest.is_file() and int(load_checkpoint(latest)["iteration"]) >= config.iterations
        if done:
            self.log(f"[1/4] meta-training: done ({config.iterations} iterations), skipped")
            return run
        resume = latest.is_file()
        if not resume and run.exists():
            RunLock(run).release()  # refuses (RunLocked) while another process trains in it
            shutil.rmtree(run)  # a run killed before its first checkpoint: start afresh
        verb = "resuming" if resume else "starting"
        self.log(f"[1/4] meta-training: {verb}, to iteration {config.iterations} in {run}")
        Trainer(config, run, resume=resume).run(progress=progress)
        return run

    # --- stage 2: baselines -------------------------------------------------------
    def baseline(self, kind: str) -> Path:
        folder = self.out / "baselines" / kind
        if (folder / "checkpoints" / "latest.pt").is_file():
            self.log(f"[2/4] baseline {kind}: done, skipped")
            return folder
        if folder.exists():
            shutil.rmtree(folder)  # killed during PPO: its partial logs go
        config = self.settings.config
        env_id = config.env
        init_std = 1.0 if kind == "random" else PPO_INIT_STD.get(env_id, 1.0)
        stored = baseline_config(
            env_id, config.hidden_sizes, config.activation, config.inner_lr, init_std, config.seed
        )
        timesteps = self.settings.ppo_timesteps.get(kind, 0)
        what = "initialisation" if kind == "random" else f"PPO, {timesteps} env steps"
        self.log(f"[2/4] baseline {kind}: training ({what}) in {folder}")
        ppo = PPOSettings(timesteps=max(timesteps, 1))
        result = train_baseline(kind, folder, stored, ppo, seed=config.seed)
        self.log(f"      {kind}: {result.env_steps} env steps in {result.wall_time_s:.0f} s")
        return folder

    # --- stage 3: choices on validation tasks -----------------------------------------
    def select(self, run: Path) -> Selection:
        """The MAML snapshot with the best validation return after one step (cached, keyed
        by the test protocol and the iteration the run reached)."""
        cached = self.out / "evaluation" / "selection.json"
        settings = self.settings
        reached = int(load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"])
        key = {**settings.evaluation_key(), "validation_seed": settings.validation_seed}
        key["iterations_reached"] = reached
        saved = json.loads(cached.read_text()) if cached.is_file() else {}
        if saved.get("key") == key:
            record = saved["selection"]
            chosen = load_policy(record["checkpoint"])
            scores = [
                (c["iteration"], c["checkpoint"], c["validation_return"])
                for c in record["candidates"]
            ]
            disjoint = record["validation_tasks_disjoint_from_test"]
            self.log(f"[3/4] snapshot: iteration {chosen.iteration} (chosen before), skipped")
            return Selection(chosen, scores, settings.validation_seed, disjoint, 1)
        selection = select_snapshot(
            run,
            settings.num_tasks,
            settings.episodes_per_step,
            settings.validation_seed,
            settings.seed,
            test_tasks=settings.test_tasks(load_policy(run / "checkpoints" / "latest.pt").env),
        )
        record = {"key": key, "selection": selection.to_dict()}
        write_text(cached, json.dumps(record, indent=2))
        self.log(
            f"[3/4] snapshot: iteration {selection.chosen.iteration} has the best validation "
            f"return after one step (seed {settings.validation_seed})"
        )
        return selection

    def fine_tuning_step(self, loaded: LoadedPolicy, kind: str) -> float:
        """The baseline's first fine-tuning step: the best of ``FINE_TUNING_RATIOS * alpha``
        by the return after one step on validation tasks (never the test tasks)."""
        cached = self.out / "evaluation" / f"step_{kind}.json"
        settings = self.settings
        key = {
            **settings.evaluation_key(),
            "validation_seed": settings.validation_seed,
            "candidates": list(FINE_TUNING_RATIOS),
        }
        saved = json.loads(cached.read_text()) if cached.is_file() else {}
        if saved.get("key") == key:
            return float(saved["step_size"])
        test = settings.test_tasks(loaded.env)
        tasks, _ = validation_tasks(
            loaded.env, settings.validation_tasks, settings.validation_seed, test
        )
        alpha = settings.config.inner_lr
        scores = {}
        for ratio in FINE_TUNING_RATIOS:
            curve = evaluate_policy_curve(
                loaded,
                tasks,
                settings.episodes_per_step,
                1,
                settings.validation_seed,
                ratio * alpha,
            )
            scores[ratio * alpha] = curve.mean[1]
        best = max(scores, key=lambda step: scores[step])
        record = {
            "key": key,
            "step_size": best,
            "validation_return_after_1_step": {str(k): v for k, v in scores.items()},
        }
        write_text(cached, json.dumps(record, indent=2))
        self.log(f"[3/4] {kind}: fine-tuning step {best:g} (validation: {scores})")
        return best

    # --- stage 4: evaluation and the table --------------------------------------------
    def evaluate(self, label: str, loaded: LoadedPolicy, step: float | None) -> CurveSummary:
        settings = self.settings
        cached = self.out / "evaluation" / f"{label}.json"
        key = {**settings.evaluation_key(), "checkpoint": str(loaded.path), "step": step}
        if cached.is_file():
            saved = json.loads(cached.read_text())
            if saved.get("key") == key:
                self.log(f"[4/4] evaluation of {label}: done, skipped")
                return CurveSummary(**saved["summary"])
        self.log(
            f"[4/4] evaluation of {label}: {settings.num_tasks} tasks, 0..{settings.adapt_steps} steps"
        )
        tasks = settings.test_tasks(loaded.env)
        summary = evaluate_policy_curve(
            loaded,
            tasks,
            settings.episodes_per_step,
            settings.adapt_steps,
            settings.seed,
            step,
            label,
        )
        write_text(cached, json.dumps({"key": key, "summary": asdict(summary)}, indent=2))
        return summary

    def run(self, progress: bool = True) -> dict[str, Any]:
        """Every stage in order; returns the table (also written to ``out``)."""
        self.out.mkdir(parents=True, exist_ok=True)
        run = self.train(progress)
        folders = {kind: self.baseline(kind) for kind in self.settings.baselines}
        selection = self.select(run)
        methods: list[tuple[str, LoadedPolicy, float | None, Selection | None]] = [
            ("MAML", selection.chosen, None, selection)
        ]
        for kind, folder in folders.items():
            loaded = load_policy(folder / "checkpoints" / "latest.pt")
            step = None if loaded.oracle else self.fine_tuning_step(loaded, kind)
            methods.append((kind, loaded, step, None))
        summaries = [
            self.evaluate(label, loaded, step)
            if chosen is None
            else replace(self.evaluate(label, loaded, step), selection=chosen.to_dict())
            for label, loaded, step, chosen in methods
        ]
        return self.write_table(summaries, methods[0][1])

    def write_table(
        self,
        summaries: Sequence[CurveSummary],
        maml: LoadedPolicy,
    ) -> dict[str, Any]:
        settings = self.settings
        env_id = settings.config.env
        tasks = settings.test_tasks(maml.env)
        episodes = settings.episodes_per_step
        table = write_comparison(
            self.out / "comparison", summaries, env_id, tasks, episodes, settings.seed
        )
        reached = int(load_checkpoint(self.out / "maml" / "checkpoints" / "latest.pt")["iteration"])
        table["training"] = {
            "iterations_reached": reached,
            "paper_snapshot_iteration": paper_iteration(env_id),
            "target_iteration": settings.target_iteration,
            "stopped_by_budget": settings.iterations < settings.target_iteration,
            "selected_snapshot_iteration": maml.iteration,
            "config": settings.config.to_dict(),
        }
        table["paper"] = {**PAPER.get(env_id, {}), "ratios": paper_ratios(env_id)}
        write_text(self.out / "table.json", json.dumps(table, indent=2))
        write_text(self.out / "table.csv", table_csv(summaries, env_id))
        markdown = table_markdown(
            summaries, env_id, table["training"], settings.num_tasks, episodes, settings.paper_tasks
        )
        write_text(self.out / "table.md", markdown)
        shutil.copyfile(self.out / "comparison" / "comparison.png", self.out / "comparison.png")
        self.log(markdown)
        self.log(f"wrote {self.out / 'table.md'}, table.json, table.csv, comparison.png")
        return table


def check_same_run(run: Path, config: TrainConfig) -> None:
    """Refuse to resume a run folder trained with another config (how long and how it runs,
    :data:`~metarl.config.RESUMABLE_KEYS`, may differ)."""
    conflicts = resume_conflicts(load_config(str(run / "config.json")), config)
    if conflicts:
        raise ValueError(
            f"{run} holds a run with other settings ({'; '.join(conflicts)}); use another "
            "--out or the same settings"
        )


def _ratios(summaries: Sequence[CurveSummary]) -> dict[str, list[float]]:
    oracle = next((s for s in summaries if s.oracle), None)
    if oracle is None:
        return {}
    return {s.label: adaptation_ratios(s, oracle.mean[0]) for s in summaries if not s.oracle}


def table_csv(summaries: Sequence[CurveSummary], env_id: str) -> str:
    """Ours and the paper's mean returns, one row per source, method and step."""
    lines = ["source,method,steps,mean_return,ci95,adaptation_ratio"]
    ratios = _ratios(summaries)
    for s in summaries:
        for k, (mean, half) in enumerate(zip(s.mean, s.ci95, strict=True)):
            ratio = f"{ratios[s.label][k]:.6g}" if s.label in ratios else ""
            lines.append(f"metarl,{s.label},{k},{mean:.6g},{half:.6g},{ratio}")
    paper = PAPER.get(env_id, {})
    paper_ratio = paper_ratios(env_id) or []
    for method in ("MAML", *BASELINE_KINDS):
        for k, mean in enumerate(paper.get(method, [])):
            ratio = paper_ratio[k] if method == "MAML" else ""
            lines.append(f"paper,{method},{k},{mean},,{ratio}")
    return "\n".join(lines) + "\n"


def _steps(k: int) -> str:
    return "1 step" if k == 1 else f"{k} steps"


def table_markdown(
    summaries: Sequence[CurveSummary],
    env_id: str,
    training: dict[str, Any],
    num_tasks: int,
    episodes: int,
    paper_tasks: bool = False,
) -> str:
    """The paper's row beside ours: mean return ± 95% CI, and the adaptation ratios."""
    tested_on = (
        f"The paper's own {num_tasks} test tasks" if paper_tasks else f"{num_tasks} held-out tasks"
    )
    steps = max(len(s.mean) for s in summaries)
    header = "| method | " + " | ".join(_steps(k) for k in range(steps)) + " |"
    lines = [
        f"### {env_id}",
        "",
        f"{tested_on}, {episodes} episodes per step. MAML: snapshot of iteration "
        f"{training['selected_snapshot_iteration']} (chosen on validation tasks), training "
        f"reached iteration {training['iterations_reached']}; the paper's row is its "
        f"iteration-{training['paper_snapshot_iteration']} snapshot.",
    ]
    if training["stopped_by_budget"]:
        lines.append(
            f"**Stopped early by --budget-iterations at iteration {training['iterations_reached']}"
            f" of {training['target_iteration']}: not the paper's budget.**"
        )
    lines += ["", header, "|---" * (steps + 1) + "|"]
    paper = PAPER.get(env_id, {})
    for s in summaries:
        cells = [f"{m:.2f} ± {c:.2f}" for m, c in zip(s.mean, s.ci95, strict=True)]
        cells += [""] * (steps - len(cells))
        lines.append(f"| {s.label} (metarl) | " + " | ".join(cells) + " |")
        if s.label in paper:
            values = [f"{v:g}" for v in paper[s.label][:steps]]
            values += [""] * (steps - len(values))
            lines.append(f"| {s.label} (paper) | " + " | ".join(values) + " |")
    ratios = _ratios(summaries)
    if ratios:
        lines += ["", "Adaptation ratio (R_k - R_0) / (R_oracle - R_0):", ""]
        lines += ["| method | " + " | ".join(_steps(k) for k in range(steps)) + " |"]
        lines.append("|---" * (steps + 1) + "|")
        for label, values in ratios.items():
            lines.append(f"| {label} (metarl) | " + " | ".join(f"{r:.2f}" for r in values) + " |")
        paper_ratio = paper_ratios(env_id)
        if paper_ratio is not None:
            cells = " | ".join(f"{r:.2f}" for r in paper_ratio[:steps])
            lines.append(f"| MAML (paper) | {cells} |")
    return "\n".join(lines) + "\n"
