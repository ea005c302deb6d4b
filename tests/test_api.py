"""The Python API (metarl.train/load/evaluate, MetaPolicy.adapt/adapt_from/predict/save)."""

import json
import re
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import functional_call

import metarl
from envs import to_env_actions
from metarl.checkpoint import CheckpointError
from metarl.sampler import rollouts
from tests.helpers import ROOT

NAV = "metarl/Navigation2D-v0"
TASK = {"goal": [0.3, -0.2]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("api") / "nav"
    config = metarl.TrainConfig.for_env(
        NAV, iterations=2, meta_batch_size=3, episodes_per_task=2, hidden_sizes=(8, 8)
    )
    meta = metarl.train(config, run, progress=False)
    assert meta.iteration == 2 and "charts/return_post_adaptation" in meta.training_metrics
    return run


@pytest.fixture
def meta(run_dir):
    return metarl.load(run_dir)


def test_for_env_applies_the_paper_preset_and_refuses_unknown_keys():
    config = metarl.TrainConfig.for_env("metarl/HalfCheetahDir-v0", iterations=3)
    assert (config.meta_batch_size, config.max_kl, config.iterations) == (40, 0.02, 3)
    with pytest.raises(ValueError, match="unknown config key"):
        metarl.TrainConfig.for_env(NAV, inner_rate=0.1)


def test_load_reads_the_trained_parameters(run_dir, meta):
    payload = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    for name, value in payload["params"].items():
        assert torch.equal(meta.params[name], value.float())
    assert (meta.env_id, meta.kind, meta.steps_taken, meta.task) == (NAV, "maml", 0, None)


def sampler_episodes(meta, task, episodes, seed):
    """The episodes ``meta.adapt(task, 1, episodes, seed)`` samples (the evaluator's seeding)."""
    env_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
    loaded = meta._loaded
    return rollouts(
        loaded.policy,
        meta.params,
        loaded.batched_env(episodes),
        [task],
        episodes,
        torch.Generator().manual_seed(seed),
        env_seed,
    )


def gym_loop_replay(policy_actions: np.ndarray, task) -> list[dict]:
    """Replay each episode's policy actions in a plain Gymnasium loop, recording what a user
    would: observations, the raw policy actions, the env's actions, rewards, terminated."""
    records = []
    env = gym.make(NAV)
    for episode in range(policy_actions.shape[1]):
        obs, _ = env.reset(options={"task": task})
        record = {"observations": [], "actions": [], "env_actions": [], "rewards": []}
        for action in policy_actions[:, episode]:
            env_action = to_env_actions(action, env.action_space.low, env.action_space.high)
            record["observations"].append(obs)
            record["actions"].append(action)
            record["env_actions"].append(env_action)
            obs, reward, terminated, truncated, _ = env.step(env_action)
            record["rewards"].append(reward)
            if terminated or truncated:
                break
        record["terminated"] = bool(terminated)
        records.append(record)
    return records


def test_adapt_from_gym_loop_episodes_equals_the_internal_sampler(meta):
    seed, count = 3, 6
    sampled = sampler_episodes(meta, TASK, count, seed)
    records = gym_loop_replay(sampled.actions[:, 0].numpy(), TASK)
    # the plain loop saw the sampler's episodes
    for j, record in enumerate(records):
        length = int(sampled.mask[:, 0, j].sum())
        assert len(record["rewards"]) == length
        assert np.allclose(record["rewards"], sampled.rewards[:length, 0, j].numpy(), atol=1e-5)
    internal = meta.adapt(TASK, steps=1, episodes=count, seed=seed)
    external = meta.adapt_from(records, action_units="policy", task=TASK)
    for name, value in internal.params.items():
        assert torch.allclose(external.params[name], value, atol=1e-6), name
    assert not torch.allclose(internal.params["mean.0.weight"], meta.params["mean.0.weight"])
    assert external.steps_taken == internal.steps_taken == 1 and external.task == TASK
    assert external.adaptation_returns == pytest.approx(internal.adaptation_returns, abs=1e-4)


def test_env_unit_actions_are_mapped_back_to_policy_units(meta):
    rng = np.random.default_rng(0)
    policy_actions = rng.uniform(-0.99, 0.99, size=(7, 3, 2))  # inside the bounds: invertible
    records = gym_loop_replay(policy_actions, TASK)
    as_env = [{**r, "actions": r["env_actions"]} for r in records]
    by_env = meta.adapt_from(as_env, action_units="env")
    by_policy = meta.adapt_from(records, action_units="policy")
    for name, value in by_policy.params.items():
        assert torch.allclose(by_env.params[name], value, atol=1e-5), name


def test_predict_acts_in_env_units_inside_the_bounds(meta):
    env = meta.make_env(TASK)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset()
    action, state = meta.predict(obs)
    assert state is None and action.shape == (2,) and action.dtype == env.action_space.dtype
    assert np.all(action >= low) and np.all(action <= high)
    batch = np.random.default_rng(1).uniform(-1, 1, size=(64, 2)).astype(np.float32)
    actions, _ = meta.predict(batch)
    assert actions.shape == (64, 2)
    assert np.all(actions >= low) and np.all(actions <= high)
    assert len(np.unique(actions)) > 10  # sampled, and mostly not clipped to one corner


def test_deterministic_predict_is_the_mean_mapped_as_the_sampler_maps_it(meta):
    loaded = meta._loaded
    sampled = rollouts(
        loaded.policy,
        meta.params,
        loaded.batched_env(2),
        [TASK],
        2,
        torch.Generator().manual_seed(0),
        0,
        deterministic=True,
    )
    obs = sampled.observations[:5, 0, 0].numpy()
    raw, _ = meta.predict(obs, deterministic=True, policy_units=True)
    assert np.allclose(raw, sampled.actions[:5, 0, 0].numpy(), atol=1e-6)
    mapped, _ = meta.predict(obs, deterministic=True)
    with torch.no_grad():
        mean, _ = functional_call(loaded.policy, meta.params, (torch.as_tensor(obs),))
    assert np.allclose(mapped, to_env_actions(mean.numpy(), -0.1, 0.1), atol=1e-7)
    with pytest.raises(ValueError, match=r"expects \[2\]"):
        meta.predict(np.zeros(3))


def test_saved_adapted_policy_loads_back_to_the_same_actions(meta, tmp_path):
    adapted = meta.adapt(TASK, steps=1, episodes=4, seed=0)
    path = adapted.save(tmp_path / "adapted.pt")
    back = metarl.load(path)
    assert (back.steps_taken, back.task, back.env_id) == (1, TASK, NAV)
    obs = np.random.default_rng(2).uniform(-0.5, 0.5, size=(8, 2)).astype(np.float32)
    assert np.array_equal(
        back.predict(obs, deterministic=True)[0], adapted.predict(obs, deterministic=True)[0]
    )
    back.seed(5)
    adapted.seed(5)
    assert np.array_equal(back.predict(obs)[0], adapted.predict(obs)[0])
    # a second step continues the schedule (alpha, then alpha / 2) on the same task only
    assert adapted._step_sizes(1, None) == [meta.config.inner_lr * 0.5]
    with pytest.raises(ValueError, match="was adapted to task"):
        adapted.adapt({"goal": [0.1, 0.1]})


def test_load_names_the_problem(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        metarl.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        metarl.load(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        metarl.load(junk)
    with pytest.raises(CheckpointError, match="is a policy for metarl/Navigation2D-v0, not"):
        metarl.load(run_dir, env="metarl/HalfCheetahDir-v0")


def test_load_takes_an_iteration_number_and_says_which_are_kept(run_dir):
    assert metarl.load(run_dir, checkpoint=2).iteration == 2
    assert metarl.load(run_dir, checkpoint="2").iteration == 2
    with pytest.raises(
        CheckpointError, match="no checkpoint of iteration 1; it keeps iterations 2"
    ):
        metarl.load(run_dir, checkpoint=1)
    with pytest.raises(CheckpointError, match="'worst' is not 'latest', 'best', an iteration"):
        metarl.load(run_dir, checkpoint="worst")


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"observations": [[0, 0]], "actions": [[0, 0]]}, "lacks"),
        ({"observations": [[0, 0]], "actions": [[0, 0, 0]], "rewards": [1.0]}, "actions has shape"),
        ({"observations": [[0, np.nan]], "actions": [[0, 0]], "rewards": [1.0]}, "NaN"),
        ({"observations": [[0, 0]], "actions": [[0.5, 0]], "rewards": [1.0]}, "outside the env"),
        ({"observations": [[0, 0]], "actions": [["a", 0]], "rewards": [1.0]}, "non-numeric"),
    ],
)
def test_adapt_from_refuses_malformed_episodes(meta, record, match):
    with pytest.raises(ValueError, match=match):
        meta.adapt_from([record])


def test_adapt_refuses_other_envs_and_bad_counts(meta):
    with pytest.raises(ValueError, match="not on"):
        meta.adapt(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="steps must be"):
        meta.adapt(TASK, steps=0)
    with pytest.raises(ValueError, match="goal"):
        meta.adapt({"goal": [3.0, 0.0]})


def test_evaluate_gives_what_the_script_writes(run_dir):
    from scripts.evaluate import main

    args = ["--num-tasks", "3", "--adapt-steps", "1", "--episodes", "2", "--seed", "7"]
    assert main(["--run-dir", str(run_dir), *args]) == 0
    written = json.loads((run_dir / "evaluation.json").read_text())
    evaluation = metarl.evaluate(run_dir, num_tasks=3, adapt_steps=1, episodes=2, seed=7)
    assert evaluation.mean_return == pytest.approx([written["mean_return"][k] for k in "01"])
    assert evaluation.to_dict()["returns"] == written["returns"]


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## From Python") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_python_blocks_run(tmp_path):
    blocks = readme_python_blocks()
    assert len(blocks) >= 2
    script = tmp_path / "readme_example.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
