"""Self-supervised methods (SimCLR, Barlow Twins) and the plug-in interface for users' own.

A method is an encoder plus a loss on the two views' final embeddings. Users plug in without
editing this package: ``register_method(name, factory)`` in Python, or on the command line
``--method module:function`` / ``--method path/to/file.py:function``, where ``function(tier)``
returns a ``Method``. A factory declares its parameters as keyword-only arguments with types and
defaults (``def mine(tier, *, margin: float = 1.0)``); their values come from the tier's
``method: {<name>: {...}}`` section and ``--set method.<param>=VALUE``, validated against those types.
An already-trained encoder plugs in with ``--encoder module:function`` (``function(tier)`` returns an
``nn.Module``) or ``--encoder checkpoint.pt`` (a checkpoint this harness wrote).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import torch
from torch import nn

from causal3dident.errors import ConfigError
from causal3dident.schema import SCHEMA_CONFIG, PositiveFloat, validate

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


MethodFactory = Callable[..., Method]
"""``factory(tier, **params)`` -> Method; ``params`` are the factory's keyword-only arguments."""


def simclr(tier: Tier, *, temperature: PositiveFloat = 1.0) -> Method:
    """SimCLR; ``temperature`` divides the cosine similarities (paper: 1.0)."""
    return SimCLR(temperature)


def barlowtwins(tier: Tier, *, off_diagonal_weight: PositiveFloat = 0.0051) -> Method:
    """Barlow Twins; ``off_diagonal_weight`` is the paper's lambda (0.0051)."""
    return BarlowTwins(off_diagonal_weight)


_REGISTRY: dict[str, MethodFactory] = {"simclr": simclr, "barlowtwins": barlowtwins}


def register_method(name: str, factory: MethodFactory) -> None:
    """Make ``--method NAME`` build ``factory(tier, **params)``."""
    _REGISTRY[name] = factory


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def _factory(spec: str) -> MethodFactory:
    return lookup_factory(spec, _REGISTRY, "method", "causal3dident.benchmarks.methods.Method")


def lookup_factory(spec: str, registry: dict[str, Any], kind: str, returns: str) -> Any:
    """The factory a ``--method`` names: a registered name, or ``module:function`` / ``file.py:function``."""
    if spec in registry:
        return registry[spec]
    if ":" in spec:
        return load_object(spec, "--method")
    raise ConfigError(f"unknown {kind} {spec!r}; use {', '.join(sorted(registry))} or module:function "
                      f"(a function(tier) returning a {returns})")


@functools.lru_cache(maxsize=None)
def params_schema(factory: MethodFactory) -> type[pydantic.BaseModel]:
    """A pydantic model of the parameters ``factory`` declares: its arguments after ``tier``, with their
    annotations (any type pydantic knows, constraints included) and defaults (none: required)."""
    try:
        hints = typing.get_type_hints(factory, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - whatever fails, the annotations cannot be resolved
        raise ConfigError(f"--method: cannot resolve the annotations of {factory!r} ({exc}); import the types "
                          f"they name in the plug-in's module") from None
    fields: dict[str, Any] = {}
    for param in list(inspect.signature(factory).parameters.values())[1:]:
        if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hints.get(param.name, Any), default)
    name = getattr(factory, "__name__", "method")
    return pydantic.create_model(f"{name}_params", __config__=SCHEMA_CONFIG, **fields)


def method_params(spec: str, tier: Tier) -> dict[str, Any]:
    """The validated parameters of method ``spec`` for ``tier`` (its ``method.<spec>`` section with the
    ``--set method.<param>`` overrides), defaults filled in."""
    schema = params_schema(_factory(spec))
    given = tier.method.get(spec, {})
    params = validate(schema, given, source=f"tier {tier.name!r}, --method {spec}",
                      hint="fix the tier's method section or the --set value", prefix=("method",))
    return {name: getattr(params, name) for name in schema.model_fields}


def resolve_method(spec: str, tier: Tier) -> Method:
    """A registered name, or ``module:function`` / ``file.py:function`` returning a Method for the tier,
    built with its validated parameters (:func:`method_params`)."""
    method = _factory(spec)(tier, **method_params(spec, tier))
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
