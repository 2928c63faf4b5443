"""The README's commands against the real CLI: every ``c3di`` line parses (options, arguments, choices),
and its Python loading example runs on a small dataset. The demo and tests themselves run elsewhere
(tests/test_demo.py, CI)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from causal3dident.cli import main
from causal3dident.convert import export
from causal3dident.testing import make_synthetic_dataset

README = Path(__file__).resolve().parents[1] / "README.md"
# Placeholders the README uses for values, and a value of the right type for each.
PLACEHOLDERS = {"N": "10", "FRAMES": "12", "S": "0", "W": "1", "i": "0", "k": "2", "$SLURM_ARRAY_TASK_ID": "0",
                "HEAD:6379": "127.0.0.1:6379"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def c3di_commands() -> list[list[str]]:
    """Every ``c3di`` invocation in the bash blocks, optional ``[...]`` parts included, placeholders filled."""
    commands = []
    for block in blocks("bash"):
        text = re.sub(r"\\\n\s*", " ", block)  # join continuation lines
        for line in text.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line.strip())  # comments
            for part in re.split(r"\s(?:\||&&)\s", line):
                part = re.sub(r"\[([^\]]*)\]", r"\1", part).replace("...", "").split(" > ")[0]  # no redirection
                words = [PLACEHOLDERS.get(w, w) for w in shlex.split(part)]
                words = [w.split("|")[0] if w.startswith("-") is False and "|" in w else w for w in words]
                if "c3di" in words:
                    commands.append(words[words.index("c3di") + 1:])
    return commands


def parse(args: list[str]) -> click.Command:
    """Resolve ``args`` to a leaf command and parse them as click would (no callback runs)."""
    command: click.Command = main
    parent = None
    while True:
        ctx = command.make_context("c3di", list(args), parent=parent, resilient_parsing=False)
        if not isinstance(command, click.Group):
            return command
        rest = [*ctx._protected_args, *ctx.args]
        _, sub, args = command.resolve_command(ctx, rest)
        command, parent = sub, ctx


def test_readme_has_the_two_setup_commands():
    first = blocks("bash")[0].strip().splitlines()
    assert first == ["bash scripts/setup.sh && .venv/bin/c3di demo --out demo", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (README.parent / ".ci" / "run").read_text()


COMMANDS = c3di_commands()


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[:3]) for a in COMMANDS])
def test_every_readme_command_parses(args):
    parse(args)


def test_the_readme_found_the_commands_it_documents():
    names = {" ".join(a[:2]) if a[0] in ("bench", "presets", "assets") else a[0] for a in COMMANDS}
    assert {"demo", "render", "merge", "latents", "traversals", "bench sweep", "bench leaderboard",
            "bench run", "bench data", "convert", "export", "card", "figures"} <= names


def test_readme_regenerates_the_committed_leaderboard_only_explicitly():
    """'c3di bench leaderboard' defaults to the runs folder; the committed file needs --out and --overwrite."""
    boards = [a for a in COMMANDS if a[:2] == ["bench", "leaderboard"]]
    committed = [a for a in boards if "benchmarks/LEADERBOARD.md" in a]
    assert committed and all(a[a.index("benchmarks/LEADERBOARD.md") - 1] == "--out" and "--overwrite" in a
                             for a in committed)
    ctx = parse(["bench", "leaderboard", "runs"]).make_context("leaderboard", ["runs"])
    assert ctx.params["out"] is None and ctx.params["overwrite"] is False


def test_readme_loading_example_runs(tmp_path, monkeypatch):
    data = tmp_path / "data"
    make_synthetic_dataset(data / "train.h5", n=35, resolution=32, pairs=("hues",), seed=0, balanced_classes=True)
    export(data / "train.h5", tmp_path / "release", fmt="original")
    (code,) = [b for b in blocks("python") if "Causal3DIdent(" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code.replace("path/to/Causal3DIdent", str(tmp_path / "release")), namespace)
    image, (cls, latents) = namespace["single"][0]
    assert tuple(image.shape) == (3, 32, 32) and latents.shape == (10,)
    for name in ("lt", "nearest", "da"):
        view1, view2, _ = namespace[name][0]
        assert tuple(view1.shape) == tuple(view2.shape)
    assert len(namespace["original"]) == 35
