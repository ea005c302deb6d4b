"""Snapshot selection on validation tasks (never the test tasks)."""

import json

import numpy as np
import pytest

from envs import make_task_env
from metarl.config import TrainConfig
from metarl.evaluation import held_out_tasks
from metarl.selection import select_snapshot, snapshot_paths, validation_tasks
from metarl.trainer import Trainer


def test_validation_tasks_never_equal_a_test_task():
    env = make_task_env("metarl/Navigation2D-v0")
    test = held_out_tasks(env, 40, 1234)
    # seed the validation stream so that it would repeat test tasks: they are skipped
    tasks, disjoint = validation_tasks(env, 40, 1234, test)
    assert disjoint and len(tasks) == 40
    assert not {json.dumps(t) for t in tasks} & {json.dumps(t) for t in test}
    cheetah = make_task_env("metarl/HalfCheetahDir-v0")
    directions, disjoint = validation_tasks(cheetah, 10, 1, held_out_tasks(cheetah, 10, 2))
    assert not disjoint and {d["direction"] for d in directions} <= {-1, 1}  # finite: said so


def test_select_snapshot_scores_every_snapshot_and_picks_the_best(tmp_path):
    config = TrainConfig(
        iterations=3, meta_batch_size=3, episodes_per_task=2, hidden_sizes=(8,), snapshot_every=1
    )
    Trainer(config, tmp_path / "run").run(progress=False)
    paths = snapshot_paths(tmp_path / "run")
    assert [p.name for p in paths] == [
        "snapshot_000001.pt",
        "snapshot_000002.pt",
        "snapshot_000003.pt",
        "latest.pt",
    ]
    selection = select_snapshot(tmp_path / "run", 4, 3, validation_seed=7, test_seed=8)
    iterations = [it for it, _, _ in selection.scores]
    assert iterations == [1, 2, 3]  # latest.pt repeats iteration 3 and is scored once
    scores = [score for _, _, score in selection.scores]
    assert selection.chosen.iteration == iterations[int(np.argmax(scores))]
    report = selection.to_dict()
    assert report["validation_seed"] == 7 and report["validation_tasks_disjoint_from_test"]
    with pytest.raises(ValueError, match="must differ from the test seed"):
        select_snapshot(tmp_path / "run", 4, 3, validation_seed=8, test_seed=8)


def test_select_snapshot_by_the_return_after_later_steps_of_a_given_schedule(tmp_path):
    from metarl.evaluation import evaluate_policy_curve, load_policy

    config = TrainConfig(
        iterations=2, meta_batch_size=3, episodes_per_task=2, hidden_sizes=(8,), snapshot_every=1
    )
    Trainer(config, tmp_path / "run").run(progress=False)
    selection = select_snapshot(tmp_path / "run", 3, 2, 7, 8, steps=2, later_step_ratio=0.25)
    env = make_task_env(config.env)
    tasks, _ = validation_tasks(env, 3, 7, held_out_tasks(env, 3, 8))
    for iteration, path, score in selection.scores:
        loaded = load_policy(path)
        curve = evaluate_policy_curve(loaded, tasks, 2, 2, 7, later_step_ratio=0.25)
        assert curve.step_sizes[1] == 0.25 * curve.step_sizes[0]
        assert score == curve.mean[2], iteration  # scored after 2 steps of that schedule
    report = selection.to_dict()
    assert report["criterion"].startswith("mean return after 2 step(s)")
    assert report["later_step_ratio"] == 0.25
    with pytest.raises(ValueError, match="number of steps must be an integer >= 1"):
        select_snapshot(tmp_path / "run", 3, 2, 7, 8, steps=0)


def test_evaluate_cli_select_steps(tmp_path, capsys):
    from scripts import evaluate as evaluate_script

    config = TrainConfig(
        iterations=2, meta_batch_size=3, episodes_per_task=2, hidden_sizes=(8,), snapshot_every=1
    )
    Trainer(config, tmp_path / "run").run(progress=False)
    common = ["--run-dir", str(tmp_path / "run"), "--num-tasks", "3", "--episodes", "2"]
    assert evaluate_script.main([*common, "--select-steps", "2"]) == 2
    assert "--select-steps only applies with --checkpoint select" in capsys.readouterr().err
    # flags of another mode are refused, not ignored
    for extra, message in [
        (["--validation-seed", "5"], "--validation-seed only applies with --checkpoint select"),
        (["--labels", "a"], "--labels only applies with --compare"),
        (["--inner-lrs", "0.1"], "--inner-lrs only applies with --compare"),
    ]:
        assert evaluate_script.main([*common, *extra]) == 2
        assert message in capsys.readouterr().err
    argv = [*common, "--checkpoint", "select", "--select-steps", "2", "--adapt-steps", "2"]
    assert evaluate_script.main(argv) == 0
    assert "validation return after 2 step(s)" in capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert result["selection"]["criterion"].startswith("mean return after 2 step(s)")
