"""2D navigation: the single env, its batched form, and the task API."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import OracleObservation, make_task_env
from envs.navigation import Navigation2DEnv
from metarl.policies import GaussianMLPPolicy
from metarl.sampler import rollouts


def test_registered_env_passes_gymnasium_and_sb3_checks():
    env = gym.make("metarl/Navigation2D-v0")
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    assert env.spec.max_episode_steps == 100


def test_unknown_env_lists_known_ones():
    with pytest.raises(ValueError, match=r"metarl envs: .*metarl/Navigation2D-v0"):
        make_task_env("metarl/Nope-v0")


def test_paper_dynamics_reward_and_termination():
    env = Navigation2DEnv({"goal": [0.25, -0.1]})
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    obs, reward, terminated, truncated, info = env.step(np.array([0.5, -0.05]))  # dx clipped
    np.testing.assert_allclose(obs, [0.1, -0.05], atol=1e-7)
    assert reward == pytest.approx(-np.hypot(0.15, 0.05))
    assert not terminated and not truncated
    assert info == {"distance": pytest.approx(np.hypot(0.15, 0.05)), "success": 0.0}
    env.step(np.array([0.1, -0.05]))
    obs, reward, terminated, _, info = env.step(np.array([0.05, 0.0]))
    np.testing.assert_allclose(obs, [0.25, -0.1], atol=1e-6)
    assert terminated and reward == pytest.approx(0.0, abs=1e-9)
    assert info["success"] == 1.0


def test_truncates_at_horizon_through_make():
    env = gym.make("metarl/Navigation2D-v0")
    env.reset(options={"task": {"goal": [0.5, 0.5]}})
    for step in range(1, 101):
        _, _, terminated, truncated, _ = env.step(np.array([-0.1, -0.1], dtype=np.float32))
        assert not terminated
        assert truncated == (step == 100)


def test_tasks_reproducible_and_in_distribution():
    env = Navigation2DEnv()
    first = env.sample_tasks(50, np.random.default_rng(7))
    second = env.sample_tasks(50, np.random.default_rng(7))
    other = env.sample_tasks(50, np.random.default_rng(8))
    assert first == second and first != other
    goals = np.array([task["goal"] for task in first])
    assert goals.min() >= -0.5 and goals.max() <= 0.5
    for task in first:
        env.validate_task(task)


def test_different_goal_gives_different_reward():
    env = Navigation2DEnv()
    rewards = []
    for goal in ([0.3, 0.3], [-0.3, 0.3]):
        env.reset(options={"task": {"goal": goal}})
        rewards.append(env.step(np.array([0.1, 0.1]))[1])
    assert rewards[0] > rewards[1]


@pytest.mark.parametrize(
    "task, message",
    [
        ({"goal": [0.9, 0.0]}, "outside the task distribution"),
        ({"goal": [0.1]}, "two finite numbers"),
        ({"goal": ["a", "b"]}, "two numbers"),
        ({"goal": [float("nan"), 0.0]}, "finite"),
        ({"target": [0.1, 0.1]}, "missing \\['goal'\\]"),
        ([0.1, 0.1], "must be a mapping"),
    ],
)
def test_malformed_tasks_raise(task, message):
    env = Navigation2DEnv()
    with pytest.raises(ValueError, match=message):
        env.set_task(task)
    with pytest.raises(ValueError, match=message):
        env.batched(1).reset([task])


def test_batched_matches_single_env():
    env = Navigation2DEnv()
    tasks = [*env.sample_tasks(3, np.random.default_rng(0)), {"goal": [0.05, 0.05]}]
    batched = env.batched(len(tasks))
    rng = np.random.default_rng(1)
    actions = rng.normal(0.0, 0.08, size=(100, len(tasks), 2))
    actions[:, 3] = 0.025  # copy 3 reaches its goal after two steps and terminates
    obs_b = [batched.reset(tasks)]
    rew_b, done_b, info_b = [], [], []
    for t in range(100):
        obs, rew, term, trunc = batched.step(actions[t])
        obs_b.append(obs), rew_b.append(rew), done_b.append(term | trunc)
        info_b.append(batched.last_info)
    for i, task in enumerate(tasks):
        single = gym.make("metarl/Navigation2D-v0")
        obs, _ = single.reset(options={"task": task})
        np.testing.assert_array_equal(obs, obs_b[0][i])
        for t in range(100):
            obs, rew, term, trunc, info = single.step(actions[t, i])
            np.testing.assert_array_equal(obs, obs_b[t + 1][i])
            assert rew == rew_b[t][i]
            assert info["success"] == info_b[t]["success"][i] == float(term)
            assert info["distance"] == info_b[t]["distance"][i]
            assert (term or trunc) == done_b[t][i]
            if term or trunc:
                break
    assert done_b[1][3] and not any(d[3] for d in done_b[2:])  # ended once, then silent
    assert info_b[1]["success"][3] == 1.0 and not any(i["success"][3] for i in info_b[2:])
    assert all(r[3] == 0.0 for r in rew_b[2:])


def test_batched_rejects_bad_actions():
    batched = Navigation2DEnv().batched(2)
    batched.reset([{"goal": [0.1, 0.1]}] * 2)
    with pytest.raises(ValueError, match="shape"):
        batched.step(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        batched.step(np.array([[0.0, np.nan], [0.0, 0.0]]))


def test_oracle_form_appends_goal():
    env = OracleObservation(Navigation2DEnv())
    obs, _ = env.reset(options={"task": {"goal": [0.2, -0.3]}})
    np.testing.assert_allclose(obs, [0.0, 0.0, 0.2, -0.3], atol=1e-7)
    assert env.observation_space.shape == (4,)
    assert "metarl/Navigation2D-v0" in envs.REGISTERED


@pytest.mark.parametrize("deterministic", [True, False])
def test_success_is_reaching_the_goal_in_sampled_episodes(deterministic):
    # the paper's init gives mean 0 at the origin; a tiny std keeps the point there, inside
    # the first goal's box (so its episodes end at step 1) and far from the second's
    policy = GaussianMLPPolicy(2, 2, (8,), init_std=1e-4)
    params = {k: v.detach() for k, v in policy.named_parameters()}
    tasks = [{"goal": [0.005, -0.004]}, {"goal": [0.3, 0.3]}]
    env = Navigation2DEnv().batched(2 * 3)
    episodes = rollouts(
        policy,
        params,
        env,
        tasks,
        3,
        torch.Generator().manual_seed(0),
        env_seed=0,
        deterministic=deterministic,
    )
    assert episodes.success_rate().tolist() == [1.0, 0.0]
    lengths = episodes.mask.sum(0)
    assert lengths[0].tolist() == [1.0] * 3 and lengths[1].tolist() == [100.0] * 3


def test_endpoint_geometry_by_hand():
    from scripts.nav_endpoints import endpoint_geometry

    goals = np.array([[0.3, 0.4]] * 4)  # 0.5 from the start, along (0.6, 0.8)
    endpoints = np.array([[0.3, 0.4], [0.15, 0.2], [0.38, 0.34], [0.6, 0.8]])
    geometry = endpoint_geometry(endpoints, goals)
    np.testing.assert_allclose(geometry["distance"], [0.0, 0.25, 0.1, 0.5], atol=1e-12)
    np.testing.assert_allclose(geometry["reach"], [1.0, 0.5, 1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(geometry["lateral"], [0.0, 0.0, 0.1, 0.0], atol=1e-12)


def test_last_positions_take_each_episodes_last_valid_step():
    from scripts.nav_endpoints import last_positions

    observations = torch.arange(16.0).reshape(4, 2, 1, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]]).reshape(4, 2, 1)
    np.testing.assert_array_equal(
        last_positions(observations, mask), [observations[3, 0, 0], observations[1, 1, 0]]
    )


def test_nav_endpoints_script_on_a_tiny_run(tmp_path, capsys):
    import json

    from scripts import nav_endpoints
    from scripts import train as train_script
    from tests.helpers import TINY_TRAIN_ARGS

    run = tmp_path / "run"
    assert train_script.main([*TINY_TRAIN_ARGS, "--iterations", "1", "--run-dir", str(run)]) == 0
    checkpoint = run / "checkpoints" / "latest.pt"
    argv = [str(checkpoint), "--num-tasks", "3", "--episodes", "2", "--adapt-steps", "2"]
    assert nav_endpoints.main([*argv, "--out", str(tmp_path / "e.json")]) == 0
    (result,) = json.loads((tmp_path / "e.json").read_text())
    assert result["iteration"] == 1 and [s["step"] for s in result["steps"]] == [0, 1, 2]
    for step in result["steps"]:
        assert len(step["distance"]) == 3 and step["median_distance"] == np.median(step["distance"])
        assert 0.0 <= step["ended_in_goal_box"] <= 1.0
    assert "| reach |" in capsys.readouterr().out
    assert nav_endpoints.main([str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
