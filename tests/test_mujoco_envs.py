"""Tests of the MuJoCo task envs (HalfCheetah, Ant) and their batched forms."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the metarl/ ids)
from envs import OracleObservation, make_task_env
from envs.mujoco_batched import MujocoBatchedTaskEnv

CHEETAH_IDS = ["metarl/HalfCheetahVel-v0", "metarl/HalfCheetahDir-v0"]
ANT_IDS = ["metarl/AntVel-v0", "metarl/AntDir-v0", "metarl/AntGoal-v0"]
ENV_IDS = CHEETAH_IDS + ANT_IDS
# (env id, form, physics backend) triples the batched form supports
BATCHED_CASES = (
    [(i, "paper", "threads") for i in CHEETAH_IDS]
    + [(i, "paper", "batch") for i in CHEETAH_IDS]
    + [(i, "v5", "batch") for i in CHEETAH_IDS]
    + [(i, form, "batch") for i in ANT_IDS for form in ["paper"]]
    + [(i, "paper", "threads") for i in ANT_IDS]
    + [(i, "v5", "threads") for i in ENV_IDS]
)


def task_env(env_id: str, form: str):
    """The bare task env of ``env_id`` in ``form``."""
    return gym.make(env_id, form=form).unwrapped


MALFORMED_TASKS = {
    "metarl/HalfCheetahVel-v0": [
        {},
        {"velocity": 1.0, "extra": 1},
        {"speed": 1.0},
        {"velocity": "fast"},
        {"velocity": True},
        {"velocity": -0.1},
        {"velocity": 2.5},
        {"velocity": float("nan")},
        [1.0],
    ],
    "metarl/HalfCheetahDir-v0": [
        {},
        {"direction": 0},
        {"direction": 2},
        {"direction": "forward"},
        {"direction": True},
        {"direction": 1, "velocity": 1.0},
    ],
    "metarl/AntVel-v0": [{}, {"velocity": 3.5}, {"velocity": -1.0}, {"velocity": None}],
    "metarl/AntDir-v0": [{}, {"direction": 0.5}, {"direction": -2}],
    "metarl/AntGoal-v0": [
        {},
        {"goal": [0.0]},
        {"goal": [0.0, 0.0, 0.0]},
        {"goal": [4.0, 0.0]},
        {"goal": [0.0, -3.5]},
        {"goal": ["a", "b"]},
        {"goal": [float("inf"), 0.0]},
        {"goal": 1.0},
    ],
}


@pytest.fixture(autouse=True)
def _mujoco_log_in_tmp(tmp_path, monkeypatch):
    """MuJoCo appends its warnings (Ant's XML has a deprecated attribute) to MUJOCO_LOG.TXT
    in the working directory; keep that file out of the repository."""
    monkeypatch.chdir(tmp_path)


def reward_parts(info: dict) -> float:
    return sum(float(v) for k, v in info.items() if k.startswith("reward_"))


def run_single(env_id: str, task: dict, seed: int, actions: np.ndarray, form: str = "paper"):
    """Observations, rewards and terminations of the single env, stopping when it ends."""
    env = gym.make(env_id, **({"form": form} if form != "paper" else {}))
    obs, _ = env.reset(seed=seed, options={"task": task})
    observations, rewards, terminations = [obs], [], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        terminations.append(terminated)
        if terminated or truncated:
            break
    env.close()
    return np.array(observations), np.array(rewards), np.array(terminations)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 200
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reward_equals_sum_of_reported_parts(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(20):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(reward_parts(info), abs=1e-12)
        if terminated:
            env.reset(seed=1)
    env.close()


def reward_at(env_id: str, task: dict, qpos_edit=None, qvel_edit=None) -> float:
    """Reward of one zero-action step from a state edited after reset (seed 0)."""
    env = make_task_env(env_id)
    env.reset(seed=0, options={"task": task})
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    if qpos_edit:
        qpos_edit(qpos)
    if qvel_edit:
        qvel_edit(qvel)
    env.set_state(qpos, qvel)
    _, reward, _, _, _ = env.step(np.zeros(env.action_space.shape))
    return reward


def _set(index: int, value: float):
    def edit(array: np.ndarray) -> None:
        array[index] = value

    return edit


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/AntVel-v0"])
def test_faster_goal_velocity_rewards_running_faster(env_id):
    run = _set(0, 3.0)  # a forward push of the root
    stand = _set(0, 0.0)
    fast_task, slow_task = {"velocity": 2.0}, {"velocity": 0.0}
    assert reward_at(env_id, fast_task, qvel_edit=run) > reward_at(
        env_id, fast_task, qvel_edit=stand
    )
    assert reward_at(env_id, slow_task, qvel_edit=stand) > reward_at(
        env_id, slow_task, qvel_edit=run
    )


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahDir-v0", "metarl/AntDir-v0"])
def test_direction_minus_one_rewards_running_backwards(env_id):
    forwards, backwards = _set(0, 3.0), _set(0, -3.0)
    assert reward_at(env_id, {"direction": -1}, qvel_edit=backwards) > reward_at(
        env_id, {"direction": -1}, qvel_edit=forwards
    )
    assert reward_at(env_id, {"direction": 1}, qvel_edit=forwards) > reward_at(
        env_id, {"direction": 1}, qvel_edit=backwards
    )


def test_ant_goal_rewards_being_near_the_goal():
    env_id, task = "metarl/AntGoal-v0", {"goal": [2.0, -1.5]}

    def near(qpos):
        qpos[:2] = [2.0, -1.5]

    def far(qpos):
        qpos[:2] = [-2.0, 1.5]

    assert reward_at(env_id, task, qpos_edit=near) > reward_at(env_id, task, qpos_edit=far) + 5.0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sampled_tasks_reproducible_and_in_distribution(env_id):
    env = make_task_env(env_id)
    first = env.sample_tasks(50, np.random.default_rng(3))
    second = env.sample_tasks(50, np.random.default_rng(3))
    assert first == second
    assert first != env.sample_tasks(50, np.random.default_rng(4))
    for task in first:
        assert env.validate_task(task) == task  # valid, already canonical
    params = np.array([env.task_vector(t) for t in first])
    if "Vel" in env_id:
        high = 2.0 if "Cheetah" in env_id else 3.0
        assert np.all((params >= 0.0) & (params <= high))
    elif "Dir" in env_id:
        assert set(params[:, 0].tolist()) == {-1.0, 1.0}
    else:
        assert params.shape == (50, 2) and np.all(np.abs(params) <= 3.0)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_malformed_or_out_of_range_tasks_raise(env_id):
    env = make_task_env(env_id)
    batched = env.batched(1)
    for task in MALFORMED_TASKS[env_id]:
        with pytest.raises(ValueError, match=env_id.split("/")[1].removesuffix("-v0")):
            env.validate_task(task)
        with pytest.raises(ValueError):
            env.set_task(task)
        with pytest.raises(ValueError):
            env.reset(options={"task": task})
        with pytest.raises(ValueError):
            batched.reset([task], seed=0)


def test_task_via_reset_options_and_constructor():
    env = gym.make("metarl/HalfCheetahVel-v0")
    env.reset(seed=0, options={"task": {"velocity": 0.3}})
    assert env.unwrapped.task == {"velocity": 0.3}
    made = gym.make("metarl/AntGoal-v0", task={"goal": [1, 2]})
    assert made.unwrapped.task == {"goal": [1.0, 2.0]}


@pytest.mark.parametrize(("env_id", "form", "backend"), BATCHED_CASES)
def test_batched_matches_single_env(env_id, form, backend):
    env = task_env(env_id, form)
    tasks = env.sample_tasks(3, np.random.default_rng(1))
    batched = env.batched(3, backend=backend)
    rng = np.random.default_rng(2)
    actions = rng.uniform(-1, 1, size=(50, 3, batched.action_dim))
    obs = batched.reset(tasks, seed=10)
    assert obs.dtype == np.float32 and obs.shape == (3, batched.observation_dim)
    observations, rewards, terminations = [obs], [], []
    for t in range(50):
        obs, reward, terminated, truncated = batched.step(actions[t])
        assert reward.dtype == np.float64 and terminated.dtype == bool and truncated.dtype == bool
        parts = sum(v for k, v in batched.last_info.items() if k.startswith("reward_"))
        np.testing.assert_allclose(reward, parts, atol=1e-12)
        observations.append(obs)
        rewards.append(reward)
        terminations.append(terminated)
    observations, rewards, terminations = map(np.array, (observations, rewards, terminations))
    for i in range(3):
        single_obs, single_rewards, single_term = run_single(
            env_id, tasks[i], 10 + i, actions[:, i], form
        )
        steps = len(single_rewards)
        np.testing.assert_allclose(observations[: steps + 1, i], single_obs, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rewards[:steps, i], single_rewards, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(terminations[:steps, i], single_term)
        # after its episode ends a copy reports nothing more
        assert np.all(rewards[steps:, i] == 0.0)
        assert not terminations[steps:, i].any()
    batched.close()


def test_batched_truncates_at_horizon_and_reset_seeds_reproduce():
    env = make_task_env("metarl/HalfCheetahVel-v0")
    batched = env.batched(2)
    tasks = [{"velocity": 0.5}, {"velocity": 1.5}]
    first = batched.reset(tasks, seed=7)
    zeros = np.zeros((2, batched.action_dim))
    for t in range(batched.max_episode_steps):
        _, _, terminated, truncated = batched.step(zeros)
        assert not terminated.any()
        assert truncated.all() == (t == batched.max_episode_steps - 1)
    _, reward, terminated, truncated = batched.step(zeros)
    assert not (reward.any() or terminated.any() or truncated.any())
    np.testing.assert_array_equal(batched.reset(tasks, seed=7), first)
    assert not np.array_equal(batched.reset(tasks, seed=8), first)
    assert batched.max_episode_steps == 200
    # without a seed each copy continues its own stream, as a single env does
    unseeded = env.batched(2)
    assert not np.array_equal(unseeded.reset(tasks), unseeded.reset(tasks))
    single = make_task_env("metarl/HalfCheetahVel-v0")
    single.reset(seed=7, options={"task": tasks[1]})
    second_single, _ = single.reset()
    batched.reset(tasks, seed=6)
    np.testing.assert_allclose(batched.reset(tasks)[1], second_single, rtol=1e-6)


@pytest.mark.parametrize(("env_id", "form", "backend"), BATCHED_CASES[:3])
def test_batched_rejects_bad_actions(env_id, form, backend):
    batched = task_env(env_id, form).batched(2, backend=backend)
    batched.reset(make_task_env(env_id).sample_tasks(2, np.random.default_rng(0)), seed=0)
    good = np.zeros((2, batched.action_dim))
    with pytest.raises(ValueError, match="shape"):
        batched.step(good[:1])
    with pytest.raises(ValueError, match="shape"):
        batched.step(np.zeros((2, batched.action_dim + 1)))
    bad = good.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        batched.step(bad)
    with pytest.raises(ValueError):
        batched.reset([{"velocity": 1.0}], seed=0)  # wrong number of tasks
    batched.step(good)  # still usable


@pytest.mark.parametrize(("env_id", "form", "backend"), BATCHED_CASES[:3] + BATCHED_CASES[-1:])
def test_nan_state_ends_only_that_copy(env_id, form, backend):
    env = task_env(env_id, form)
    tasks = env.sample_tasks(3, np.random.default_rng(0))
    actions = np.random.default_rng(1).uniform(-1, 1, size=(8, 3, env.action_space.shape[0]))

    def run(inject: bool) -> tuple[list, MujocoBatchedTaskEnv]:
        batched = env.batched(3, backend=backend)
        batched.reset(tasks, seed=5)
        if inject:  # a blow-up before the first step (time 0) is the hardest to notice
            qvel = np.full((1, env.model.nv), np.nan)
            batched.physics.write_state(np.array([1]), qvel=qvel)
        return [(*batched.step(a), dict(batched.last_info)) for a in actions], batched

    clean, _ = run(inject=False)
    with pytest.warns(RuntimeWarning, match=r"unstable in copy \[1\]"):
        faulty, _ = run(inject=True)
    obs, reward, terminated, _, info = faulty[0]
    assert terminated.tolist() == [False, True, False]
    assert reward[1] == 0.0 and info["unstable"].tolist() == [False, True, False]
    for t, ((obs, reward, term, trunc, info), clean_t) in enumerate(
        zip(faulty, clean, strict=True)
    ):
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))
        for i in (0, 2):  # the other copies are untouched
            np.testing.assert_array_equal(obs[i], clean_t[0][i])
            assert reward[i] == clean_t[1][i]
        if t > 0:  # the broken copy stays ended and quiet
            assert reward[1] == 0.0 and not term[1] and not trunc[1]
            assert not info["unstable"][1]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_observation_appends_task(env_id):
    # OracleObservation reads the task API off the env it wraps, so it wraps the bare env
    env = OracleObservation(make_task_env(env_id))
    task = env.unwrapped.sample_tasks(1, np.random.default_rng(0))[0]
    obs, _ = env.reset(seed=0, options={"task": task})
    base_dim = env.unwrapped.observation_space.shape[0]
    extra = env.unwrapped.task_vector(task)
    assert obs.shape == (base_dim + extra.shape[0],) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[base_dim:], extra)
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs[base_dim:], extra)


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahDir-v0", "metarl/AntGoal-v0"])
def test_env_pickles_with_its_task_and_arguments(env_id):
    env = gym.make(env_id, task=make_task_env(env_id).sample_tasks(1, np.random.default_rng(0))[0])
    env.unwrapped.set_task(env.unwrapped.task)
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    assert type(clone) is type(env.unwrapped) and clone.task == env.unwrapped.task
    assert clone._ctrl_cost_weight == env.unwrapped._ctrl_cost_weight


def test_ant_refuses_the_batch_backend_and_unknown_backends():
    # mujoco.batch cannot give cfrc_ext as Gymnasium computes it (after mj_step)
    with pytest.raises(ValueError, match="threads"):
        task_env("metarl/AntVel-v0", "v5").batched(2, backend="batch")
    with pytest.raises(ValueError, match="unknown physics backend"):
        make_task_env("metarl/HalfCheetahVel-v0").batched(2, backend="gpu")
    with pytest.raises(ValueError, match="num_copies"):
        make_task_env("metarl/HalfCheetahVel-v0").batched(0)


@pytest.mark.parametrize("env_id", CHEETAH_IDS)
def test_paper_form_cheetah_time_step_observation_and_velocity(env_id):
    """The paper's HalfCheetah: dt 0.01 s, 20 observations ending with the torso subtree's
    centre of mass, forward velocity of that centre of mass; v5 keeps Gymnasium's."""
    env = make_task_env(env_id)
    assert env.form == "paper" and env.dt == pytest.approx(0.01)
    assert env.observation_space.shape == (20,)
    v5 = task_env(env_id, "v5")
    assert v5.dt == pytest.approx(0.05) and v5.observation_space.shape == (17,)
    obs, _ = env.reset(seed=3)
    torso = env.model.body("torso").id
    np.testing.assert_allclose(obs[:8], env.data.qpos[1:])
    np.testing.assert_allclose(obs[8:17], env.data.qvel)
    np.testing.assert_allclose(obs[17:], env.data.subtree_com[torso])
    rng = np.random.default_rng(0)
    positions, velocities = [obs[17]], []
    for _ in range(40):
        obs, _, terminated, _, info = env.step(rng.uniform(-1, 1, 6))
        assert not terminated
        positions.append(obs[17])
        velocities.append(info["x_velocity"])
    # semi-implicit Euler: the centre of mass moves by dt times its new velocity
    displacement = np.diff(positions) / env.dt
    np.testing.assert_allclose(displacement, velocities, atol=0.02)
    assert np.abs(displacement).max() > 0.1  # it did move


def test_paper_form_reset_noise_is_gaussian_with_the_papers_scales():
    env = make_task_env("metarl/HalfCheetahVel-v0")
    qpos, qvel = [], []
    for seed in range(200):
        env.reset(seed=seed)
        qpos.append(env.data.qpos.copy())
        qvel.append(env.data.qvel.copy())
    assert np.std(qpos) == pytest.approx(0.01, rel=0.1)
    assert np.std(qvel) == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_control_cost_of_out_of_range_action_is_the_clipped_actions(env_id):
    env = make_task_env(env_id)
    action = np.linspace(-3.0, 3.0, env.action_space.shape[0])
    clipped = np.clip(action, -1.0, 1.0)
    assert env.control_cost(action) == pytest.approx(env.control_cost(clipped), abs=0)
    assert env.control_cost(action) == pytest.approx(env._ctrl_cost_weight * np.sum(clipped**2))
    batched = env.batched(2)
    batched.reset(env.sample_tasks(2, np.random.default_rng(0)), seed=0)
    batched.step(np.stack([action, clipped]))
    ctrl = batched.last_info["reward_ctrl"]
    assert ctrl[0] == pytest.approx(ctrl[1]) and ctrl[0] == pytest.approx(
        -env.control_cost(clipped)
    )
    batched.close()


@pytest.mark.parametrize("env_id", ANT_IDS)
def test_paper_form_ant_model_observation_velocity_and_reset(env_id):
    """rllab's ant: RK4 at 0.02 s, softer contacts, 125 observations (the torso's x-y
    position, contact forces of all 14 bodies, rotation matrix, centre of mass), centre-of-
    mass velocity, the standing pose; v5 keeps Gymnasium's."""
    env = make_task_env(env_id)
    model = env.model
    assert env.form == "paper" and env.dt == pytest.approx(0.02) and env.frame_skip == 1
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    np.testing.assert_allclose(model.geom_solimp[:, :3], [[0.8, 0.8, 0.01]] * model.ngeom)
    assert env.observation_space.shape == (125,) and model.nbody == 14
    v5 = task_env(env_id, "v5")
    assert v5.dt == pytest.approx(0.05) and v5.observation_space.shape == (105,)
    assert v5.model.geom_solimp[0, 0] == pytest.approx(0.9)
    obs, _ = env.reset(seed=3)
    torso = model.body("torso").id
    np.testing.assert_allclose(env.init_qpos, model.numeric("init_qpos").data)
    assert env.init_qpos[2] == pytest.approx(0.55)  # standing pose, not qpos0's 0.75
    rng = np.random.default_rng(0)
    positions, velocities, contact = [obs[-3:-1]], [], 0.0
    for _ in range(30):
        obs, reward, terminated, _, info = env.step(rng.uniform(-1, 1, 8))
        contact = max(contact, np.abs(obs[29:113]).max())
        data = env.data
        np.testing.assert_allclose(obs[:15], data.qpos)  # x and y included
        np.testing.assert_allclose(obs[15:29], data.qvel)
        np.testing.assert_allclose(obs[29:113], np.clip(data.cfrc_ext, -1, 1).ravel())
        np.testing.assert_allclose(obs[113:122], data.xmat[torso])
        np.testing.assert_allclose(obs[122:], data.subtree_com[torso])
        parts = sum(v for k, v in info.items() if k.startswith("reward_"))
        assert reward == pytest.approx(parts) and info["reward_survive"] == 0.05
        assert info["x_velocity"] == data.subtree_linvel[torso, 0]
        assert terminated == (not 0.2 <= data.qpos[2] <= 1.0)
        if terminated:
            break
        positions.append(obs[-3:-1])
        velocities.append([info["x_velocity"], info["y_velocity"]])
    assert contact > 0.5  # the feet touch the floor: contact forces seen
    # the centre of mass moves by about dt times its velocity (RK4 steps through contacts
    # differ more at impacts, hence a mean)
    displacement = np.diff(positions, axis=0) / env.dt
    assert np.abs(displacement - np.array(velocities)).mean() < 0.05
    assert np.abs(displacement).max() > 0.05


def test_unknown_env_form_is_refused_with_a_clear_error():
    for env_id in ["metarl/HalfCheetahVel-v0", "metarl/AntVel-v0"]:
        with pytest.raises(ValueError, match="unknown env form"):
            gym.make(env_id, form="v4")


@pytest.mark.parametrize("form", ["paper", "v5"])
def test_envs_write_nothing_to_the_working_directory(form, tmp_path, monkeypatch):
    """MuJoCo writes MUJOCO_LOG.TXT into the cwd when a model uses deprecated attributes."""
    monkeypatch.chdir(tmp_path)
    for env_id in ENV_IDS:
        env = gym.make(env_id, form=form)
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.unwrapped.batched(2)
        env.close()
    assert list(tmp_path.iterdir()) == []


def test_cheetah_model_without_settotalmass_has_the_same_masses(tmp_path, monkeypatch):
    import mujoco

    monkeypatch.chdir(tmp_path)  # the reference compile below warns into the cwd
    env = task_env("metarl/HalfCheetahDir-v0", "paper")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = mujoco.MjModel.from_xml_path(env.fullpath)
    assert np.isclose(env.model.body_mass.sum(), 14.0)
    for field in ("body_mass", "body_inertia", "dof_invweight0", "actuator_acc0"):
        np.testing.assert_array_equal(getattr(env.model, field), getattr(reference, field))


@pytest.mark.parametrize("form", ["paper", "v5"])
@pytest.mark.parametrize("goal", [0.3, 1.7])
def test_cheetah_velocity_task_term_is_minus_the_absolute_error(form, goal):
    """The paper's velocity reward is -|v - goal| (not squared, not signed)."""
    env = gym.make("metarl/HalfCheetahVel-v0", form=form)
    env.reset(seed=0, options={"task": {"velocity": goal}})
    for _ in range(5):
        _, reward, *_, info = env.step(env.action_space.sample())
        assert info["x_velocity"] != goal
        assert info["reward_forward"] == pytest.approx(-abs(info["x_velocity"] - goal))
        assert reward == pytest.approx(info["reward_forward"] + info["reward_ctrl"])
