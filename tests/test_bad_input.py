"""Every bad input a user can give is one line on stderr naming the fix, exit code 2, and nothing written.

Each case runs the real command (click's runner, one through a subprocess) in a folder whose every file,
size and modification time is compared before and after: nothing may appear, change or vanish.
"""

from __future__ import annotations

import importlib.util

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from causal3dident.cli import main

REPO = Path(__file__).resolve().parents[1]
RESULTS_HEADER = "method,setting,tier,seed,layer,probe,factor,metric,value\n"
RESULTS_ROW = "simclr,lt_hues,smoke,0,final,logistic,class,accuracy,0.5\n"
RUN = ("smoke", "simclr", "lt_hues", "seed0")  # where 'bench run --setting lt_hues --tier smoke' keeps its run


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time (folders included)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def blocker(tmp: Path) -> None:
    (tmp / "blocker").write_text("a file where a folder should be\n")


def read_only(tmp: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    _mkdir(tmp / "ro").chmod(0o555)


def leaderboard_runs(tmp: Path) -> None:
    shutil.copy(REPO / "benchmarks" / "results" / "mini.csv", _mkdir(tmp / "runs" / "a") / "results.csv")


def existing_png(tmp: Path) -> None:
    (tmp / "sheet.png").write_bytes(b"an earlier sheet")


def existing_leaderboard(tmp: Path) -> None:
    leaderboard_runs(tmp)
    (tmp / "runs" / "LEADERBOARD.md").write_text("# an earlier leaderboard\n")


def truncated_checkpoint(tmp: Path) -> None:
    """A run folder whose checkpoint was cut short (a real torch zip file, truncated)."""
    import torch

    run = _mkdir(tmp.joinpath("runs", *RUN))
    torch.save({"step": 2, "model": {"w": torch.zeros(4096)}}, run / "checkpoint.pt")
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[:len(data) // 2])
    (run / "run.json").write_text('{"method": "simclr", "method_spec": "simclr", "tier": {"name": "smoke"}}')


def results_csv(content: str | bytes) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        path = _mkdir(tmp / "runs" / "a") / "results.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return make


def damaged_mesh(tmp: Path) -> None:
    source = Path(os.environ.get("C3DI_ASSETS") or REPO.parent / "shared" / "assets")
    if not (source / "meshes").is_dir():
        pytest.skip(f"no mesh mirror at {source}")
    shutil.copytree(source / "meshes", tmp / "assets" / "meshes")
    (tmp / "assets" / "meshes" / "cow.obj").write_text("v 0 0 0\ngarbage\n")
    (tmp / "assets" / "meshes" / "horse.obj").unlink()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


TINY = ["--resolution", "32", "--quality", "preview", "--device", "cpu"]  # fast, should a check ever regress
BENCH_RUN = ["bench", "run", "--setting", "lt_hues", "--tier", "smoke", "--data", "{data}"]
# id -> (arguments, setup, words the line must hold); {tmp}: the case's folder, {data}: a synthetic dataset file
CASES: dict[str, tuple[list[str], Callable[[Path], None] | None, tuple[str, ...]]] = {
    "latents seed -1": (["latents", "--n", "4", "--seed", "-1", "--out", "{tmp}/a.h5"], None,
                        ("--seed -1", "0 to 4294967295")),
    "latents seed 2**70": (["latents", "--n", "4", "--seed", str(2**70), "--out", "{tmp}/a.h5"], None,
                           ("0 to 4294967295",)),
    "render seed -1": (["render", "--n", "2", "--seed", "-1", "--out", "{tmp}/a.h5"], None, ("--seed -1",)),
    "preview seed 2**70": (["preview", *TINY, "--seed", str(2**70), "--out", "{tmp}/p.png"], None,
                           ("0 to 4294967295",)),
    "traversals seed -1": (["traversals", *TINY, "--seed", "-1", "--out", "{tmp}/t.png"], None, ("--seed -1",)),
    "bench run seed -1": ([*BENCH_RUN, "--seed", "-1", "--out", "{tmp}/runs"], None, ("--seed -1",)),
    "bench sweep seeds": (["bench", "sweep", "--tier", "smoke", "--data", "{data}", "--seeds", "0,-1",
                           "--out", "{tmp}/runs"], None, ("--seeds -1", "0 to 4294967295")),
    "latents --n not a number": (["latents", "--n", "abc", "--out", "{tmp}/a.h5"], None,
                                 ("'abc' is not a valid integer", "see 'c3di latents --help'")),
    "bench run without --data": (["bench", "run", "--setting", "lt_hues"], None,
                                 ("Missing option '--data'", "see 'c3di bench run --help'")),
    "latents empty shard": (["latents", "--n", "2", "--num-shards", "4", "--shard", "0", "--out", "{tmp}/a.h5"],
                            None, ("shard 0 would be empty", "--num-shards 2 or fewer")),
    "render empty shard": (["render", "--n", "2", "--num-shards", "4", "--shard", "1", "--device", "cpu",
                            "--out", "{tmp}/shards"], None, ("shards 0, 2 would be empty", "--num-shards 2 or fewer")),
    "preview unwritable": (["preview", *TINY, "--out", "{tmp}/blocker/sheets/p.png"], blocker,
                           ("blocker is a file, not a folder", "choose another --out")),
    "preview read-only folder": (["preview", *TINY, "--out", "{tmp}/ro/p.png"], read_only, ("cannot write in",)),
    "traversals unwritable": (["traversals", *TINY, "--out", "{tmp}/blocker/t.png"], blocker,
                              ("blocker is a file, not a folder",)),
    "figures unwritable": (["figures", "{data}", "--out", "{tmp}/blocker/figures"], blocker,
                           ("blocker is a file, not a folder",)),
    "card unwritable": (["card", "{data}", "--out", "{tmp}/blocker/card"], blocker, ("blocker is a file",)),
    "leaderboard unwritable": (["bench", "leaderboard", "{tmp}/runs", "--out", "{tmp}/blocker/L.md"],
                               lambda t: (blocker(t), leaderboard_runs(t)), ("--out", "blocker is a file")),
    "export unwritable": (["export", "{data}", "{tmp}/blocker/export", "--format", "csv"], blocker,
                          ("blocker is a file, not a folder", "choose another DIR")),
    "export original unwritable": (["export", "{data}", "{tmp}/blocker/export"], blocker, ("blocker is a file",)),
    "bench run unwritable": ([*BENCH_RUN, "--out", "{tmp}/blocker/runs"], blocker,
                             ("blocker is a file, not a folder", "choose another --out")),
    "preview exists": (["preview", *TINY, "--out", "{tmp}/sheet.png"], existing_png, ("already exists", "--overwrite")),
    "traversals exists": (["traversals", *TINY, "--out", "{tmp}/sheet.png"], existing_png,
                          ("already exists", "--overwrite")),
    "leaderboard exists": (["bench", "leaderboard", "{tmp}/runs"], existing_leaderboard,
                           ("LEADERBOARD.md", "--overwrite")),
    "render damaged meshes": (["render", "--n", "1", *TINY, "--assets", "{tmp}/assets",
                               "--out", "{tmp}/a.h5"], damaged_mesh,
                              ("'cow' damaged", "cow.obj", "'horse' missing", "c3di assets fetch")),
    "preview damaged meshes": (["preview", *TINY, "--assets", "{tmp}/assets", "--out", "{tmp}/p.png"],
                               damaged_mesh, ("'cow' damaged", "'horse' missing", "c3di assets fetch")),
    "resume truncated checkpoint": ([*BENCH_RUN, "--out", "{tmp}/runs"], truncated_checkpoint,
                                    ("checkpoint.pt is truncated or damaged", "delete it", "run folder")),
    "encoder truncated checkpoint": ([*BENCH_RUN, "--encoder", "{tmp}/runs/smoke/simclr/lt_hues/seed0/checkpoint.pt",
                                      "--out", "{tmp}/eval"], truncated_checkpoint,
                                     ("checkpoint.pt is truncated or damaged", "delete its run folder")),
    "encoder missing file": ([*BENCH_RUN, "--encoder", "{tmp}/nowhere/checkpoint.pt", "--out", "{tmp}/runs"],
                             None, ("no such file", "module:function")),
    "encoder missing py file": ([*BENCH_RUN, "--encoder", "{tmp}/plugin.py:make", "--out", "{tmp}/runs"], None,
                                ("no such file", "plugin.py")),
    "encoder missing module": ([*BENCH_RUN, "--encoder", "no_such_module_c3di:make", "--out", "{tmp}/runs"], None,
                               ("cannot import 'no_such_module_c3di'", "PYTHONPATH")),
    "encoder bare word": ([*BENCH_RUN, "--encoder", "resnet", "--out", "{tmp}/runs"], None,
                          ("--encoder resnet", "module:function")),
    "results.csv truncated": (["bench", "leaderboard", "{tmp}/runs", "--out", "{tmp}/L.md"],
                              results_csv(RESULTS_HEADER + RESULTS_ROW + "simclr,lt_hues,sm"),
                              ("results.csv, line 3", "3 comma-separated fields, expected 9", "delete it")),
    "results.csv bad value": (["bench", "leaderboard", "{tmp}/runs", "--out", "{tmp}/L.md"],
                              results_csv(RESULTS_HEADER + RESULTS_ROW.replace("0.5", "n/a")),
                              ("results.csv, line 2", "value 'n/a' is not a number")),
    "results.csv other header": (["bench", "leaderboard", "{tmp}/runs", "--out", "{tmp}/L.md"],
                                 results_csv("a,b\n1,2\n"), ("results.csv, line 1", "the header is 'a,b'")),
    "results.csv binary": (["bench", "leaderboard", "{tmp}/runs", "--out", "{tmp}/L.md"],
                           results_csv(b"\xff\xfe\x00garbage"), ("results.csv, line 1", "not UTF-8")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(case: str, tmp_path: Path, synthetic_h5: Path) -> None:
    args, setup, words = CASES[case]
    if "meshes" in case and importlib.util.find_spec("bpy") is None:
        pytest.skip("bpy is not installed: rendering names that before it reads the meshes (test_install_extras.py)")
    if setup is not None:
        setup(tmp_path)
    before = snapshot(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{data}", str(synthetic_h5)) for a in args]
    result = CliRunner().invoke(main, argv, prog_name="c3di")
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert snapshot(tmp_path) == before


def test_the_installed_command_behaves_the_same(tmp_path: Path) -> None:
    """One case through the real ``c3di`` executable: stderr is the one line, stdout empty."""
    exe = Path(sys.executable).with_name("c3di")
    proc = subprocess.run([str(exe), "latents", "--n", "4", "--seed", "-1", "--out", str(tmp_path / "a.h5")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "0 to 4294967295" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.render
def test_a_folder_that_vanishes_before_the_sheet_is_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks pass, then (during the render) the folder is replaced by a file: still one line, exit 2."""
    from PIL import Image

    from causal3dident.render import preview

    out = tmp_path / "sheets" / "p.png"

    def render_while_the_folder_vanishes(*args: object, **kwargs: object) -> Image.Image:
        (tmp_path / "sheets").write_text("took the folder's place\n")
        return Image.new("RGB", (8, 8))

    monkeypatch.setattr(preview, "contact_sheet", render_while_the_folder_vanishes)
    result = CliRunner().invoke(main, ["preview", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert f"--out {out}: cannot create its folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheets"] and (tmp_path / "sheets").is_file()


def test_a_run_folder_that_vanishes_during_training(tmp_path: Path, synthetic_h5: Path) -> None:
    """The run folder is removed mid-training: the checkpoint write is one line naming it, exit 2."""
    from causal3dident.benchmarks import runner
    from causal3dident.benchmarks.settings import load_settings
    from causal3dident.benchmarks.tiers import load_tier
    from causal3dident.errors import UnwritableOutputError

    def remove_the_runs(step: int, loss: float) -> None:
        if step == 1:
            shutil.rmtree(tmp_path / "runs")

    with pytest.raises(UnwritableOutputError, match=r"cannot write .*seed0/(checkpoint\.pt|train_log\.csv)"):
        runner.run_benchmark(load_settings()["lt_hues"], load_tier("smoke"), 0, synthetic_h5, tmp_path / "runs",
                             device="cpu", on_step=remove_the_runs)
    assert not (tmp_path / "runs").exists()
