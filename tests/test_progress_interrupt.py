"""Progress (ETA of training and sweeps, bars of export/convert/repack) and Ctrl-C: one line saying what a
rerun does, exit code 130, nothing half-written kept. One real SIGINT to a real ``c3di bench run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.benchmarks.progress import SweepProgress, TrainProgress, duration
from causal3dident.cli import INTERRUPTED_EXIT, main


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_train_progress_shows_rate_and_time_left() -> None:
    lines: list[str] = []
    clock = Clock()
    progress = TrainProgress(steps=1000, every=100, checkpoint_every=200, echo=lines.append, clock=clock)
    for step in range(201, 401):  # a resumed run: its first step here is 201
        clock.now += 0.5
        progress(step, 1.0)
    assert lines == ["  step 300/1000: loss 1.0000, 2.00 steps/s, ETA 5m50s",
                     "  step 400/1000: loss 1.0000, 2.00 steps/s, ETA 5m00s"]
    assert progress.interrupted() == ("stopped at step 400 of 1000; rerunning the same command resumes from the last "
                                      "checkpoint, at step 200 or later (one is saved every 200 steps)")
    fresh = TrainProgress(steps=1000, every=100, checkpoint_every=200, echo=lines.append, clock=clock)
    fresh(1, 1.0)
    assert "starts this run over" in fresh.interrupted()
    assert [duration(s) for s in (12, 245, 3720)] == ["12s", "4m05s", "1h02m"]


def test_sweep_progress_names_the_run_and_the_time_left() -> None:
    lines: list[str] = []
    clock = Clock()
    sweep = SweepProgress(3, echo=lines.append, clock=clock)
    sweep.skip(1, "lt_hues seed 0")
    sweep.start(2, "lt_positions seed 0", TrainProgress(10, 5, 5, echo=lines.append, clock=clock))
    clock.now += 60
    sweep.done()
    train = TrainProgress(10, 5, 5, echo=lines.append, clock=clock)
    sweep.start(3, "da_colour seed 0", train)
    train(1, 1.0)
    assert lines == ["[1/3] lt_hues seed 0: finished, skipped", "[2/3] lt_positions seed 0",
                     "[3/3] da_colour seed 0 (about 1m00s left in this sweep)"]
    assert sweep.interrupted().startswith("in run 3 of 3 (da_colour seed 0): stopped at step 1 of 10")
    assert sweep.interrupted().endswith("the 2 finished run(s) are skipped")


def test_ctrl_c_in_bench_run_says_it_resumes(synthetic_h5: Path, tmp_path: Path) -> None:
    """A real SIGINT to a real training run: one line, exit 130; the same command then resumes."""
    exe = Path(sys.executable).with_name("c3di")
    args = ["bench", "run", "--setting", "lt_hues", "--tier", "smoke", "--data", str(synthetic_h5), "--out",
            str(tmp_path), "--device", "cpu", "--set", "train.steps=400", "--set", "train.log_every=5", "--set",
            "train.checkpoint_every=10"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each progress line as it is printed, not at exit
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if our SIGINT is ignored
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "step 25/400" in line:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == INTERRUPTED_EXIT, (seen, out, err)
    assert any("steps/s, ETA" in line for line in seen)
    assert err.strip().splitlines() == [err.strip()] and err.strip().startswith("interrupted: stopped at step ")
    assert "rerunning the same command resumes from the last checkpoint" in err and "Aborted" not in err
    rerun = CliRunner().invoke(main, args)  # in this process: torch is imported already
    assert rerun.exit_code == 0, rerun.output
    record = json.loads((tmp_path / "smoke" / "simclr" / "lt_hues" / "seed0" / "run.json").read_text())
    assert record["train"]["resumed_at"] >= 20 and record["train"]["steps"] == 400


def test_ctrl_c_in_a_sweep_says_what_is_skipped(synthetic_h5: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from causal3dident.benchmarks import runner

    def run_then_stop(setting, tier, seed, data, out, on_step=None, **kwargs):  # noqa: ANN001, ANN202
        path = runner.run_dir(out, tier.name, "simclr", setting.id, seed)
        if setting.id == "lt_hues":
            path.mkdir(parents=True)
            (path / runner.RESULTS).write_text("finished\n")
            return path
        on_step(1, 2.0)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_benchmark", run_then_stop)
    result = CliRunner().invoke(main, ["bench", "sweep", "--tier", "smoke", "--data", str(synthetic_h5), "--out",
                                       str(tmp_path), "--setting", "lt_hues", "--setting", "lt_positions"])
    assert result.exit_code == INTERRUPTED_EXIT, result.output
    assert "[1/2] lt_hues seed 0" in result.stdout and "[2/2] lt_positions seed 0" in result.stdout
    assert result.stderr.strip() == ("interrupted: in run 2 of 2 (lt_positions seed 0): stopped at step 1 of 4, "
                                     "before the first checkpoint (step 2); rerunning the same command starts this "
                                     "run over; the 1 finished run(s) are skipped")


@pytest.mark.parametrize("command", ["repack", "convert", "export"])
def test_ctrl_c_keeps_nothing_half_written(command: str, synthetic_h5: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C on the third block of images: exit 130, one line saying what a rerun does; repack and convert
    leave neither the output nor a temporary file."""
    from causal3dident import convert as convert_module

    source = synthetic_h5
    if command == "convert":
        source = convert_module.export(synthetic_h5, tmp_path / "release", unbalanced="keep")
    work = tmp_path / "work"
    work.mkdir()
    out = work / ("exported" if command == "export" else "out.h5")
    blocks = convert_module._blocks
    write_images = convert_module.write_images
    calls: list[int] = []

    def write_then_stop(*args: object) -> None:  # repack and convert write each block with write_images
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        write_images(*args)

    def blocks_then_stop(images: object, recorded: object, bar: object = None,
                         rows: object = None) -> Iterator[np.ndarray]:  # export
        for k, block in enumerate(blocks(images, recorded, bar, rows)):
            if k == 2:
                raise KeyboardInterrupt
            yield block

    monkeypatch.setattr(convert_module, "BLOCK", 16)
    monkeypatch.setattr(convert_module, "write_images", write_then_stop)
    monkeypatch.setattr(convert_module, "_blocks", blocks_then_stop)
    extra = ["--format", "csv"] if command == "export" else []
    result = CliRunner().invoke(main, [command, str(source), str(out), *extra, "--quiet"])
    assert result.exit_code == INTERRUPTED_EXIT, (result.output, result.exception)
    line = result.stderr.strip()
    assert line.startswith("interrupted: ") and "\n" not in line and "Aborted" not in result.output
    assert "nothing was kept" in line and "rerunning the same command starts over" in line
    assert command == "export" or len(calls) == 3
    assert list(work.iterdir()) == []  # no output, no temporary file or staging folder


