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
