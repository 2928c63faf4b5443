"""The typed schema of an SCM preset file (``causal3dident/presets/*.yaml`` and ``--preset FILE``).

pydantic checks the shape, the types and the ranges (causal3dident.schema); ``scm.SCM.from_dict`` then
checks what only the whole preset can tell: the parents the means use, and that the graph has no cycle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from .latents import CLASS_NAMES, LATENT_NAMES, NUM_CLASSES
from .schema import Float, NonNegativeFloat, PositiveFloat, config_schema

HINT = "fix the preset (c3di presets show NAME prints a valid one)"
ClassName = Literal[CLASS_NAMES]  # type: ignore[valid-type]
ParentName = Literal[("class", *LATENT_NAMES)]  # type: ignore[valid-type]
Bound = Annotated[Float, Field(ge=-1, le=1)]
Mean = Union[Float, str]
"""A number, or an expression of the parents (causal3dident.expressions)."""


def _class_names(names: tuple[str, ...]) -> tuple[str, ...]:
    if list(names) != list(CLASS_NAMES):
        raise ValueError(f"[{', '.join(CLASS_NAMES)}] (the seven meshes, in this order)")
    return names


def _weights_list(weights: Any) -> Any:
    """A mapping class -> weight as the list of seven weights (classes it omits get 0)."""
    if isinstance(weights, Mapping):
        if unknown := [str(k) for k in weights if k not in CLASS_NAMES]:
            raise ValueError(f"seven weights or a mapping of class names ({', '.join(CLASS_NAMES)}) to weights, "
                             f"not {', '.join(unknown)}")
        return [weights.get(c, 0.0) for c in CLASS_NAMES]
    return weights


def _positive_sum(weights: tuple[float, ...]) -> tuple[float, ...]:
    if sum(weights) <= 0:
        raise ValueError("weights with a positive sum")
    return weights


@config_schema(source="preset", hint=HINT)
class ClassesSpec:
    """The seven classes (fixed names) and their sampling weights (a list of seven, or class -> weight)."""

    names: Annotated[tuple[str, ...], AfterValidator(_class_names)] = CLASS_NAMES
    weights: Annotated[tuple[NonNegativeFloat, ...], Field(min_length=NUM_CLASSES, max_length=NUM_CLASSES),
                       BeforeValidator(_weights_list), AfterValidator(_positive_sum)] = (1.0,) * NUM_CLASSES


class _Range:
    """``low`` < ``high`` within [-1, 1] (checked where both are numbers; expressions are checked when drawn)."""

    @model_validator(mode="after")
    def _ordered(self) -> Any:
        low, high = self.low, self.high  # type: ignore[attr-defined]
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and not low < high:
            raise ValueError(f"a range with low < high, got low={low}, high={high}")
        return self


@config_schema(source="preset", hint=HINT)
class UniformSpec(_Range):
    """Uniform on [low, high]; ``low`` and ``high`` may be expressions of ``parents`` (a shifted window,
    e.g. Multimodal3DIdent's position-dependent hue)."""

    distribution: Literal["uniform"]
    low: Union[Bound, str] = -1.0
    high: Union[Bound, str] = 1.0
    parents: tuple[ParentName, ...] | None = None


def _discrete_weights(spec: Any) -> Any:
    if spec.weights is not None and len(spec.weights) != len(spec.values):
        raise ValueError(f"one weight per value ({len(spec.values)}), got {len(spec.weights)}")
    if spec.weights is not None and sum(spec.weights) <= 0:
        raise ValueError("weights with a positive sum")
    if len(set(spec.values)) != len(spec.values):
        raise ValueError("distinct values")
    return spec


@config_schema(source="preset", hint=HINT)
class DiscreteSpec:
    """A root latent taking one of ``values`` (e.g. grid positions -1, 0, 1) with ``weights`` (default: equal)."""

    distribution: Literal["discrete"]
    values: Annotated[tuple[Bound, ...], Field(min_length=1)]
    weights: tuple[NonNegativeFloat, ...] | None = None

    _check = model_validator(mode="after")(_discrete_weights)


@config_schema(source="preset", hint=HINT)
class TruncnormSpec(_Range):
    """Normal(mean, sigma) truncated to [low, high]; ``mean`` may depend on the parents, per class."""

    distribution: Literal["truncnorm"]
    sigma: PositiveFloat
    low: Bound = -1.0
    high: Bound = 1.0
    parents: tuple[ParentName, ...] | None = None
    mean: Union[Mean, dict[Literal[(*CLASS_NAMES, "default")], Mean]] = 0.0  # type: ignore[misc]


@config_schema(source="preset", hint=HINT)
class ConstantSpec:
    """A latent fixed at ``value``."""

    distribution: Literal["constant"]
    value: Bound


MechanismSpec = Annotated[Union[UniformSpec, TruncnormSpec, ConstantSpec, DiscreteSpec],
                          Field(discriminator="distribution")]

LatentsSpec = config_schema(type("LatentsSpec", (), {"__annotations__": dict.fromkeys(LATENT_NAMES, MechanismSpec),
                                                      "__module__": __name__}), source="preset", hint=HINT)
"""One mechanism per latent: all ten, no others."""


SCENES = ("causal3dident", "multimodal3dident")
"""How the raw latents become a scene (and, for multimodal3dident, a sentence): docs/multimodal.md."""
DEFAULT_SCENE = SCENES[0]


@config_schema(source="preset", hint=HINT)
class PresetSpec:
    """A preset file: name, description, reference, scene, classes and the ten latents' mechanisms."""

    name: str = "preset"
    description: str = ""
    reference: str | None = None
    scene: Literal[SCENES] = DEFAULT_SCENE  # type: ignore[valid-type]
    classes: ClassesSpec = dataclasses.field(default_factory=ClassesSpec)
    latents: LatentsSpec  # type: ignore[valid-type]
