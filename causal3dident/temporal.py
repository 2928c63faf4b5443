"""Temporal latent models: every latent steps from its previous frame towards a goal, with interventions.

A temporal preset (``kind: temporal``; schema in ``temporal_schema``) gives each latent a mechanism

    next = cur + rate * (goal - cur) + Normal(0, sigma)

where ``goal`` is an expression of the previous frame (``prev_<latent>``, ``prev_class``) and, for
instantaneous effects, of same-frame parents (``<latent>``, ``class``), evaluated in a fixed topological
order. ``linear`` latents are redrawn (fresh noise, same mean) while outside their domain; ``angle``
latents move the short way round and wrap into [low, high). At every step each target column is
intervened with a probability (groups share one draw); an intervened latent takes a value uniform on its
domain (perfect) or steps with a shifted goal and scaled noise (soft), an intervened class a uniform
class, and the class also switches with ``switch_probability``.
This is the transition of CITRIS's Temporal Causal3DIdent (Lippe et al., ICML 2022), ``_take_step`` and
``perform_time_step`` in data_generation/temporal_causal3dident/data_generation_causal3dident.py.

Every draw of frame t comes from counter-based noise (``causal3dident.noise``) indexed by t, so frames
[a, b) sampled from the state at a - 1 equal the same frames of one run from frame 0, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtri

from . import noise
from .errors import ConfigError
from .expressions import Expression
from .latents import CLASS_NAMES, LATENT_NAMES
from .schema import validate
from .scm import dependency_order
from .temporal_schema import HINT, FixedSpec, StepSpec, TemporalPresetSpec

STREAMS = {
    "values": "temporal/values",      # frame 0's state and intervention values, one uniform per latent
    "noise": "temporal/noise",        # the step noise, one standard normal per latent (inverse CDF); soft steps too
    "targets": "temporal/targets",    # one uniform per target column: intervened where < probability
    "switch": "temporal/switch",      # the class switches where < switch_probability
    "class": "temporal/class",        # the new class (frame 0, a switch or an intervention)
    "redraw": "temporal/redraw",      # key (latent index, attempt): the noise of a redraw at frame t
    "single": "temporal/single",      # mode single: which of the drawn target columns is kept
}
"""Noise stream names; frame t reads index t of each."""
MAX_REDRAWS = 10000
"""Redraws of a linear latent before giving up (its mean lies far outside its domain)."""
CLASS_TARGET = "class"


@dataclasses.dataclass(frozen=True)
class Frames:
    """Frames [start, stop) of a sequence: latents float64 [n, 10] (LATENT_NAMES order, the preset's units),
    classes int64 [n] (indices into the model's ``class_names``), targets uint8 [n, T] (row t: the columns
    intervened in the step t-1 -> t; frame 0's row is all 0)."""

    start: int
    latents: np.ndarray
    classes: np.ndarray
    targets: np.ndarray

    def state(self, t: int) -> tuple[np.ndarray, int]:
        """The state (latents, class) at absolute frame ``t``: what ``sample`` continues from."""
        i = t - self.start
        return self.latents[i].copy(), int(self.classes[i])


@dataclasses.dataclass(frozen=True)
class _Mechanism:
    name: str
    spec: StepSpec | FixedSpec
    goals: Expression | dict[str, Expression] | None

    def reads(self) -> frozenset[str]:
        if self.goals is None:
            return frozenset()
        exprs = self.goals.values() if isinstance(self.goals, dict) else [self.goals]
        names = frozenset().union(*(e.names for e in exprs))
        if isinstance(self.goals, dict):
            names |= {self.spec.goal_class}  # type: ignore[union-attr]
        return names


class TemporalModel:
    """A temporal preset, validated: ``sample(seed, start, stop, state)`` draws frames."""

    def __init__(self, spec: TemporalPresetSpec, data: Mapping[str, Any], source: str) -> None:
        self.spec, self._data, self.source = spec, dict(data), source
        self.name, self.description = spec.name, spec.description
        self.class_names: tuple[str, ...] = tuple(spec.classes.names)
        if len(set(self.class_names)) != len(self.class_names) or not self.class_names:
            raise ConfigError(f"{source}: classes.names must list distinct classes; {HINT}")
        missing = [n for n in LATENT_NAMES if n not in spec.latents]
        if missing:
            raise ConfigError(f"{source}: latents {', '.join(missing)} have no mechanism; give all ten "
                              f"({', '.join(LATENT_NAMES)}); {HINT}")
        self.mechanisms = {n: self._mechanism(n, spec.latents[n]) for n in LATENT_NAMES}
        self.order = self._order()
        iv = spec.interventions
        self.target_names: tuple[str, ...] = (*LATENT_NAMES, CLASS_TARGET, *iv.extra_columns)
        for name in (*iv.exclude, *(m for g in iv.groups for m in g)):
            if name not in self.target_names:
                raise ConfigError(f"{source}: interventions name {name!r}, which is not a target column "
                                  f"({', '.join(self.target_names)}); {HINT}")
        if len(set(self.target_names)) != len(self.target_names):
            raise ConfigError(f"{source}: interventions.extra_columns repeat a column name; {HINT}")
        self.probability = float(iv.probability)
        self._col = {n: i for i, n in enumerate(self.target_names)}
        self.soft = self._soft_parameters()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "temporal preset") -> TemporalModel:
        spec = validate(TemporalPresetSpec, dict(data), source=source, hint=HINT)
        return cls(spec, data, source)

    def to_dict(self) -> dict[str, Any]:
        """The preset mapping as read (JSON-able): recorded in a dataset's config to regenerate it."""
        return dict(self._data)

    def _mechanism(self, name: str, spec: StepSpec | FixedSpec) -> _Mechanism:
        where = f"{self.source}: latents.{name}"
        if isinstance(spec, FixedSpec):
            return _Mechanism(name, spec, None)
        low, high = spec.domain
        if not low < high:
            raise ConfigError(f"{where}.domain must be [low, high] with low < high, got {list(spec.domain)}; {HINT}")
        if isinstance(spec.goal, dict):
            unknown = [c for c in spec.goal if c not in self.class_names]
            absent = [c for c in self.class_names if c not in spec.goal]
            if unknown or absent:
                problem = (f"; missing {', '.join(absent)}" if absent else "") + \
                    (f"; unknown {', '.join(unknown)}" if unknown else "")
                raise ConfigError(f"{where}.goal: a per-class goal needs exactly the classes "
                                  f"{', '.join(self.class_names)}{problem}; {HINT}")
            goals: Expression | dict[str, Expression] = {
                c: Expression(g, f"{where}.goal.{c}") for c, g in spec.goal.items()}
        else:
            goals = Expression(spec.goal, f"{where}.goal")
        mechanism = _Mechanism(name, spec, goals)
        allowed = {*LATENT_NAMES, *(f"prev_{n}" for n in LATENT_NAMES), "class", "prev_class"}
        bad = sorted(mechanism.reads() - allowed)
        if bad:
            raise ConfigError(f"{where}.goal reads {', '.join(bad)}; a goal reads prev_<latent>, prev_class "
                              f"(the previous frame) and <latent>, class (the same frame); {HINT}")
        return mechanism

    def _soft_parameters(self) -> dict[str, tuple[float, float]] | None:
        """Per intervenable step latent, its soft intervention's (shift, sigma_scale); None for perfect ones."""
        iv, where = self.spec.interventions, f"{self.source}: interventions"
        if iv.kind == "perfect":
            if iv.soft is not None:
                raise ConfigError(f"{where}.soft is given but interventions.kind is perfect; set kind: soft or drop "
                                  f"soft; {HINT}")
            return None
        if iv.soft is None:
            raise ConfigError(f"{where}.kind soft needs interventions.soft, e.g. soft: {{shift: 1.0, "
                              f"sigma_scale: 2.0}}; {HINT}")
        steps = [n for n in LATENT_NAMES if isinstance(self.mechanisms[n].spec, StepSpec) and n not in iv.exclude]
        for name in iv.soft.latents:
            if name not in steps:
                raise ConfigError(f"{where}.soft.latents.{name}: {name} is constant or excluded, so it is never "
                                  f"softly intervened; drop it; {HINT}")
        out = {}
        for name in steps:
            own = iv.soft.latents.get(name)
            shift = iv.soft.shift if own is None or own.shift is None else own.shift
            scale = iv.soft.sigma_scale if own is None or own.sigma_scale is None else own.sigma_scale
            if shift == 0 and scale == 1:
                raise ConfigError(f"{where}.soft leaves {name}'s mechanism unchanged (shift 0, sigma_scale 1); give "
                                  f"it a shift or sigma_scale, or exclude it; {HINT}")
            out[name] = (float(shift), float(scale))
        return out

    def _order(self) -> tuple[str, ...]:
        """Latents in an order where same-frame parents come first (a cycle is a ConfigError)."""
        return dependency_order(
            lambda name: sorted(self.mechanisms[name].reads() & set(LATENT_NAMES)),
            lambda cycle: ConfigError(f"{self.source}: same-frame goals form a cycle ({cycle}); read one of them "
                                      f"from the previous frame (prev_<latent>); {HINT}"))

    # -- sampling ----------------------------------------------------------------------------------
    def sample(self, seed: int, start: int, stop: int,
               state: tuple[Sequence[float], int] | None = None) -> Frames:
        """Frames [start, stop) of the sequence of ``seed``; ``state``: (latents, class) at frame start - 1
        (``Frames.state``), required unless start is 0."""
        if not 0 <= start <= stop:
            raise ValueError(f"invalid frame range [{start}, {stop})")
        if (state is None) != (start == 0):
            raise ValueError("pass the state at frame start - 1 exactly when start > 0")
        n, L, T = stop - start, len(LATENT_NAMES), len(self.target_names)
        values = noise.uniforms(seed, STREAMS["values"], start, stop, L)
        normals = ndtri(np.maximum(noise.uniforms(seed, STREAMS["noise"], start, stop, L), 2.0 ** -54))
        targets = self.targets(seed, start, stop)
        switch = noise.uniforms(seed, STREAMS["switch"], start, stop, 1)[0]
        K = len(self.class_names)
        new_class = np.minimum((noise.uniforms(seed, STREAMS["class"], start, stop, 1)[0] * K).astype(np.int64), K - 1)
        latents = np.empty((n, L), dtype=np.float64)
        classes = np.empty(n, dtype=np.int64)
        prev: np.ndarray | None = None if state is None else np.asarray(state[0], dtype=np.float64)
        prev_class = None if state is None else int(state[1])
        class_col = self._col[CLASS_TARGET]
        for i in range(n):
            t = start + i
            if prev is None:  # frame 0: every latent uniform on its domain, a uniform class
                classes[i] = new_class[i]
                latents[i] = [self._uniform(name, values[j, i]) for j, name in enumerate(LATENT_NAMES)]
            else:
                switched = targets[i, class_col] or switch[i] < self.spec.classes.switch_probability
                classes[i] = new_class[i] if switched else prev_class
                latents[i] = self._step(seed, t, prev, int(prev_class), int(classes[i]), targets[i],
                                        values[:, i], normals[:, i])
            prev, prev_class = latents[i], int(classes[i])
        return Frames(start, latents, classes, targets)

    def targets(self, seed: int, start: int, stop: int) -> np.ndarray:
        """Intervention targets uint8 [stop - start, T] of frames [start, stop) (frame 0: none)."""
        u = noise.uniforms(seed, STREAMS["targets"], start, stop, len(self.target_names)).T
        mask = u < self.probability
        iv = self.spec.interventions
        for name in (*iv.exclude, *iv.extra_columns):
            mask[:, self._col[name]] = False
        if iv.mode == "single" and self.probability < 1:  # CITRIS: the argmax of uniform scores of the drawn ones
            for group in iv.groups:
                for member in group[1:]:
                    mask[:, self._col[member]] = False
            scores = mask * noise.uniforms(seed, STREAMS["single"], start, stop, len(self.target_names)).T
            mask &= np.arange(mask.shape[1])[None, :] == scores.argmax(axis=1)[:, None]
        for group in iv.groups:
            for member in group[1:]:
                mask[:, self._col[member]] = mask[:, self._col[group[0]]]
        if start == 0 and stop > 0:
            mask[0] = False
        return mask.astype(np.uint8)

    def _uniform(self, name: str, u: float) -> float:
        spec = self.mechanisms[name].spec
        if isinstance(spec, FixedSpec):
            return float(spec.value)
        low, high = spec.domain
        return low + u * (high - low)

    def _step(self, seed: int, t: int, prev: np.ndarray, prev_class: int, cls: int, targets: np.ndarray,
              values: np.ndarray, normals: np.ndarray) -> np.ndarray:
        scope: dict[str, np.ndarray] = {f"prev_{n}": prev[j:j + 1] for j, n in enumerate(LATENT_NAMES)}
        scope["prev_class"] = np.array([float(prev_class)])
        scope["class"] = np.array([float(cls)])
        out = np.empty(len(LATENT_NAMES), dtype=np.float64)
        for name in self.order:
            j = LATENT_NAMES.index(name)
            mech = self.mechanisms[name]
            if isinstance(mech.spec, FixedSpec):
                out[j] = mech.spec.value
            elif targets[j] and self.soft is None:
                out[j] = self._uniform(name, values[j])  # perfect intervention
            elif targets[j]:  # soft intervention: the same step with a shifted goal and scaled noise
                shift, scale = self.soft[name]
                goal = self._wrapped(mech.spec, self._goal(mech, scope, prev_class, cls) + shift)
                out[j] = self._move(seed, t, j, mech.spec, float(prev[j]), goal, float(normals[j]),
                                    mech.spec.sigma * scale)
            else:
                goal = self._goal(mech, scope, prev_class, cls)
                out[j] = self._move(seed, t, j, mech.spec, float(prev[j]), goal, float(normals[j]))
            scope[name] = out[j:j + 1]
        return out

    def _goal(self, mech: _Mechanism, scope: Mapping[str, np.ndarray], prev_class: int, cls: int) -> float:
        goals = mech.goals
        if isinstance(goals, dict):
            key = cls if mech.spec.goal_class == "class" else prev_class  # type: ignore[union-attr]
            goals = goals[self.class_names[key]]
        return float(goals(scope, 1)[0])  # type: ignore[operator]

    @staticmethod
    def _wrapped(spec: StepSpec, goal: float) -> float:
        """A shifted goal inside the domain: an angle's wrapped into [low, high) (the short-way rule needs both ends
        inside), a linear latent's clipped to [low, high] (so its redraws end)."""
        low, high = spec.domain
        if spec.type != "angle":
            return min(max(goal, low), high)
        d = goal - low
        return low + (math.fmod(d, high - low) + (high - low) * (d < 0))

    def _move(self, seed: int, t: int, j: int, spec: StepSpec, cur: float, goal: float, z: float,
              sigma: float | None = None) -> float:
        """One step of CITRIS's ``_take_step`` (the same float operations, in the same order); ``sigma``
        replaces the mechanism's noise std (a soft intervention)."""
        sigma = spec.sigma if sigma is None else sigma
        low, high = spec.domain
        period = high - low
        step = (goal - cur) * spec.rate
        if spec.type == "angle":
            if abs(goal - cur) > period / 2:
                if step < 0.0:
                    step += spec.rate * period
                elif step > 0.0:
                    step -= spec.rate * period
            nxt = cur + step + sigma * z
            d = nxt - low
            return low + (math.fmod(d, period) + period * (d < 0))
        nxt = cur + step + sigma * z
        attempt = 0
        while not low <= nxt <= high:
            if attempt == MAX_REDRAWS:
                raise ConfigError(f"{self.source}: latents.{LATENT_NAMES[j]} stayed outside its domain "
                                  f"{list(spec.domain)} after {MAX_REDRAWS} redraws at frame {t} (goal {goal:.3g}); "
                                  f"keep its goal inside the domain; {HINT}")
            u = noise.uniforms_at(seed, STREAMS["redraw"], np.array([t]), 1, key=(j, attempt))[0, 0]
            nxt = cur + step + sigma * float(ndtri(max(u, 2.0 ** -54)))
            attempt += 1
        return nxt


def is_temporal(data: Mapping[str, Any]) -> bool:
    """Whether a preset mapping is a temporal one (``kind: temporal``)."""
    return isinstance(data, Mapping) and data.get("kind") == "temporal"


def load_temporal(preset: str | Path) -> TemporalModel:
    """The temporal model of a shipped preset name or a preset file."""
    from .scm import load_preset_dict  # the same lookup of names and files as the SCM presets

    data = load_preset_dict(preset)
    if not is_temporal(data):
        raise ConfigError(f"preset {data['name']!r} is not a temporal preset (it has no 'kind: temporal'); "
                          f"use temporal_causal3dident or instantaneous_temporal_causal3dident")
    return TemporalModel.from_dict(data, source=f"preset {data['name']!r}")


def to_package_classes(model: TemporalModel, classes: np.ndarray) -> np.ndarray:
    """Class indices of the model's order -> this package's labels (``latents.CLASS_NAMES``)."""
    lookup = np.array([CLASS_NAMES.index(c) for c in model.class_names], dtype=np.int64)
    return lookup[np.asarray(classes, dtype=np.int64)]
