"""The typed schema of a temporal preset (``kind: temporal``): mechanisms that step from the previous frame.

pydantic checks shapes, types and ranges (causal3dident.schema); ``temporal.TemporalModel.from_dict`` then
checks what only the whole preset can tell: the names the goals read and that same-frame reads have no cycle.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Union

from pydantic import Field

from .latents import CLASS_NAMES, LATENT_NAMES
from .schema import Float, NonNegativeFloat, PositiveFloat, config_schema

HINT = "fix the preset (c3di presets show temporal_causal3dident prints a valid one)"
Probability = Annotated[Float, Field(ge=0, le=1)]
Goal = Union[Float, str]
"""A number, or an expression of ``prev_<latent>``, ``<latent>`` (same frame), ``class`` and ``prev_class``."""


@config_schema(source="temporal preset", hint=HINT)
class TemporalClassesSpec:
    """The object classes in the preset's own order (its index order), and the per-step switch probability."""

    names: tuple[Literal[CLASS_NAMES], ...] = CLASS_NAMES  # type: ignore[valid-type]
    switch_probability: Probability = 0.0


@config_schema(source="temporal preset", hint=HINT)
class StepSpec:
    """next = cur + rate * (goal - cur) + Normal(0, sigma); ``linear``: redrawn while outside ``domain``;
    ``angle``: the short way round and wrapped into [low, high)."""

    type: Literal["linear", "angle"]
    domain: tuple[Float, Float]
    sigma: NonNegativeFloat
    rate: Annotated[Float, Field(ge=0, le=1)] = 0.5
    goal: Union[Goal, dict[Literal[CLASS_NAMES], Goal]]  # type: ignore[valid-type]
    goal_class: Literal["class", "prev_class"] = "prev_class"
    """Which frame's class keys a per-class goal."""


@config_schema(source="temporal preset", hint=HINT)
class FixedSpec:
    """A latent fixed at ``value`` (never changed, even where its target column is set)."""

    type: Literal["constant"]
    value: Float


TemporalMechanismSpec = Annotated[Union[StepSpec, FixedSpec], Field(discriminator="type")]


@config_schema(source="temporal preset", hint=HINT)
class SoftChangeSpec:
    """One latent's soft intervention, overriding ``soft``'s defaults (an absent key keeps the default)."""

    shift: Float | None = None
    sigma_scale: NonNegativeFloat | None = None


@config_schema(source="temporal preset", hint=HINT)
class SoftSpec:
    """A soft intervention keeps the latent's mechanism and changes its parameters for that step:
    next = cur + rate * (goal + shift - cur) + Normal(0, sigma_scale * sigma), an angle's shifted goal wrapped into
    its domain; ``latents`` overrides ``shift`` or ``sigma_scale`` per latent."""

    shift: Float = 0.0
    sigma_scale: NonNegativeFloat = 1.0
    latents: dict[Literal[LATENT_NAMES], SoftChangeSpec] = dataclasses.field(  # type: ignore[valid-type]
        default_factory=dict)


@config_schema(source="temporal preset", hint=HINT)
class InterventionsSpec:
    """Each target column is intervened independently with ``probability`` per step; ``kind: perfect`` (the
    default): uniform on the latent's domain; ``kind: soft``: the latent's step with ``soft``'s parameters; the
    ``class`` column is a uniform class either way. ``groups`` share their first member's draw;
    ``exclude`` columns are never drawn; ``extra_columns`` are recorded target columns that are always 0.
    ``mode: single`` (CITRIS's --single_targets): of the columns drawn in a step, one chosen uniformly (a group
    counts once) is kept."""

    probability: Probability
    kind: Literal["perfect", "soft"] = "perfect"
    soft: SoftSpec | None = None
    mode: Literal["independent", "single"] = "independent"
    exclude: tuple[str, ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()
    extra_columns: tuple[str, ...] = ()


@config_schema(source="temporal preset", hint=HINT)
class TemporalPresetSpec:
    """A temporal preset file: the ten latents' step mechanisms, the classes and the interventions."""

    kind: Literal["temporal"]
    name: str = "temporal"
    description: str = ""
    reference: str | None = None
    classes: TemporalClassesSpec = dataclasses.field(default_factory=TemporalClassesSpec)
    latents: dict[Literal[LATENT_NAMES], TemporalMechanismSpec]  # type: ignore[valid-type]
    interventions: InterventionsSpec
    scene: Literal["citris", "causal3dident"] = "citris"
    """How the renderer reads the frames (``latents.SCENE_MAPPINGS``): ``citris``, the preset's values as CITRIS's
    render script does (positions in scene units, angles and hues in radians); ``causal3dident``, /latents (each
    domain mapped onto [-1, 1]) as Causal3DIdent's latents."""
