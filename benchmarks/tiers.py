"""Benchmark tiers (smoke, mini, gpu, paper): model, training and evaluation sizes, from ``tiers.yaml``.

Each section is a typed schema (causal3dident.schema): unknown keys, wrong types and out-of-range values
are one-line ConfigErrors naming the key path. A run may override single values
(``--set train.steps=100``, ``--set method.temperature=0.5``); the resolved tier is recorded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import asdict, field
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field

from causal3dident.errors import ConfigError
from causal3dident.render.config import Quality
from causal3dident.schema import (Float, Int, NonNegativeFloat, NonNegativeInt, PositiveInt, config_schema,
                                  parse_assignment, set_path, validate)

HINT = "fix tiers.yaml or the --set value"
ENCODERS = ("resnet18", "resnet10", "convnet")
POOLS = ("avg", "flatten")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
Resolution = Annotated[Int, Field(ge=8, le=8192)]


@config_schema(source="tier model", hint=HINT)
class ModelConfig:
    """Encoder architecture: backbone -> hidden_dim -> LeakyReLU -> content_dim."""

    encoder: Literal["resnet18", "resnet10", "convnet"] = "resnet18"
    widths: Annotated[tuple[PositiveInt, ...], Field(min_length=1)] = (32, 64, 128, 256)
    pool: Literal["avg", "flatten"] = "avg"
    hidden_dim: PositiveInt = 100
    content_dim: PositiveInt = 8


@config_schema(source="tier train", hint=HINT)
class TrainConfig:
    """Optimisation: Adam, batch size, steps, schedule, checkpoint cadence (the loss's parameters: ``method``)."""

    batch_size: Annotated[Int, Field(ge=2)] = 512
    steps: PositiveInt = 200_000
    lr: Annotated[Float, Field(gt=0)] = 1e-4
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: NonNegativeInt = 0
    weight_decay: NonNegativeFloat = 0.0
    max_samples: PositiveInt | None = None
    checkpoint_every: PositiveInt = 5000
    log_every: PositiveInt = 500
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the encoder's forward (pays off on a GPU over many steps)


@config_schema(source="tier eval", hint=HINT)
class EvalConfig:
    """Probe protocol: held-out samples, the fit/score split, kernel ridge size limits."""

    samples: Annotated[Int, Field(ge=8)] = 25_000
    fit_fraction: Annotated[Float, Field(gt=0, lt=1)] = 0.5
    kernel_exact_max: PositiveInt = 4096
    nystroem_components: PositiveInt = 2048
    batch_size: PositiveInt = 1024


@config_schema(source="tier data", hint=HINT)
class DataConfig:
    """The dataset a tier renders (``c3di bench data``): train anchors with LT pairs, and test samples."""

    train: PositiveInt
    test: PositiveInt
    resolution: Resolution
    seed: NonNegativeInt = 0
    test_seed: NonNegativeInt = 1
    quality: Quality = "fast"
    pairs: tuple[str, ...] = ()
    preset: str = "causal3dident"


def _none_if_empty(value: Any) -> Any:
    return None if isinstance(value, Mapping) and not value else value


@config_schema(source="tier", hint=HINT)
class Tier:
    """A named benchmark size; ``data`` describes the dataset the tier expects (for documentation and sweeps);
    ``method`` maps a method name (or ``module:function``) to its parameters (checked by the method)."""

    name: str
    description: str = ""
    resolution: Resolution
    seeds: Annotated[tuple[NonNegativeInt, ...], Field(min_length=1)] = (0,)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: dict[str, dict[str, Any]] = field(default_factory=dict)
    provisional: bool = False
    data: Annotated[DataConfig | None, BeforeValidator(_none_if_empty)] = None
    overrides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tier_names() -> list[str]:
    return list(_raw_tiers())


def _raw_tiers() -> dict[str, Any]:
    text = resources.files("causal3dident.benchmarks").joinpath("tiers.yaml").read_text()
    return yaml.safe_load(text)["tiers"]


def load_tier(name: str, overrides: Iterable[str] = (), method: str | None = None) -> Tier:
    """The shipped tier ``name`` with ``section.key=value`` overrides applied and validated.

    ``method`` is the method of the run: ``method.<param>=VALUE`` overrides set its parameters.
    """
    raw = _raw_tiers()
    if name not in raw:
        raise ConfigError(f"unknown tier {name!r}; choose one of {', '.join(raw)}")
    return tier_from_dict(name, raw[name], overrides, method)


def tier_from_dict(name: str, spec: Mapping[str, Any], overrides: Iterable[str] = (),
                   method: str | None = None) -> Tier:
    """Build and validate a tier from a mapping shaped like one entry of ``tiers.yaml`` (or a recorded tier)."""
    overrides = tuple(overrides)
    data = copy.deepcopy(dict(spec))
    for item in overrides:
        path, value = parse_assignment(item)
        set_path(data, _override_path(path, method, item), value, item)
    data.update(name=name, overrides=(*data.get("overrides", ()), *overrides))
    return validate(Tier, data, source=f"tier {name!r}", hint=HINT)


def _override_path(path: list[str], method: str | None, item: str) -> list[str]:
    """``method.<param>`` -> ``method.<the run's method>.<param>``; other paths unchanged (but not the
    tier's name and overrides, which the run sets)."""
    if path[0] in ("name", "overrides"):
        raise ConfigError(f"--set {item!r}: {path[0]} is set by the run (--tier, --set), not by --set")
    if path[0] != "method":
        return path
    if len(path) == 2:
        if method is None:
            raise ConfigError(f"--set {item!r}: no method to set it for; write method.<name>.{path[1]}=..., "
                              f"or drop it (an --encoder run trains nothing)")
        return ["method", method, path[1]]
    if len(path) == 3 and method is not None and path[1] != method:
        raise ConfigError(f"--set {item!r} sets a parameter of {path[1]!r}, but this run's method is {method!r}; "
                          f"write method.{path[2]}=...")
    return path


def upgrade_recorded(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A tier recorded in a run.json of an earlier version, in today's shape (loss parameters under ``method``)."""
    spec = dict(spec)
    train = dict(spec.get("train", {}))
    method = {k: dict(v) for k, v in spec.get("method", {}).items()}
    if "temperature" in train:
        method.setdefault("simclr", {}).setdefault("temperature", train.pop("temperature"))
    if "barlow_lambda" in train:
        method.setdefault("barlowtwins", {}).setdefault("off_diagonal_weight", train.pop("barlow_lambda"))
    return {**spec, "train": train, "method": method}
