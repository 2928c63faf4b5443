"""Self-supervised methods (SimCLR, Barlow Twins) and the plug-in interface for users' own.

A method is an encoder plus a loss on the two views' final embeddings. Users plug in without
editing this package: ``register_method(name, factory)`` in Python, or on the command line
``--method module:function`` / ``--method path/to/file.py:function``, where ``function(tier)``
returns a ``Method``. An already-trained encoder plugs in with ``--encoder module:function``
(``function(tier)`` returns an ``nn.Module``) or ``--encoder checkpoint.pt`` (a checkpoint this
harness wrote).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from causal3dident.errors import ConfigError

from .losses import barlow_twins, infonce
from .models import build_encoder
from .tiers import Tier


class Method:
    """An encoder for a tier and a loss on the two views' final embeddings; subclass to add yours."""

    name = "method"

    def build_encoder(self, tier: Tier) -> nn.Module:
        """A fresh encoder returning ``(hidden, final)`` (or just ``final``) for normalised images."""
        return build_encoder(tier.model, tier.resolution)

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SimCLR(Method):
    """InfoNCE with cosine similarity (the paper's objective)."""

    name = "simclr"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return infonce(z1, z2, self.temperature)


class BarlowTwins(Method):
    """Barlow Twins on the final embedding (the paper's appendix)."""

    name = "barlowtwins"

    def __init__(self, off_diagonal_weight: float = 0.0051) -> None:
        self.off_diagonal_weight = off_diagonal_weight

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return barlow_twins(z1, z2, self.off_diagonal_weight)


MethodFactory = Callable[[Tier], Method]

_REGISTRY: dict[str, MethodFactory] = {
    "simclr": lambda tier: SimCLR(tier.train.temperature),
    "barlowtwins": lambda tier: BarlowTwins(tier.train.barlow_lambda),
}


def register_method(name: str, factory: MethodFactory) -> None:
    """Make ``--method NAME`` build ``factory(tier)``."""
    _REGISTRY[name] = factory


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def resolve_method(spec: str, tier: Tier) -> Method:
    """A registered name, or ``module:function`` / ``file.py:function`` returning a Method for the tier."""
    if spec in _REGISTRY:
        method = _REGISTRY[spec](tier)
    elif ":" in spec:
        method = load_object(spec, "--method")(tier)
    else:
        raise ConfigError(f"unknown method {spec!r}; use {', '.join(method_names())} or module:function "
                          f"(a function(tier) returning a causal3dident.benchmarks.methods.Method)")
    if not (callable(getattr(method, "loss", None)) and callable(getattr(method, "build_encoder", None))):
        raise ConfigError(f"--method {spec}: the function must return an object with build_encoder(tier) and "
                          f"loss(z1, z2), e.g. a subclass of causal3dident.benchmarks.methods.Method")
    return method


def load_object(spec: str, option: str) -> Any:
    """The attribute ``function`` of ``module:function`` or ``path/to/file.py:function``."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise ConfigError(f"{option} {spec}: give module:function or path/to/file.py:function")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ConfigError(f"{option} {spec}: no such file {path}; give an existing .py file")
            unique = f"c3di_plugin_{abs(hash(str(path.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(unique, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{option} {spec}: cannot import {module_name!r} ({exc}); make it importable "
                          f"(pip install it or add it to PYTHONPATH) or pass path/to/file.py:function") from None
    except SyntaxError as exc:
        raise ConfigError(f"{option} {spec}: {exc.filename}, line {exc.lineno}: {exc.msg}; fix the syntax of that "
                          f"file") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{option} {spec}: {module_name!r} has no attribute {attr!r}; "
                          f"check the function name") from None
