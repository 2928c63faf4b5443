"""Importing the scripts of benchmarks/perf/ (not a package) in tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PERF = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"


def load_perf_script(name: str) -> ModuleType:
    """benchmarks/perf/<name>.py as module ``name``, imported once (its dataclasses look the module up)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PERF / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
