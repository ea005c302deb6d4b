"""Results split by kind of task (backwards / forwards) where a task family has kinds."""

import json

import numpy as np
import pytest

from metarl.paper_tasks import paper_test_tasks
from metarl.task_groups import group_lines, group_means, groups_dict, task_groups
from scripts import evaluate as evaluate_script
from scripts import train as train_script
from tests.helpers import TINY_TRAIN_ARGS as TINY

DIRECTIONS = [{"direction": 1}, {"direction": -1}, {"direction": 1}]


def test_direction_tasks_are_grouped_by_direction():
    assert task_groups(DIRECTIONS) == {"direction=-1": [1], "direction=1": [0, 2]}
    assert task_groups([{"kind": "push"}, {"kind": "reach"}]) == {
        "kind=push": [0],
        "kind=reach": [1],
    }


@pytest.mark.parametrize(
    "tasks",
    [
        [{"velocity": 0.5}, {"velocity": 1.5}],  # continuous
        [{"goal": [0.1, 0.2]}, {"goal": [0.3, 0.4]}],  # continuous, vector
        [{"direction": 1}, {"direction": 1}],  # one kind only
        [{"direction": 1, "speed": 2}, {"direction": -1, "speed": 2}],  # several fields
        [{"direction": 1}, {"heading": -1}],  # different fields
        [{"flag": True}, {"flag": False}],
        [{"index": i} for i in range(5)],  # a task index, not a kind
        [],
    ],
)
def test_tasks_without_kinds_are_not_grouped(tasks):
    assert task_groups(tasks) == {}


def test_group_means_are_the_means_over_each_groups_tasks():
    returns = [[1.0, -3.0, 5.0], [10.0, 20.0, 30.0]]  # [steps + 1][tasks]
    groups = task_groups(DIRECTIONS)
    assert group_means(returns, groups) == {
        "direction=-1": [-3.0, 20.0],
        "direction=1": [3.0, 20.0],
    }
    assert groups_dict(returns, groups)["direction=1"] == {
        "num_tasks": 2,
        "mean_return": {"0": 3.0, "1": 20.0},
    }
    assert group_lines(returns, groups, "  ") == [
        "  direction=-1 (1 tasks): -3.00 / 20.00",
        "  direction=1 (2 tasks): 3.00 / 20.00",
    ]


def test_evaluate_reports_each_direction(tmp_path, capsys):
    run = tmp_path / "dir"
    train = [*TINY, "--env", "metarl/HalfCheetahDir-v0", "--iterations", "1", "--threads", "1"]
    assert train_script.main([*train, "--run-dir", str(run)]) == 0
    small = ["--adapt-steps", "1", "--episodes", "1", "--threads", "1", "--paper-tasks"]
    assert evaluate_script.main(["--run-dir", str(run), *small]) == 0
    out = capsys.readouterr().out
    assert "direction=-1 (22 tasks)" in out and "direction=1 (18 tasks)" in out
    written = json.loads((run / "evaluation.json").read_text())
    backwards = [
        i
        for i, t in enumerate(paper_test_tasks("metarl/HalfCheetahDir-v0"))
        if t["direction"] == -1
    ]
    group = written["by_task_group"]["direction=-1"]
    assert group["num_tasks"] == 22
    for k in ("0", "1"):
        expected = np.mean([written["returns"][k][i] for i in backwards])
        assert group["mean_return"][k] == pytest.approx(expected)

    compare = ["--compare", str(run), str(run), "--labels", "a", "b", "--out", str(tmp_path / "c")]
    assert evaluate_script.main([*compare, *small]) == 0
    out = capsys.readouterr().out
    assert "  a, direction=-1 (22 tasks)" in out and "  b, direction=1 (18 tasks)" in out
    compared = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert compared["methods"][0]["by_task_group"]["direction=-1"] == group
