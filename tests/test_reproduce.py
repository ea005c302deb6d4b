"""scripts/reproduce.py end to end on a tiny budget: table, figure, and resume after a kill."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from metarl.config import TrainConfig
from metarl.reproduction import check_same_run, paper_ratios, table_markdown
from tests.helpers import ROOT

TINY = [
    "metarl/Navigation2D-v0",
    "--budget-iterations", "2",
    "--num-tasks", "3",
    "--adapt-steps", "2",
    "--episodes", "2",
    "--pretrained-timesteps", "1024",
    "--meta-batch-size", "3",
    "--episodes-per-task", "2",
    "--hidden-sizes", "8", "8",
    "--snapshot-every", "1",
    "--threads", "1",
    "--no-progress",
]  # fmt: skip


def reproduce(out, *extra):
    command = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), *TINY, "--out", str(out)]
    return [*command, *extra]


def test_paper_ratios_come_from_the_paper_table():
    ratios = paper_ratios("metarl/HalfCheetahDir-v0")
    assert abs(ratios[1] - 0.70) < 0.01 and ratios[0] == 0.0
    assert abs(paper_ratios("metarl/AntDir-v0")[1] - 0.95) < 0.01


def test_reproduce_writes_the_table_and_resumes_after_a_kill(tmp_path):
    out = tmp_path / "repro"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the oracle's PPO is long enough to be killed in the middle of it
    process = subprocess.Popen(
        reproduce(out, "--oracle-timesteps", "40000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=environment,
        cwd=tmp_path,
    )
    pretrained = out / "baselines" / "random" / "checkpoints" / "latest.pt"
    deadline = time.time() + 240
    while not pretrained.is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, process.stdout.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "table.md").exists()
    done = {
        name: path.stat().st_mtime_ns
        for name, path in {
            "maml": out / "maml" / "checkpoints" / "latest.pt",
            "pretrained": out / "baselines" / "pretrained" / "checkpoints" / "latest.pt",
            "random": pretrained,
        }.items()
    }
    result = subprocess.run(
        reproduce(out, "--oracle-timesteps", "1024"),
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "meta-training: done (2 iterations), skipped" in result.stdout
    assert "baseline pretrained: done, skipped" in result.stdout
    assert "baseline oracle: training" in result.stdout  # killed during it: redone
    for name, mtime in done.items():
        path = (
            out / ("maml" if name == "maml" else f"baselines/{name}") / "checkpoints" / "latest.pt"
        )
        assert path.stat().st_mtime_ns == mtime, name
    table = json.loads((out / "table.json").read_text())
    labels = [method["label"] for method in table["methods"]]
    assert labels == ["MAML", "pretrained", "random", "oracle"]
    assert table["training"]["stopped_by_budget"] and table["training"]["iterations_reached"] == 2
    assert len(table["methods"][0]["mean_return"]) == 3  # 0..2 steps
    assert "adaptation_ratio" in table["methods"][0]
    markdown = (out / "table.md").read_text()
    assert "Stopped early by --budget-iterations at iteration 2 of 100" in markdown
    assert "| MAML (paper) | -40.4 | -11.7 | -3.33 |" in markdown
    assert (out / "comparison.png").stat().st_size > 1000
    csv_lines = (out / "table.csv").read_text().splitlines()
    assert csv_lines[0].startswith("source,method,steps") and len(csv_lines) > 10
    # a third run redoes nothing
    again = subprocess.run(
        reproduce(out, "--oracle-timesteps", "1024"),
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )
    assert again.returncode == 0 and "evaluation of MAML: done, skipped" in again.stdout


def test_reproduce_refuses_bad_flags_and_other_runs(tmp_path):
    bad = subprocess.run(
        reproduce(tmp_path / "x", "--budget-iterations", "0"), capture_output=True, text=True
    )
    assert (
        bad.returncode == 2
        and "argument --budget-iterations: must be an integer in [1," in bad.stderr
    )
    paper = subprocess.run(
        reproduce(tmp_path / "p", "--paper-tasks"), capture_output=True, text=True
    )  # TINY tests on 3 tasks: the paper has 40
    assert paper.returncode == 2 and "leave --num-tasks at 40 (got 3)" in paper.stderr
    assert not (tmp_path / "p").exists()
    unknown = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "reproduce.py"),
            "metarl/Nope-v0",
            "--out",
            str(tmp_path / "y"),
        ],
        capture_output=True,
        text=True,
    )
    assert (
        unknown.returncode == 2
        and "unknown env" in unknown.stderr
        and "Traceback" not in unknown.stderr
    )


def test_a_row_resumes_with_other_threads_but_not_other_settings(tmp_path):
    config = TrainConfig.for_env("metarl/HalfCheetahDir-v0", threads=1)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    check_same_run(tmp_path, dataclasses.replace(config, threads=2, iterations=7))
    with pytest.raises(ValueError, match=r"max_kl \(--max-kl\): 0.02 there, 0.01 here"):
        check_same_run(tmp_path, dataclasses.replace(config, max_kl=0.01))


def test_table_markdown_marks_an_unbudgeted_row_plainly():
    from metarl.evaluation import CurveSummary

    summary = CurveSummary("MAML", "maml", "p", 0.1, [[1.0], [2.0]], [1.0, 2.0], [0.1, 0.1])
    training = {
        "selected_snapshot_iteration": 100,
        "iterations_reached": 100,
        "paper_snapshot_iteration": 100,
        "stopped_by_budget": False,
    }
    text = table_markdown([summary], "metarl/HalfCheetahDir-v0", training, 40, 20)
    assert "Stopped early" not in text and "| MAML (paper) | -50.7 | 293.2 |" in text
