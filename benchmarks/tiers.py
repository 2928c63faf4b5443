"""Benchmark tiers (smoke, mini, gpu, paper): model, training and evaluation sizes, from ``tiers.yaml``.

A run may override single values (``--set train.steps=100``); the resolved tier is recorded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import yaml

from causal3dident.errors import ConfigError

ENCODERS = ("resnet18", "convnet")
POOLS = ("avg", "flatten")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ModelConfig:
    """Encoder architecture: backbone -> hidden_dim -> LeakyReLU -> content_dim."""

    encoder: str = "resnet18"
    widths: tuple[int, ...] = (32, 64, 128, 256)
    pool: str = "avg"
    hidden_dim: int = 100
    content_dim: int = 8


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: Adam, batch size, steps, loss hyper-parameters, checkpoint cadence."""

    batch_size: int = 512
    steps: int = 200_000
    lr: float = 1e-4
    temperature: float = 1.0
    barlow_lambda: float = 0.0051
    schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_samples: int | None = None
    checkpoint_every: int = 5000
    log_every: int = 500
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; bf16 on CPU pays off with AMX
    compile: bool = False  # torch.compile the encoder's forward (pays off on a GPU over many steps)


@dataclass(frozen=True)
class EvalConfig:
    """Probe protocol: held-out samples, the fit/score split, kernel ridge size limits."""

    samples: int = 25_000
    fit_fraction: float = 0.5
    kernel_exact_max: int = 4096
    nystroem_components: int = 2048
    batch_size: int = 1024


@dataclass(frozen=True)
class Tier:
    """A named benchmark size; ``data`` describes the dataset the tier expects (for documentation and sweeps)."""

    name: str
    description: str
    resolution: int
    seeds: tuple[int, ...]
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    provisional: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tier_names() -> list[str]:
    return list(_raw_tiers())


def _raw_tiers() -> dict[str, Any]:
    text = resources.files("causal3dident.benchmarks").joinpath("tiers.yaml").read_text()
    return yaml.safe_load(text)["tiers"]


def load_tier(name: str, overrides: Iterable[str] = ()) -> Tier:
    """The shipped tier ``name`` with ``section.key=value`` overrides applied and validated."""
    raw = _raw_tiers()
    if name not in raw:
        raise ConfigError(f"unknown tier {name!r}; choose one of {', '.join(raw)}")
    return tier_from_dict(name, raw[name], overrides)


def tier_from_dict(name: str, spec: Mapping[str, Any], overrides: Iterable[str] = ()) -> Tier:
    """Build and validate a tier from a mapping shaped like one entry of ``tiers.yaml``."""
    spec = copy.deepcopy(dict(spec))
    overrides = tuple(overrides)
    for item in overrides:
        _apply_override(spec, item)
    model = dict(spec.get("model", {}))
    if "widths" in model:
        model["widths"] = tuple(int(w) for w in model["widths"])
    try:
        tier = Tier(
            name=name, description=str(spec.get("description", "")), resolution=int(spec["resolution"]),
            seeds=tuple(int(s) for s in spec.get("seeds", [0])),
            model=ModelConfig(**model),
            train=TrainConfig(**spec.get("train", {})), eval=EvalConfig(**spec.get("eval", {})),
            provisional=bool(spec.get("provisional", False)), data=dict(spec.get("data", {})), overrides=overrides)
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"tier {name!r} is malformed ({exc}); compare it with benchmarks/tiers.yaml") from None
    _validate(tier)
    return tier


def _apply_override(spec: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: write section.key=value, e.g. train.steps=100")
    parts = key.strip().split(".")
    node = spec
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def _validate(tier: Tier) -> None:
    checks = [
        (tier.model.encoder in ENCODERS, f"model.encoder must be one of {', '.join(ENCODERS)}"),
        (tier.model.pool in POOLS, f"model.pool must be one of {', '.join(POOLS)}"),
        (tier.train.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}"),
        (tier.train.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}"),
        (isinstance(tier.train.compile, bool), "train.compile must be true or false"),
        (tier.resolution >= 8, "resolution must be at least 8 pixels"),
        (tier.train.batch_size >= 2, "train.batch_size must be at least 2"),
        (tier.train.steps >= 1 and tier.train.checkpoint_every >= 1, "train.steps and checkpoint_every must be >= 1"),
        (tier.train.temperature > 0 and tier.train.lr > 0, "train.temperature and train.lr must be > 0"),
        (0 < tier.eval.fit_fraction < 1, "eval.fit_fraction must lie strictly between 0 and 1"),
        (tier.eval.samples >= 8, "eval.samples must be at least 8"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"tier {tier.name!r}: {message} (fix tiers.yaml or the --set value)")