def test_export_convert_repack_show_a_progress_bar_unless_quiet(synthetic_h5: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["repack", str(synthetic_h5), str(tmp_path / "a.h5")])
    assert shown.exit_code == 0 and "repacking train.h5" in shown.stderr and "192/192" in shown.stderr  # + pair views
    quiet = runner.invoke(main, ["repack", str(synthetic_h5), str(tmp_path / "b.h5"), "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    shown = runner.invoke(main, ["export", str(synthetic_h5), str(tmp_path / "release"), "--unbalanced", "keep"])
    assert shown.exit_code == 0 and "exporting train.h5" in shown.stderr and "64/64" in shown.stderr
    shown = runner.invoke(main, ["convert", str(tmp_path / "release"), str(tmp_path / "c.h5")])
    assert shown.exit_code == 0 and "converting trainset" in shown.stderr and "64/64" in shown.stderr
    assert np.array_equal(_images(tmp_path / "a.h5"), _images(tmp_path / "b.h5"))


def _images(path: Path) -> np.ndarray:
    import h5py

    from causal3dident.codecs import load_filter_plugins

    load_filter_plugins()
    with h5py.File(path, "r") as f:
        return f["images"][...]


def test_a_progress_bar_stays_when_its_work_succeeds_and_clears_when_it_fails() -> None:
    import io

    from causal3dident.progress import ProgressBar

    done, failed = io.StringIO(), io.StringIO()
    with ProgressBar(total=3, desc="work", file=done, mininterval=0) as bar:
        bar.update(3)
    with pytest.raises(ValueError), ProgressBar(total=3, desc="work", file=failed, mininterval=0) as bar:
        bar.update(1)
        raise ValueError
    assert done.getvalue().endswith("\n") and "3/3" in done.getvalue().splitlines()[-1]
    assert "\n" not in failed.getvalue() and failed.getvalue().rstrip("\r").split("\r")[-1].strip() == ""
