"""Task families the toolkit has never seen: ``module:EnvId``, the generic batched form
(copies of the single env), and clear errors for envs that are not task distributions."""

import json
import re
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from envs import TaskAPIError, make_task_env
from envs.copies import ASYNC_MIN_COPIES_PER_WORKER, batched_copies, choose_mode
from envs.task_api import json_task, require_task_vector
from metarl.checkpoint import load_checkpoint
from scripts import train as train_script
from tests.helpers import ROOT, TINY_TRAIN_ARGS

LINE = "tests.task_families:LineGoal-v0"
POINT = "metarl/MiscalibratedPoint-v0"


def single_env_transitions(env_id, task, seed, actions):
    """What one ordinary Gymnasium env gives for ``actions`` (stops at the episode's end)."""
    env = gym.make(env_id)
    env.unwrapped.set_task(task)
    obs, _ = env.reset(seed=seed)
    out = [(np.asarray(obs, np.float32), 0.0, False, False)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
        out.append((np.asarray(obs, np.float32), float(reward), terminated, truncated))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("env_id", [LINE, POINT])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_generic_batched_form_gives_the_single_env_transitions(env_id, mode):
    task_env = make_task_env(env_id)
    copies = 5
    tasks = task_env.sample_tasks(copies, np.random.default_rng(3))
    rng = np.random.default_rng(4)
    batched = batched_copies(task_env, copies, mode, num_workers=2)
    horizon, act_dim = batched.max_episode_steps, batched.action_dim
    actions = rng.uniform(batched.action_low, batched.action_high, (horizon + 3, copies, act_dim))
    if env_id == LINE:  # copy 0's goal is its start and it stands still: it ends at step 1
        start, _ = gym.make(LINE).reset(seed=10)
        tasks[0], actions[0, 0] = {"goal": float(start[0])}, 0.0
    no_step = (np.zeros(copies), np.zeros(copies, bool), np.zeros(copies, bool))
    try:
        got = [(batched.reset(tasks, seed=10), *no_step)]
        got += [batched.step(a) for a in actions]
    finally:
        batched.close()
    for i in range(copies):
        expected = single_env_transitions(env_id, tasks[i], 10 + i, actions[:, i])
        for t, (obs, reward, terminated, truncated) in enumerate(expected):
            assert np.array_equal(got[t][0][i], obs), (i, t)
            assert (got[t][1][i], got[t][2][i], got[t][3][i]) == (reward, terminated, truncated)
        for t in range(len(expected), len(got)):  # after its end a copy stands still, unrewarded
            assert np.array_equal(got[t][0][i], expected[-1][0]) and got[t][1][i] == 0.0
            assert not got[t][2][i] and not got[t][3][i]
    if env_id == LINE:
        assert got[1][2][0]  # the early end was exercised
    ends = sum(np.logical_or(step[2], step[3]).astype(int) for step in got[1 : horizon + 1])
    assert (ends == 1).all()  # every episode ended once, by the registered horizon at the latest


def test_async_copies_report_a_worker_error_by_name():
    task_env = make_task_env("tests.task_families:StepFails-v0")
    batched = batched_copies(task_env, 4, "async", num_workers=2)
    batched.reset(task_env.sample_tasks(4, np.random.default_rng(0)), seed=0)
    batched.step(np.zeros((4, 1)))
    batched.step(np.zeros((4, 1)))
    with pytest.raises(
        RuntimeError, match="env worker 0 failed: RuntimeError: the user's env broke"
    ):
        batched.step(np.zeros((4, 1)))


def test_mode_is_async_only_with_enough_copies_per_worker():
    assert choose_mode(ASYNC_MIN_COPIES_PER_WORKER * 2, 2) == "async"
    assert choose_mode(ASYNC_MIN_COPIES_PER_WORKER * 2 - 1, 2) == "sync"
    assert choose_mode(10_000, 1) == "sync"


def test_user_family_trains_and_evaluates_through_the_cli(tmp_path):
    """Subprocesses, as a user runs them: the module is imported by its ``module:`` prefix."""
    run = tmp_path / "run"
    command = [sys.executable, "scripts/train.py", "--env", LINE, "--iterations", "2"]
    done = subprocess.run(
        [*command, "--run-dir", str(run), *TINY_TRAIN_ARGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    payload = load_checkpoint(run / "checkpoints/latest.pt")
    assert (
        payload["iteration"] == 2 and json.loads((run / "config.json").read_text())["env"] == LINE
    )
    evaluate = [sys.executable, "scripts/evaluate.py", "--run-dir", str(run), "--num-tasks", "2"]
    done = subprocess.run(
        [*evaluate, "--adapt-steps", "1", "--episodes", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((run / "evaluation.json").read_text())
    assert result["env"] == LINE and len(result["returns"]["1"]) == 2


@pytest.mark.parametrize(
    "env_id, message",
    [
        ("tests.task_families:NoSetTask-v0", r"lacks set_task.*def set_task\(self, task: dict\)"),
        ("tests.task_families:NumpyTask-v0", r"NumpyTaskEnv: task .* is not JSON-serialisable"),
        ("tests.task_families:Nope-v0", r"unknown env .*no id 'Nope-v0' after importing"),
        ("tests.task_families:NoHorizon-v0", r"registered without max_episode_steps"),
        ("no_such_module:Env-v0", r"cannot import module 'no_such_module'"),
        (
            "CartPole-v1",
            r"CartPoleEnv\) is not a task distribution: it lacks sample_tasks, set_task",
        ),
    ],
)
def test_an_env_that_is_not_a_task_family_is_refused_by_name(tmp_path, capsys, env_id, message):
    run = tmp_path / "run"
    assert train_script.main(["--env", env_id, "--run-dir", str(run), *TINY_TRAIN_ARGS]) == 2
    assert re.search(message, capsys.readouterr().err, re.DOTALL)
    assert not run.exists()


def test_oracle_needs_a_task_vector_and_says_so():
    with pytest.raises(TaskAPIError, match=r"LineGoalEnv has no task_vector\(task\)"):
        require_task_vector(LINE)
    assert require_task_vector(POINT).task_vector({"angle": 0.0, "gain": 1.0}).tolist() == [
        1.0,
        0.0,
        1.0,
    ]


def test_tasks_take_their_json_form_or_are_refused():
    assert json_task({"goal": (0.5, 1)}, "E") == {"goal": [0.5, 1]}
    with pytest.raises(TaskAPIError, match="not JSON-serialisable"):
        json_task({"goal": float("nan")}, "E")
    with pytest.raises(TaskAPIError, match="a task must be a dict"):
        json_task([0.5], "E")


def test_miscalibrated_point_task_changes_the_dynamics_not_the_goal():
    env = gym.make(POINT)
    moves = []
    for task in ({"angle": 0.0, "gain": 1.0}, {"angle": np.pi / 2, "gain": 0.5}):
        env.unwrapped.set_task(task)
        env.reset(seed=0)
        obs, *_ = env.step(np.array([0.1, 0.0], np.float32))
        moves.append(obs)
    assert np.allclose(moves[0], [0.1, 0.0]) and np.allclose(moves[1], [0.0, 0.05], atol=1e-7)
    with pytest.raises(ValueError, match=r"gain must be a number in \[0.5, 1.5\], got 3"):
        env.unwrapped.set_task({"angle": 0.0, "gain": 3})
