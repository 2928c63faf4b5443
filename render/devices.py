"""Which Cycles devices exist: probed in a subprocess, because a failing GPU driver can abort a process.

``--device auto`` picks OptiX, else CUDA, else HIP, else the CPU; a GPU kind means one worker per
GPU of that kind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass

from ..errors import ConfigError, MissingDependencyError

GPU_KINDS = ("OPTIX", "CUDA", "HIP")
"""Cycles GPU backends we drive, in the order ``auto`` prefers them."""
DEVICE_CHOICES = ("auto", "cpu", "optix", "cuda", "hip")
PROBE_TIMEOUT_S = 120

_PROBE = """
import json, bpy
prefs = bpy.context.preferences.addons["cycles"].preferences
found = []
for kind in %r:
    try:
        prefs.compute_device_type = kind
        prefs.refresh_devices()
    except Exception:
        continue
    found += [{"kind": kind, "id": d.id, "name": d.name} for d in prefs.devices if d.type == kind]
print("C3DI-DEVICES " + json.dumps(found))
"""


BPY_PYTHON = (3, 11)
"""The Python that bpy 5.0 (the render extra) exists for; its wheels also need numpy<2."""


def require_bpy() -> None:
    """A one-line ``MissingDependencyError`` saying what to install when rendering here cannot work: bpy is not
    installed, or this Python has no bpy 5.0 at all (it exists for Python 3.11 only). Imports nothing."""
    try:
        if importlib.util.find_spec("bpy") is not None:
            return
    except (ImportError, ValueError):  # sys.modules["bpy"] = None (import blocked), or a broken install
        pass
    if sys.version_info[:2] != BPY_PYTHON:
        raise MissingDependencyError(
            f"rendering needs Blender's bpy 5.0, which exists for Python 3.11 only (this is Python "
            f"{platform.python_version()}): render in a Python 3.11 environment with pip install "
            f"'causal3dident[render]' (or --backend ray on a cluster that has it); loading data, the benchmark "
            f"and every other command work here")
    raise MissingDependencyError("rendering needs Blender's bpy 5.0, which is not installed: pip install "
                                 "'causal3dident[render]' (it brings bpy and, as bpy needs, numpy<2)")


@dataclass(frozen=True)
class DeviceSpec:
    """One render device: ``kind`` CPU or a GPU backend, with Blender's device id and name."""

    kind: str
    id: str = ""
    name: str = "CPU"


CPU = DeviceSpec("CPU")


def probe_gpus(timeout: float = PROBE_TIMEOUT_S) -> list[DeviceSpec]:
    """GPUs Cycles can use here; empty when none (or when the probe crashes or hangs)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        result = subprocess.run([sys.executable, "-c", _PROBE % (GPU_KINDS,)], capture_output=True, text=True,
                                timeout=timeout, env=env)
    except (subprocess.TimeoutExpired, OSError):
        return []
    for line in result.stdout.splitlines():
        if line.startswith("C3DI-DEVICES "):
            return [DeviceSpec(d["kind"], d["id"], d["name"]) for d in json.loads(line.split(" ", 1)[1])]
    return []


def select_devices(choice: str, gpus: list[DeviceSpec] | None = None) -> list[DeviceSpec]:
    """The devices to render on for ``--device``: ``[CPU]`` or every GPU of one backend."""
    choice = choice.lower()
    if choice not in DEVICE_CHOICES:
        raise ConfigError(f"unknown --device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "cpu":
        return [CPU]
    gpus = probe_gpus() if gpus is None else gpus
    kinds = GPU_KINDS if choice == "auto" else (choice.upper(),)
    for kind in kinds:
        chosen = [g for g in gpus if g.kind == kind]
        if chosen:
            return chosen
    if choice == "auto":
        return [CPU]
    seen = ", ".join(sorted({g.kind.lower() for g in gpus})) or "none"
    raise ConfigError(f"--device {choice}: Blender sees no {choice.upper()} GPU here (GPU backends found: {seen}); "
                      f"use --device auto or --device cpu")
