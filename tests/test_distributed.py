"""Training over several ranks (torch.distributed, gloo): same result as one process, rank 0
alone writes, a rank that dies or hangs ends the run with its name, and the last checkpoint
resumes with any number of ranks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from envs import make_task_env
from metarl.checkpoint import load_checkpoint
from metarl.config import TrainConfig, load_config
from metarl.distributed import World
from metarl.trainer import initial_meta_params, make_algorithm, make_policy, sample_meta_batch

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--meta-batch-size", "4",
    "--episodes-per-task", "2",
    "--hidden-sizes", "8", "8",
    "--threads", "1",
    "--checkpoint-every", "1",
    "--no-progress",
]  # fmt: skip
FAULTY_ENV = ["--env", "tests.task_families:RankFault-v0"]
# resets per rank and meta-iteration: 2 tasks x 2 episodes, before and after adaptation
RESETS_PER_ITERATION = 2 * 2 * 2


def quiet_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def train_command(run_dir: Path, *args: str, ranks: int = 1) -> list[str]:
    script = [str(ROOT / "scripts/train.py"), "--run-dir", str(run_dir), *SMALL, *args]
    if ranks == 1:
        return [sys.executable, *script]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, "--nproc-per-node", str(ranks), *script]


def run(command: list[str], timeout: float = 240, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=ROOT,
        env=quiet_env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def params_of(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")["params"]


def written_files(run_dir: Path) -> list[str]:
    """What a run wrote, TensorBoard event files by kind only (their names hold the pid)."""
    names = [str(path.relative_to(run_dir)) for path in run_dir.rglob("*") if path.is_file()]
    return sorted("events" if name.startswith("events.out") else name for name in names)


def test_a_task_batch_does_not_depend_on_which_tasks_share_the_process():
    config = TrainConfig(  # LineGoal: seeded reset noise, so env seeds matter too
        env="tests.task_families:LineGoal-v0",
        meta_batch_size=4,
        episodes_per_task=3,
        hidden_sizes=(8,),
        precision="float64",
    )
    env = make_task_env(config.env)
    torch.manual_seed(0)
    policy = make_policy(config, env)
    inner = make_algorithm(config, policy).inner
    params = initial_meta_params(config, policy)
    tasks = env.sample_tasks(4, np.random.default_rng(0))

    def batch(block: slice):
        copies = env.batched((block.stop - block.start) * config.episodes_per_task)
        rng = np.random.default_rng(1)
        result = sample_meta_batch(policy, params, inner, copies, tasks, config, rng, block)
        return result, rng.integers(2**31)  # what the run draws next

    whole, next_whole = batch(slice(0, 4))
    for block in (slice(0, 2), slice(2, 4)):
        part, next_part = batch(block)
        assert next_part == next_whole  # every rank's random stream stays in step
        for full_episodes, part_episodes in ((whole.pre[0], part.pre[0]), (whole.post, part.post)):
            torch.testing.assert_close(
                part_episodes.observations, full_episodes.observations[:, block]
            )
            torch.testing.assert_close(part_episodes.rewards, full_episodes.rewards[:, block])
    assert not torch.equal(whole.pre[0].actions[:, 0], whole.pre[0].actions[:, 1])


def test_a_meta_batch_that_does_not_split_evenly_is_refused_with_the_counts_that_do():
    with pytest.raises(
        ValueError, match=r"40 tasks does not split evenly over 3 ranks.*\[1, 2, 4, 5"
    ):
        World(rank=0, size=3).block(40)
    assert World(rank=1, size=4).block(40) == slice(10, 20)


@pytest.mark.parametrize("algo", ["maml-trpo", "promp", "reptile"])
def test_two_ranks_train_the_same_parameters_as_one_process_and_only_rank_0_writes(tmp_path, algo):
    # float64: TRPO's conjugate gradient magnifies float32 rounding (which does depend on
    # how the meta-batch is split) far above float tolerance within two iterations
    args = ["--iterations", "2", "--algo", algo, "--precision", "float64"]
    single, double = tmp_path / "one", tmp_path / "two"
    alone = run(train_command(single, *args))
    assert alone.returncode == 0, alone.stderr
    shared = run(train_command(double, *args, ranks=2))
    assert shared.returncode == 0, shared.stderr

    one, two = params_of(single), params_of(double)
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-7)
    config = load_config(str(single / "config.json"))
    torch.manual_seed(config.seed)
    initial = initial_meta_params(config, make_policy(config, make_task_env(config.env)))
    moved = max((one[name] - initial[name]).abs().max().item() for name in one)
    assert moved > 1e-4  # the comparison is between trained parameters
    # one TensorBoard file (a second rank writing would add its own) and nothing else extra
    assert written_files(double) == written_files(single)
    assert shared.stdout.count("run dir:") == 1


def test_a_rank_that_dies_ends_the_run_naming_it_and_the_run_resumes_with_two_ranks(tmp_path):
    run_dir = tmp_path / "run"
    fault = f"die:1:{2 * RESETS_PER_ITERATION + 1}"  # rank 1 exits at iteration 3
    start = time.monotonic()
    failed = run(
        train_command(run_dir, *FAULTY_ENV, "--iterations", "4", "--dist-timeout", "60", ranks=2),
        METARL_TEST_FAULT=fault,
    )
    assert failed.returncode != 0
    assert time.monotonic() - start < 60  # a dead rank is noticed at once, not at the timeout
    output = failed.stdout + failed.stderr
    assert "rank 1 did not finish sampling of iteration 3" in output
    assert "rank      : 1 (local_rank: 1)\n  exitcode  : 3" in output  # torchrun's root cause
    assert load_checkpoint(run_dir / "checkpoints/latest.pt")["iteration"] == 2

    resumed = run(train_command(run_dir, *FAULTY_ENV, "--iterations", "4", "--resume", ranks=2))
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run_dir / "checkpoints/latest.pt")["iteration"] == 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_rank_that_hangs_is_named_within_the_timeout_and_one_process_resumes(tmp_path):
    """Ranks started by hand (as torchrun would) so the hung one can be killed at once."""
    run_dir = tmp_path / "run"
    command = train_command(run_dir, *FAULTY_ENV, "--iterations", "4", "--dist-timeout", "5")
    launch = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    fault = f"hang:1:{2 * RESETS_PER_ITERATION + 1}"  # rank 1 hangs at iteration 3
    ranks = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=quiet_env(**launch, RANK=str(rank), METARL_TEST_FAULT=fault),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        start = time.monotonic()
        _, errors = ranks[0].communicate(timeout=120)
        assert ranks[0].returncode == 1
        assert ranks[1].poll() is None  # still hanging: rank 0 did not wait for it
        assert (
            "error: rank 0: rank 1 did not finish sampling of iteration 3: it died, or hung for more than 5 s"
            in errors
        )
        assert time.monotonic() - start < 60
    finally:
        for process in ranks:
            process.kill()
            process.communicate()
    assert load_checkpoint(run_dir / "checkpoints/latest.pt")["iteration"] == 2

    resumed = run(train_command(run_dir, *FAULTY_ENV, "--iterations", "4", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run_dir / "checkpoints/latest.pt")["iteration"] == 4


def test_other_scripts_refuse_a_multi_rank_launch():
    result = run([sys.executable, "scripts/evaluate.py", "--help"], WORLD_SIZE="2", RANK="0")
    assert result.returncode == 2
    assert "only scripts/train.py runs over several ranks" in result.stderr
