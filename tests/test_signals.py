"""Stopping and sharing a run folder: SIGINT/SIGTERM with a checkpoint, the run lock,
and no half-started run folder left behind. Real subprocesses where signals are involved."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from metarl.checkpoint import load_checkpoint
from metarl.config import TrainConfig
from metarl.run_lock import RunLock, RunLocked
from metarl.trainer import Trainer, TrainingDiverged
from tests.helpers import ROOT
from tests.helpers import TINY_TRAIN_ARGS as TINY

TRAIN = [sys.executable, "scripts/train.py", *TINY, "--threads", "1"]


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*TRAIN, "--run-dir", str(run_dir), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, f"training ended early: {process.communicate()[1]}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err


def latest_iteration(run_dir: Path) -> int:
    return int(load_checkpoint(run_dir / "checkpoints" / "latest.pt")["iteration"])


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path, signum, code):
    run = tmp_path / "run"
    total = "60"
    process = start(run, "--iterations", total, "--checkpoint-every", "2")
    wait_for(run / "checkpoints" / "iter_000002.pt", process)
    process.send_signal(signum)
    status, err = finish(process)
    assert status == code, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "--resume" in err
    stopped_at = latest_iteration(run)
    assert 2 <= stopped_at < int(total)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    resumed = start(run, "--iterations", total, "--resume")
    assert finish(resumed)[0] == 0
    assert latest_iteration(run) == int(total)
    straight = start(tmp_path / "straight", "--iterations", total, "--checkpoint-every", "2")
    assert finish(straight)[0] == 0
    a = load_checkpoint(run / "checkpoints" / "latest.pt")["params"]
    b = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")["params"]
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_second_ctrl_c_exits_at_once_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    # iterations long enough (about a second) for both signals to land inside one
    slow = ["--episodes-per-task", "40", "--hidden-sizes", "64", "64", "--checkpoint-every", "1"]
    process = start(run, "--iterations", "100000", *slow)
    wait_for(run / "checkpoints" / "iter_000001.pt", process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    status, err = finish(process, timeout=30)
    assert status == 130, err
    assert "Ctrl-C again to exit at once" in err and "interrupted" in err
    assert "the last checkpoint" in err and latest_iteration(run) >= 1
    assert "Traceback" not in err


def test_a_second_process_is_refused_and_a_dead_ones_lock_does_not_block(tmp_path):
    run = tmp_path / "run"
    first = start(run, "--iterations", "100000", "--checkpoint-every", "1")
    try:
        wait_for(run / "checkpoints" / "iter_000001.pt", first)
        second = subprocess.run(
            [*TRAIN, "--run-dir", str(run), "--resume", "--iterations", "100000"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert f"in use by another run (pid {first.pid}" in second.stderr
        fresh = subprocess.run(
            [*TRAIN, "--run-dir", str(run), "--iterations", "1"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert fresh.returncode == 2 and "in use by another run" in fresh.stderr
    finally:
        first.kill()
        first.wait(timeout=30)
    assert (run / ".lock").read_text().startswith(f"pid {first.pid}")  # stale, left by SIGKILL
    reached = latest_iteration(run)
    resumed = start(run, "--resume")
    wait_for(run / "checkpoints" / f"iter_{reached + 1:06d}.pt", resumed)
    resumed.send_signal(signal.SIGINT)
    assert finish(resumed)[0] == 130
    assert latest_iteration(run) > reached


def test_lock_is_exclusive_within_a_process_too(tmp_path):
    held = RunLock(tmp_path / "run")
    with pytest.raises(RunLocked, match="in use by another run"):
        RunLock(tmp_path / "run")
    held.release()
    RunLock(tmp_path / "run").release()


def tiny_config(**overrides) -> TrainConfig:
    small = {"meta_batch_size": 2, "episodes_per_task": 2, "hidden_sizes": (4,), "threads": 1}
    return TrainConfig(**{**small, **overrides})


def test_failure_before_the_first_checkpoint_removes_the_run_folder(tmp_path, monkeypatch):
    def broken(self):
        raise RuntimeError("env exploded")

    monkeypatch.setattr(Trainer, "iterate", broken)
    run = tmp_path / "new"
    with pytest.raises(RuntimeError, match="env exploded"):
        Trainer(tiny_config(iterations=3), run).run(progress=False)
    assert not run.exists()
    empty = tmp_path / "empty"  # a folder the user made: kept, and left empty
    empty.mkdir()
    with pytest.raises(RuntimeError):
        Trainer(tiny_config(iterations=3), empty).run(progress=False)
    assert [p.name for p in empty.iterdir() if p.name != ".lock"] == []
    Trainer(tiny_config(iterations=1), empty)  # the same command runs again


def test_divergence_before_the_first_checkpoint_says_the_folder_is_removed(tmp_path, monkeypatch):
    def rejected(self):
        self.state.consecutive_failures += 1
        self.state.iteration += 1
        self.last_problem = "non-finite loss"
        return {"charts/rejected_update": 1.0}

    monkeypatch.setattr(Trainer, "iterate", rejected)
    config = tiny_config(iterations=20, max_consecutive_failures=2, checkpoint_every=10)
    with pytest.raises(TrainingDiverged, match="No checkpoint was reached"):
        Trainer(config, tmp_path / "run").run(progress=False)
    assert not (tmp_path / "run").exists()


def test_a_folder_left_before_the_first_checkpoint_says_to_resume(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(iterations=1), run).lock.release()  # killed before it ran: config only
    with pytest.raises(FileExistsError, match="never reached its first checkpoint; pass --resume"):
        Trainer(tiny_config(iterations=1), run)
    Trainer(tiny_config(iterations=1), run, resume=True).run(progress=False)
    assert latest_iteration(run) == 1


def test_signals_are_restored_after_training(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    Trainer(tiny_config(iterations=1), tmp_path / "run").run(progress=False)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_config_larger_than_memory_is_refused_before_anything_is_written(tmp_path):
    from metarl.memory import MemoryBudgetError

    huge = tiny_config(meta_batch_size=10_000, episodes_per_task=10_000, hidden_sizes=(4096,))
    with pytest.raises(MemoryBudgetError, match=r"needs about [\d.]+ GiB of memory and "):
        Trainer(huge, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_memory_estimate_errs_high_on_a_real_iteration(tmp_path):
    """The estimate of a small run covers its measured peak (resident memory, own process)."""
    from metarl import memory

    script = f"""
import resource
from metarl.config import TrainConfig
from metarl.trainer import Trainer
config = TrainConfig(meta_batch_size=10, episodes_per_task=20, iterations=1, threads=1)
Trainer(config, {str(tmp_path / "run")!r}).run(progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    peak = int(result.stdout.split()[-1])
    estimate = memory.batch_bytes(10 * 20 * 100 * 2, 2, 2, (100, 100), 200, 4096)
    assert 0.3 * estimate < peak < estimate
