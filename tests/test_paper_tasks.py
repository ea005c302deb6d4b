"""The paper's own test tasks: drawn as its test scripts drew them, usable by evaluate.py."""

import json
from dataclasses import replace

import gymnasium as gym
import pytest

import envs  # noqa: F401  (registers the metarl/ envs)
from metarl import api
from metarl import reproduction as reproduction_module
from metarl import selection as selection_module
from metarl.config import load_config
from metarl.evaluation import held_out_tasks, load_policy
from metarl.paper_tasks import PAPER_TEST_TASKS, paper_test_tasks
from metarl.reproduction import Reproduction, ReproductionSettings
from scripts import evaluate as evaluate_script
from scripts import train as train_script
from tests.helpers import TINY_TRAIN_ARGS as TINY

# NumPy's seed-1 stream starts 0.417022004702574, 0.7203244934421581; seed 2's 0.4359949021420038,
# 0.025926231827891333
SEED1_FIRST, SEED1_SECOND, SEED2_FIRST = 0.417022004702574, 0.7203244934421581, 0.4359949021420038


def test_first_tasks_are_the_test_scripts_draws():
    nav = paper_test_tasks("metarl/Navigation2D-v0")
    assert nav[0]["goal"] == pytest.approx([SEED1_FIRST - 0.5, SEED1_SECOND - 0.5])
    assert paper_test_tasks("metarl/AntVel-v0")[0]["velocity"] == pytest.approx(3 * SEED1_FIRST)
    assert paper_test_tasks("metarl/HalfCheetahVel-v0")[0]["velocity"] == pytest.approx(
        2 * SEED1_FIRST
    )
    # direction tasks: U(0.1, 0.8), backwards below 0.4. Seed 1 gives 0.392, then 0.604:
    # backwards, forwards; AntDir's seed 2 gives 0.405 (forwards: the paper's oracle and
    # pre-update returns on this task are those of a forward task), then 0.118
    assert 0.1 + 0.7 * SEED1_FIRST < 0.4 < 0.1 + 0.7 * SEED1_SECOND
    assert [t["direction"] for t in paper_test_tasks("metarl/HalfCheetahDir-v0")[:2]] == [-1, 1]
    assert 0.1 + 0.7 * SEED2_FIRST > 0.4
    assert [t["direction"] for t in paper_test_tasks("metarl/AntDir-v0")[:2]] == [1, -1]


@pytest.mark.parametrize(
    ("env_id", "backwards"), [("metarl/HalfCheetahDir-v0", 22), ("metarl/AntDir-v0", 20)]
)
def test_direction_tasks_split_as_the_papers_results_do(env_id, backwards):
    """The paper's per-goal results (cbfinn/maml_rl 4d41869, icml/*direc*.pkl) fall into two
    groups of these sizes: oracle and pre-update returns of backward and of forward tasks."""
    directions = [task["direction"] for task in paper_test_tasks(env_id)]
    assert directions.count(-1) == backwards and directions.count(1) == 40 - backwards


@pytest.mark.parametrize("env_id", sorted(PAPER_TEST_TASKS))
def test_every_table_env_has_40_valid_tasks(env_id):
    tasks = paper_test_tasks(env_id)
    assert len(tasks) == 40
    env = gym.make(env_id).unwrapped
    assert [env.validate_task(task) for task in tasks] == tasks
    assert tasks == paper_test_tasks(env_id)  # no global state: the same every call
    if "Dir" in env_id:
        assert {task["direction"] for task in tasks} == {-1, 1}


def test_an_env_without_paper_tasks_is_named():
    with pytest.raises(ValueError, match="no test tasks for 'metarl/AntGoal-v0'"):
        paper_test_tasks("metarl/AntGoal-v0")


def test_evaluate_cli_on_the_paper_tasks(tmp_path, capsys):
    run = tmp_path / "nav"
    assert train_script.main([*TINY, "--run-dir", str(run), "--iterations", "1"]) == 0
    small = ["--adapt-steps", "1", "--episodes", "1", "--threads", "1"]
    assert evaluate_script.main(["--run-dir", str(run), *small, "--paper-tasks"]) == 0
    written = json.loads((run / "evaluation.json").read_text())
    assert written["tasks"] == paper_test_tasks("metarl/Navigation2D-v0")
    assert written["num_tasks"] == 40 and len(written["returns"]["1"]) == 40
    assert "the paper's 40 test tasks" in capsys.readouterr().out
    out = tmp_path / "compare"
    compare = ["--compare", str(run), str(run), "--labels", "a", "b", "--out", str(out)]
    assert evaluate_script.main([*compare, *small, "--paper-tasks"]) == 0
    assert "the paper's 40 test tasks" in capsys.readouterr().out
    compared = json.loads((out / "comparison.json").read_text())
    assert compared["tasks"] == paper_test_tasks("metarl/Navigation2D-v0")
    select = ["--checkpoint", "select", "--paper-tasks"]
    assert evaluate_script.main(["--run-dir", str(run), *small, *select]) == 0
    assert json.loads((run / "evaluation.json").read_text())["selection"]["iteration"] == 1


def _record_test_tasks(monkeypatch) -> list:
    """Every list of test tasks that selection's validation tasks were told to avoid."""
    seen = []

    def recording(env, num_tasks, seed, test_tasks):
        seen.append(test_tasks)
        return original(env, num_tasks, seed, test_tasks)

    original = selection_module.validation_tasks
    monkeypatch.setattr(selection_module, "validation_tasks", recording)
    monkeypatch.setattr(reproduction_module, "validation_tasks", recording)
    return seen


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("paper_tasks") / "nav"
    assert train_script.main([*TINY, "--run-dir", str(run), "--iterations", "1"]) == 0
    return run


def test_selection_avoids_the_paper_tasks_when_testing_on_them(tiny_run, monkeypatch):
    seen = _record_test_tasks(monkeypatch)
    paper = paper_test_tasks("metarl/Navigation2D-v0")
    api.evaluate(tiny_run, adapt_steps=1, episodes=1, checkpoint="select", tasks="paper")
    assert seen == [paper]
    seen.clear()
    api.evaluate(tiny_run, num_tasks=3, adapt_steps=1, episodes=1, checkpoint="select", seed=7)
    assert seen == [held_out_tasks(load_policy(tiny_run / "checkpoints" / "latest.pt").env, 3, 7)]


def test_reproduction_tests_and_selects_against_the_paper_tasks(tiny_run, tmp_path, monkeypatch):
    config = load_config(str(tiny_run / "config.json"))
    settings = ReproductionSettings(config, 1, episodes=1, adapt_steps=1, paper_tasks=True)
    env = load_policy(tiny_run / "checkpoints" / "latest.pt").env
    assert settings.test_tasks(env) == paper_test_tasks("metarl/Navigation2D-v0")
    assert settings.evaluation_key()["tasks"] == "paper"
    assert "tasks" not in replace(settings, paper_tasks=False).evaluation_key()
    seen = _record_test_tasks(monkeypatch)
    Reproduction(settings, tmp_path / "out", log=lambda _: None).select(tiny_run)
    assert seen == [paper_test_tasks("metarl/Navigation2D-v0")]
    with pytest.raises(ValueError, match="the paper's 40 tasks; leave --num-tasks at 40"):
        ReproductionSettings(config, 1, num_tasks=3, paper_tasks=True)
    goal_config = replace(config, env="metarl/AntGoal-v0")
    with pytest.raises(ValueError, match="no test tasks for 'metarl/AntGoal-v0'"):
        ReproductionSettings(goal_config, 1, paper_tasks=True)
