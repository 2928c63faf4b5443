"""Installs that fit the user: only the render extra binds Python 3.11 and numpy<2 (through bpy), and rendering
without bpy is one line saying what to install, before any work."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from causal3dident.cli import main

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_only_bpy_limits_python_and_numpy() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    numpy = [d for d in project["dependencies"] if d.startswith("numpy")]
    assert numpy == ["numpy>=1.26"]  # numpy 2 allowed for loading and the benchmark
    extras = project["optional-dependencies"]
    assert "bpy>=5.0,<5.1; python_version == '3.11'" in extras["render"]
    for name, requirements in extras.items():  # no other extra pins numpy or Python unconditionally
        for requirement in requirements:
            assert not re.match(r"numpy\b.*<\s*2", requirement), (name, requirement)
            if requirement.startswith("pyarrow") and "<26" in requirement:
                assert "python_version == '3.11'" in requirement  # only where bpy's numpy<2 can be
    classifiers = project["classifiers"]
    assert "Programming Language :: Python :: 3.13" in classifiers


@pytest.mark.parametrize("args", [["render", "--n", "7"], ["preview"], ["traversals"]])
@pytest.mark.parametrize("other_python", [False, True])
def test_rendering_without_bpy_is_one_line_naming_the_install(args: list[str], other_python: bool, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from causal3dident.render import devices

    monkeypatch.setitem(sys.modules, "bpy", None)  # as if bpy were not installed
    if other_python:
        monkeypatch.setattr(devices, "BPY_PYTHON", (3, 10))  # as if this Python had no bpy 5.0 at all
    out = tmp_path / ("x.h5" if args[0] == "render" else "x.png")
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "pip install 'causal3dident[render]'" in result.output
    not_bpys_python = other_python or sys.version_info[:2] != (3, 11)  # e.g. this suite run on Python 3.12
    assert ("exists for Python 3.11 only" in result.output) == not_bpys_python
    assert list(tmp_path.iterdir()) == []
