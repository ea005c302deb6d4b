"""End to end: the CLI trains, logs to TensorBoard, checkpoints, resumes and evaluates."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.checkpoint import load_checkpoint
from scripts import evaluate as evaluate_script
from scripts import train as train_script
from tests.helpers import ROOT
from tests.helpers import TINY_TRAIN_ARGS as TINY

REQUIRED_SCALARS = {
    "charts/return_pre_adaptation",
    "charts/return_post_adaptation",
    "charts/adaptation_gain",
    "charts/SPS",
    "charts/line_search_accepted",
    "losses/surrogate",
    "losses/kl",
}


def train(run_dir, *extra):
    return train_script.main([*TINY, "--run-dir", str(run_dir), *extra])


def scalars(run_dir):
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def test_cli_trains_logs_checkpoints_and_evaluates(tmp_path):
    run = tmp_path / "nav"
    result = subprocess.run(
        [sys.executable, "scripts/train.py", *TINY, "--iterations", "3", "--run-dir", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "return before adaptation" in result.stdout
    logged = scalars(run)
    assert set(logged) >= REQUIRED_SCALARS
    steps = [step for step, _ in logged["charts/return_post_adaptation"]]
    assert len(steps) == 3 and steps == sorted(steps) and steps[0] > 0  # x-axis: env steps
    config = json.loads((run / "config.json").read_text())
    assert config["meta_batch_size"] == 3 and config["inner_lr"] == 0.5  # the paper's nav preset
    payload = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert payload["iteration"] == 3
    # the initialisation's action std after each update (the last one is the checkpoint's)
    stds = [value for _, value in logged["charts/action_std"]]
    assert len(stds) == 3 and stds[0] != stds[-1]
    expected = torch.exp(payload["params"]["log_std"]).mean().item()
    assert stds[-1] == pytest.approx(expected, rel=1e-6)

    code = evaluate_script.main(
        ["--run-dir", str(run), "--num-tasks", "4", "--adapt-steps", "2", "--episodes", "3"]
    )
    assert code == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["env"] == "metarl/Navigation2D-v0"
    assert evaluation["adapt_steps"] == 2 and evaluation["num_tasks"] == 4
    assert set(evaluation["mean_return"]) == {"0", "1", "2"}
    assert all(len(evaluation["returns"][k]) == 4 for k in "012")
    assert {"eval/return_step_0", "eval/return_step_2"} <= set(scalars(run))


def test_evaluation_is_deterministic_for_a_seed(tmp_path):
    run = tmp_path / "nav"
    assert train(run, "--iterations", "1") == 0
    outputs = []
    for seed in (5, 5, 6):
        evaluate_script.main(
            [
                "--run-dir",
                str(run),
                "--num-tasks",
                "3",
                "--adapt-steps",
                "1",
                "--episodes",
                "2",
                "--seed",
                str(seed),
            ]
        )
        outputs.append(json.loads((run / "evaluation.json").read_text())["returns"])
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]


def final_params(run_dir):
    return load_checkpoint(Path(run_dir) / "checkpoints" / "latest.pt")["params"]


def test_same_seed_identical_different_seed_differs(tmp_path):
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        assert train(tmp_path / name, "--iterations", "2", "--seed", str(seed)) == 0
    a, b, c = (final_params(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("algo", ["maml-trpo", "promp"])
def test_resume_continues_exactly_without_duplicate_logs(tmp_path, algo):
    assert (
        train(tmp_path / "straight", "--iterations", "4", "--checkpoint-every", "2", "--algo", algo)
        == 0
    )
    assert (
        train(tmp_path / "split", "--iterations", "2", "--checkpoint-every", "2", "--algo", algo)
        == 0
    )
    assert train(tmp_path / "split", "--iterations", "4", "--resume", "--algo", algo) == 0
    straight, split = final_params(tmp_path / "straight"), final_params(tmp_path / "split")
    assert all(torch.equal(straight[k], split[k]) for k in straight)
    steps = [s for s, _ in scalars(tmp_path / "split")["charts/return_post_adaptation"]]
    assert len(steps) == 4 and len(set(steps)) == 4


def test_resume_keeps_the_runs_settings_and_refuses_others(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--iterations", "2", "--threads", "1") == 0
    latest = run / "checkpoints" / "latest.pt"
    capsys.readouterr()
    # a flag that would change what the run computes is refused, not silently dropped
    assert train(run, "--resume", "--iterations", "3", "--inner-lr", "0.7") == 2
    assert "inner_lr (--inner-lr): 0.5 there, 0.7 here" in capsys.readouterr().err
    assert load_checkpoint(latest)["iteration"] == 2
    # without --iterations a resumed run keeps its own (not the default 500)
    args = ["--run-dir", str(run), "--resume", "--no-progress"]
    assert train_script.main(args) == 0
    assert "nothing to train: the run is at iteration 2" in capsys.readouterr().out
    assert load_checkpoint(latest)["iteration"] == 2
    # fewer iterations than it has done: refused, naming both
    assert train_script.main([*args, "--iterations", "1"]) == 2
    assert "already at iteration 2, past the 1 iterations asked" in capsys.readouterr().err
    # how long and how it runs may change
    assert train_script.main([*args, "--iterations", "3", "--threads", "2"]) == 0
    assert load_checkpoint(latest)["iteration"] == 3
    saved = json.loads((run / "config.json").read_text())
    assert (saved["iterations"], saved["threads"], saved["inner_lr"]) == (3, 2, 0.5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "metarl/Nope-v0"], "unknown env 'metarl/Nope-v0'.*metarl envs: .*Navigation2D"),
        (["--inner-lr", "-0.1"], r"argument --inner-lr: must be a finite number in \(0, 100\]"),
        (["--inner-lr", "nan"], r"argument --inner-lr: must be a finite number"),
        (["--iterations", "0"], r"argument --iterations: must be an integer in \[1, "),
        (["--meta-batch-size", "0"], r"argument --meta-batch-size: must be an integer in \[1, "),
        (["--max-kl", "0"], r"argument --max-kl: must be a finite number in \(0, 10\]"),
    ],
)
def test_bad_config_is_refused_and_nothing_written(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    try:
        status = train(run, *args)
    except SystemExit as exit_info:  # argparse refuses a flag's value while parsing
        status = exit_info.code
    assert status == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)
    assert not run.exists()


def test_run_dir_of_another_run_is_refused_unless_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--iterations", "1") == 0
    before = sorted(p.name for p in run.rglob("*"))
    assert train(run, "--iterations", "1") == 2
    assert "already holds files" in capsys.readouterr().err
    assert sorted(p.name for p in run.rglob("*")) == before


def test_evaluate_reports_missing_and_corrupt_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    assert evaluate_script.main(["--run-dir", str(run)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train(run, "--iterations", "1") == 0
    assert evaluate_script.main(["--run-dir", str(run), "--checkpoint", "5"]) == 2
    assert "no checkpoint of iteration 5; it keeps iterations 1" in capsys.readouterr().err
    latest = run / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:200])
    assert evaluate_script.main(["--run-dir", str(run)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    assert not (run / "evaluation.json").exists()


def test_evaluate_writes_to_out_and_beside_a_checkpoint_file(tmp_path, capsys):
    run = tmp_path / "nav"
    assert train(run, "--iterations", "1") == 0
    small = ["--num-tasks", "2", "--adapt-steps", "1", "--episodes", "2"]
    out = tmp_path / "evals" / "it1"
    assert evaluate_script.main(["--run-dir", str(run), *small, "--out", str(out)]) == 0
    assert json.loads((out / "evaluation.json").read_text())["num_tasks"] == 2
    assert (out / "evaluation.png").stat().st_size > 0
    assert not (run / "evaluation.json").exists()
    # a checkpoint file as --run-dir: the outputs go to the run folder holding checkpoints/
    snapshot = run / "checkpoints" / "latest.pt"
    assert evaluate_script.main(["--run-dir", str(snapshot), *small]) == 0
    assert json.loads((run / "evaluation.json").read_text())["iteration"] == 1
    assert "eval/return_step_1" in scalars(run)
    # an iteration number names that iteration's checkpoint
    assert evaluate_script.main(["--run-dir", str(run), *small, "--checkpoint", "1"]) == 0
    assert json.loads((run / "evaluation.json").read_text())["checkpoint"].endswith(
        "iter_000001.pt"
    )
    # an --out that is a file is refused before any work
    capsys.readouterr()
    assert evaluate_script.main(["--run-dir", str(run), *small, "--out", str(snapshot)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_run_folder_that_cannot_be_created_is_one_line_not_a_traceback(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "scripts/train.py", *TINY, "--run-dir", str(blocker / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Not a directory" in result.stderr and str(blocker / "run") in result.stderr
