"""Plot scripts write real PNGs from tiny real runs (learning curves, navigation paths)."""

import numpy as np
import pytest

from metarl.evaluation import CurveSummary
from metarl.plotting import plot_adaptation_curves, read_scalars
from scripts import plot as plot_script
from scripts import render as render_script
from scripts import train as train_script

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = []
    for seed in (0, 1):
        run = root / f"nav_{seed}"
        argv = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--hidden-sizes", "8", "8"]
        argv += ["--iterations", "2", "--no-progress", "--threads", "1", "--seed", str(seed)]
        assert train_script.main([*argv, "--run-dir", str(run)]) == 0
        dirs.append(run)
    return dirs


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 2000
    assert path.read_bytes()[:8] == PNG


def test_read_scalars_gives_the_logged_learning_curve(runs):
    scalars = read_scalars(runs[0], ["charts/return_post_adaptation", "no/such_tag"])
    steps, values = scalars["charts/return_post_adaptation"]
    assert set(scalars) == {"charts/return_post_adaptation"}
    assert len(steps) == 2 and steps[0] > 0 and np.all(np.diff(steps) > 0)
    assert np.all(np.isfinite(values))


def test_plot_script_single_run_and_seeds_sharing_a_label(runs, tmp_path):
    assert plot_script.main([str(runs[0]), "--out", str(tmp_path / "one.png")]) == 0
    assert_png(tmp_path / "one.png")
    argv = [*map(str, runs), "--labels", "MAML", "MAML", "--out", str(tmp_path / "seeds.png")]
    assert plot_script.main(argv) == 0
    assert_png(tmp_path / "seeds.png")


def test_plot_script_refuses_missing_runs_and_unknown_tags(runs, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert plot_script.main([str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert plot_script.main([str(runs[0]), "--tags", "no/such_tag", "--out", str(out)]) == 2
    assert "logged any of" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing, before any work
        plot_script.main([str(runs[0]), "--out", str(tmp_path / "x.txt")])
    assert exit_info.value.code == 2
    assert "--out: must end in a figure format matplotlib writes" in capsys.readouterr().err


def test_render_script_refuses_an_unwritable_format_before_rendering(runs, tmp_path, capsys):
    out = tmp_path / "nav.txt"
    assert render_script.main(["--run-dir", str(runs[0]), "--out", str(out)]) == 2
    assert "--out must end in a figure format matplotlib writes" in capsys.readouterr().err
    assert not out.exists()


def test_render_script_draws_navigation_paths(runs, tmp_path):
    out = tmp_path / "nav.png"
    argv = ["--run-dir", str(runs[0]), "--out", str(out), "--adapt-steps", "2", "--episodes", "4"]
    assert render_script.main(argv) == 0
    assert_png(out)


def test_adaptation_figure_with_an_oracle_line(tmp_path):
    curve = CurveSummary("MAML", "maml", "x", 0.1, [[-40.0], [-12.0]], [-40.0, -12.0], [2.0, 1.0])
    oracle = CurveSummary("oracle", "oracle", "y", None, [[-2.3]], [-2.3], [0.1])
    assert_png(plot_adaptation_curves([curve, oracle], tmp_path / "fig.png", "nav"))
