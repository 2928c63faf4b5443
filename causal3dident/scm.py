"""The structural causal model over class and the ten latents, built from a preset (data, not code).

A preset names, for each latent, its distribution (``uniform``, ``truncnorm`` or ``constant``),
its bounds, its parents and its mean as an expression of the parents, optionally per class.
``SCM.sample`` draws latents in topological order from counter-based noise (see ``noise``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import noise
from .distributions import categorical_ppf, truncnorm_ppf, truncnorm_ppf_by_class, uniform_ppf
from .errors import ConfigError
from .expressions import Expression
from .latents import CLASS_NAMES, LATENT_NAMES, NUM_CLASSES, NUM_LATENTS
from .preset_schema import DEFAULT_SCENE
from .preset_schema import HINT as PRESET_HINT
from .preset_schema import ConstantSpec, DiscreteSpec, PresetSpec, TruncnormSpec, UniformSpec
from .schema import validate

DISTRIBUTIONS = ("uniform", "truncnorm", "constant", "discrete")
SCM_STREAM = "scm"
SCM_NOISE_WIDTH = 1 + NUM_LATENTS  # column 0: class, then one column per latent


@dataclass(frozen=True)
class Mechanism:
    """How one latent is generated from its parents."""

    name: str
    distribution: str
    parents: tuple[str, ...]
    low: float = -1.0
    high: float = 1.0
    sigma: float | None = None
    mean: tuple[Expression, ...] | None = None  # one expression per class
    value: float | None = None
    values: tuple[float, ...] | None = None  # discrete: the values, drawn with ``weights``
    weights: tuple[float, ...] | None = None
    window: tuple[Expression, Expression] | None = None  # uniform: [low, high] as expressions of the parents

    @property
    def per_class(self) -> bool:
        return "class" in self.parents

    def draw(self, u: np.ndarray, values: Mapping[str, np.ndarray], classes: np.ndarray) -> np.ndarray:
        """Map uniforms ``u`` to values of this latent given its parents' values.

        Per-class constant means take a per-class fast path; each distinct non-constant mean
        expression is evaluated only on the rows of the classes that use it.
        """
        if self.distribution == "constant":
            return np.full(len(u), self.value, dtype=np.float64)
        if self.distribution == "discrete":
            assert self.values is not None and self.weights is not None
            return np.asarray(self.values, dtype=np.float64)[categorical_ppf(u, np.asarray(self.weights))]
        if self.distribution == "uniform" and self.window is not None:
            low, high = (np.broadcast_to(e(values, len(u)), (len(u),)) for e in self.window)
            if ((low >= high) | (low < -1.0) | (high > 1.0)).any():
                raise ConfigError(f"latents.{self.name}: the window [{self.window[0].source}, "
                                  f"{self.window[1].source}] leaves [-1, 1] or is empty for some samples; "
                                  f"change its low/high expressions")
            return low + np.asarray(u, dtype=np.float64) * (high - low)
        if self.distribution == "uniform":
            return uniform_ppf(u, self.low, self.high)
        assert self.mean is not None and self.sigma is not None
        n = len(u)
        if not self.per_class:
            expr = self.mean[0]
            mean = expr(values, 1)[0] if not expr.names else expr(values, n)
            return truncnorm_ppf(u, mean, self.sigma, self.low, self.high)
        table = np.array([e(values, 1)[0] if not e.names else 0.0 for e in self.mean])
        out = truncnorm_ppf_by_class(u, classes, table, self.sigma, self.low, self.high)
        by_source: dict[str, list[int]] = {}
        for c, expr in enumerate(self.mean):
            if expr.names:
                by_source.setdefault(expr.source, []).append(c)
        for cls_ids in by_source.values():
            rows = np.flatnonzero(np.isin(classes, cls_ids))
            expr = self.mean[cls_ids[0]]
            mean = expr({k: values[k][rows] for k in expr.names}, len(rows))
            out[rows] = truncnorm_ppf(u[rows], mean, self.sigma, self.low, self.high)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"distribution": self.distribution}
        if self.distribution == "constant":
            out["value"] = self.value
            return out
        if self.distribution == "discrete":
            assert self.values is not None and self.weights is not None
            return {**out, "values": list(self.values), "weights": list(self.weights)}
        if self.window is not None:
            return {**out, "low": _number_or_source(self.window[0]), "high": _number_or_source(self.window[1]),
                    "parents": list(self.parents)}
        out.update(low=self.low, high=self.high)
        if self.distribution == "truncnorm":
            out["sigma"] = self.sigma
            out["parents"] = list(self.parents)
            assert self.mean is not None
            if self.per_class:
                out["mean"] = {CLASS_NAMES[c]: _number_or_source(e) for c, e in enumerate(self.mean)}
            else:
                out["mean"] = _number_or_source(self.mean[0])
        return out


def _stack(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Columns in LATENT_NAMES order -> float32 [N, 10]."""
    n = len(next(iter(values.values())))
    out = np.empty((n, NUM_LATENTS), dtype=np.float32)
    for i, name in enumerate(LATENT_NAMES):
        out[:, i] = values[name]
    return out


def _number_or_source(expr: Expression) -> float | str:
    try:
        return float(expr.source)
    except ValueError:
        return expr.source


class SCM:
    """Class and latents with their mechanisms; sample, intervene, and serialise back to a preset."""

    def __init__(self, name: str, class_weights: Sequence[float], mechanisms: Mapping[str, Mechanism],
                 description: str = "", scene: str = DEFAULT_SCENE) -> None:
        self.name = name
        self.description = description
        self.scene = scene
        self.class_weights = np.asarray(class_weights, dtype=np.float64)
        self.mechanisms = dict(mechanisms)
        self.order = _topological_order(self.mechanisms)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config: Mapping[str, Any], source: str = "preset") -> SCM:
        """Build from a preset mapping; every mistake is a ``ConfigError`` naming the key to fix.

        The mapping is checked against the typed schema ``preset_schema.PresetSpec`` first (keys, types,
        ranges), then for what only the whole preset can tell (parents of the means, cycles).
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"{source}: expected a mapping with 'latents' (and optionally 'classes')")
        spec = validate(PresetSpec, {"name": source, **config}, source=source, hint=PRESET_HINT)
        weights = np.asarray(spec.classes.weights, dtype=np.float64)
        mechanisms = {n: _mechanism(n, getattr(spec.latents, n), f"{source}: latents.{n}") for n in LATENT_NAMES}
        return cls(spec.name, weights / weights.sum(), mechanisms, spec.description, spec.scene)

    def to_dict(self) -> dict[str, Any]:
        """The preset mapping this SCM was built from (normalised); ``from_dict`` inverts it."""
        out = {
            "name": self.name,
            "description": self.description,
            "classes": {"weights": {c: float(w) for c, w in zip(CLASS_NAMES, self.class_weights)}},
            "latents": {n: self.mechanisms[n].to_dict() for n in LATENT_NAMES},
        }
        if self.scene != DEFAULT_SCENE:  # recorded only where it differs, so older configs stay as they were
            out["scene"] = self.scene
        return out

    # -- graph ---------------------------------------------------------------------------------
    def parents(self, name: str) -> tuple[str, ...]:
        return () if name == "class" else self.mechanisms[name].parents

    def children(self, name: str) -> tuple[str, ...]:
        return tuple(n for n in self.order if name in self.mechanisms[n].parents)

    def descendants(self, names: Sequence[str]) -> tuple[str, ...]:
        """All latents downstream of ``names`` (excluding them), in topological order."""
        seen: set[str] = set()
        frontier = list(names)
        while frontier:
            for child in self.children(frontier.pop()):
                if child not in seen:
                    seen.add(child)
                    frontier.append(child)
        return tuple(n for n in self.order if n in seen and n not in names)

    def edges(self) -> list[tuple[str, str]]:
        return [(p, n) for n in self.order for p in self.mechanisms[n].parents]

    # -- sampling ------------------------------------------------------------------------------
    def sample(self, n: int, seed: int, start: int = 0,
               classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Latents float32 [n, 10] and classes int64 [n] for sample indices [start, start + n).

        ``classes`` (int [n]): take these classes instead of drawing them (``balanced_classes``); the latents
        are still drawn from their mechanisms given the class, from the same noise as otherwise.
        """
        if n < 0 or start < 0:
            raise ConfigError(f"n and start must be >= 0, got n={n}, start={start}")
        if classes is not None and np.shape(classes) != (n,):
            raise ValueError(f"classes must have shape ({n},), got {np.shape(classes)}")
        latents = np.empty((n, NUM_LATENTS), dtype=np.float32)
        out_classes = np.empty(n, dtype=np.int64)

        def run(lo: int, hi: int) -> None:
            given = None if classes is None else classes[lo - start: hi - start]
            latents[lo - start: hi - start], out_classes[lo - start: hi - start] = \
                self._sample_range(seed, lo, hi, given)

        noise.map_blocks(run, start, start + n)
        return latents, out_classes

    def _sample_range(self, seed: int, start: int, stop: int,
                      given: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        u = noise.uniforms(seed, SCM_STREAM, start, stop, SCM_NOISE_WIDTH)
        classes = categorical_ppf(u[0], self.class_weights) if given is None else np.asarray(given, np.int64)
        values: dict[str, np.ndarray] = {}
        for name in self.order:
            col = 1 + LATENT_NAMES.index(name)
            values[name] = self.mechanisms[name].draw(u[col], values, classes)
        return _stack(values), classes

    def resample(self, names: Sequence[str], latents: np.ndarray, classes: np.ndarray,
                 u: np.ndarray) -> np.ndarray:
        """Redraw ``names`` (in topological order) from their mechanisms, given the other columns.

        ``u`` is [10, N]: one row of uniforms per latent column; used by the interventional LT.
        """
        values = {n: latents[:, i].astype(np.float64) for i, n in enumerate(LATENT_NAMES)}
        for name in self.order:
            if name in names:
                values[name] = self.mechanisms[name].draw(u[LATENT_NAMES.index(name)], values, classes)
        return _stack(values)

    # -- interventions -------------------------------------------------------------------------
    def intervene(self, interventions: Sequence[Intervention]) -> SCM:
        """A new SCM with each intervened mechanism replaced (its incoming edges cut)."""
        scm = copy.copy(self)
        scm.mechanisms = dict(self.mechanisms)
        scm.class_weights = self.class_weights.copy()
        for iv in interventions:
            if iv.target == "class":
                scm.class_weights = iv.class_weights()
            else:
                scm.mechanisms[iv.target] = iv.mechanism(self.mechanisms[iv.target])
        scm.order = _topological_order(scm.mechanisms)
        if interventions:
            scm.name = f"{self.name} | " + ", ".join(iv.spec for iv in interventions)
        return scm

    def __repr__(self) -> str:
        return f"SCM({self.name!r}, edges={len(self.edges())})"


@dataclass(frozen=True)
class Intervention:
    """``do(latent = value)``, ``latent ~ uniform(a, b)``, ``latent ~ truncnorm(mean, sigma[, a, b])``,
    ``class = name|index`` or ``class ~ weights(w0, ..., w6)``."""

    target: str
    distribution: str
    args: tuple[float, ...]
    spec: str

    @classmethod
    def parse(cls, spec: str) -> Intervention:
        text = spec.strip()
        if text.startswith("do(") and text.endswith(")"):
            text = text[3:-1].strip()
        hint = ("write e.g. 'hue_bg=0.5', 'hue_bg~uniform(0.5,1)', 'pos_x~truncnorm(0.3,0.2)', "
                "'class=dragon' or 'class~weights(1,1,0,0,0,0,0)'")
        if "~" in text:
            target, _, rhs = (s.strip() for s in text.partition("~"))
            if not (rhs.endswith(")") and "(" in rhs):
                raise ConfigError(f"intervention {spec!r}: expected a distribution after '~'; {hint}")
            dist, _, arg_text = rhs[:-1].partition("(")
            dist = dist.strip()
            args = _parse_numbers(arg_text, spec, hint)
        elif "=" in text:
            target, _, rhs = (s.strip() for s in text.partition("="))
            dist = "constant"
            if target == "class" and rhs in CLASS_NAMES:
                args = (float(CLASS_NAMES.index(rhs)),)
            else:
                args = _parse_numbers(rhs, spec, hint)
        else:
            raise ConfigError(f"intervention {spec!r}: no '=' or '~'; {hint}")
        iv = cls(target, dist, args, spec.strip())
        iv._validate(hint)
        return iv

    def _validate(self, hint: str) -> None:
        if self.target == "class":
            if self.distribution == "constant":
                ok = len(self.args) == 1 and float(self.args[0]).is_integer() and 0 <= self.args[0] < NUM_CLASSES
            else:
                ok = self.distribution == "weights" and len(self.args) == NUM_CLASSES and min(self.args) >= 0 \
                    and sum(self.args) > 0
            if not ok:
                raise ConfigError(f"intervention {self.spec!r}: class takes a class name, an index 0-6 "
                                  f"or weights(w0, ..., w6) with non-negative weights; {hint}")
            return
        if self.target not in LATENT_NAMES:
            raise ConfigError(f"intervention {self.spec!r}: unknown target {self.target!r}; "
                              f"expected class or one of {', '.join(LATENT_NAMES)}")
        arity = {"constant": (1,), "uniform": (2,), "truncnorm": (2, 4)}
        if self.distribution not in arity or len(self.args) not in arity[self.distribution]:
            raise ConfigError(f"intervention {self.spec!r}: expected constant, uniform(a, b) or "
                              f"truncnorm(mean, sigma[, a, b]); {hint}")
        # a constant's value, a uniform's (a, b) and a truncnorm's optional (a, b) must lie in the latent range
        in_range = {"constant": self.args, "uniform": self.args, "truncnorm": self.args[2:]}[self.distribution]
        if any(not -1.0 <= v <= 1.0 for v in in_range) or (len(in_range) == 2 and in_range[0] >= in_range[1]):
            raise ConfigError(f"intervention {self.spec!r}: values and bounds must lie in [-1, 1] with a < b")
        if self.distribution == "truncnorm" and self.args[1] <= 0:
            raise ConfigError(f"intervention {self.spec!r}: sigma must be > 0")

    def class_weights(self) -> np.ndarray:
        if self.distribution == "constant":
            return np.eye(NUM_CLASSES)[int(self.args[0])]
        return np.asarray(self.args, dtype=np.float64)

    def mechanism(self, old: Mechanism) -> Mechanism:
        if self.distribution == "constant":
            return Mechanism(old.name, "constant", (), value=self.args[0])
        if self.distribution == "uniform":
            return Mechanism(old.name, "uniform", (), low=self.args[0], high=self.args[1])
        low, high = (self.args[2], self.args[3]) if len(self.args) == 4 else (old.low, old.high)
        return Mechanism(old.name, "truncnorm", (), low=low, high=high, sigma=self.args[1],
                         mean=(Expression(self.args[0]),))


def _parse_numbers(text: str, spec: str, hint: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"intervention {spec!r}: {text!r} is not a list of numbers; {hint}") from None


def _mechanism(name: str, spec: UniformSpec | TruncnormSpec | ConstantSpec | DiscreteSpec, where: str) -> Mechanism:
    """A checked mechanism entry as a Mechanism: the means parsed, their parents declared."""
    if isinstance(spec, ConstantSpec):
        return Mechanism(name, "constant", (), value=spec.value)
    if isinstance(spec, DiscreteSpec):
        weights = spec.weights or (1.0,) * len(spec.values)
        return Mechanism(name, "discrete", (), low=min(spec.values), high=max(spec.values),
                         values=tuple(spec.values), weights=tuple(weights))
    if isinstance(spec, UniformSpec):
        if isinstance(spec.low, str) or isinstance(spec.high, str) or spec.parents:
            return _uniform_window(name, spec, where)
        return Mechanism(name, "uniform", (), low=spec.low, high=spec.high)
    if isinstance(spec.mean, Mapping):
        default = spec.mean.get("default")
        missing = [c for c in CLASS_NAMES if c not in spec.mean]
        if missing and default is None:
            raise ConfigError(f"{where}.mean: no mean for {', '.join(missing)}; add them or a 'default'")
        means = tuple(Expression(spec.mean.get(c, default), f"{where}.mean.{c}") for c in CLASS_NAMES)
        used = {"class"}
    else:
        means = (Expression(spec.mean, f"{where}.mean"),)
        used = set()
    for expr in means:
        used |= expr.names
    declared = spec.parents
    if declared is None:
        declared = tuple(sorted(used, key=lambda p: (p != "class", p)))
    undeclared = used - set(declared)
    if undeclared:
        raise ConfigError(f"{where}: the mean uses {', '.join(sorted(undeclared))} but 'parents' does not list "
                          f"{'it' if len(undeclared) == 1 else 'them'}; add to parents (per-class means need 'class')")
    if name in declared:
        raise ConfigError(f"{where}: a latent cannot be its own parent")
    if "class" in declared and len(means) == 1:
        means = means * NUM_CLASSES
    return Mechanism(name, "truncnorm", tuple(declared), low=spec.low, high=spec.high, sigma=spec.sigma, mean=means)


def _uniform_window(name: str, spec: UniformSpec, where: str) -> Mechanism:
    """A uniform latent whose bounds are expressions of its parents (checked to lie in [-1, 1] when drawn)."""
    window = (Expression(spec.low, f"{where}.low"), Expression(spec.high, f"{where}.high"))
    used = window[0].names | window[1].names
    if "class" in used:
        raise ConfigError(f"{where}: a uniform window cannot use the class; use a truncnorm with per-class means")
    declared = tuple(spec.parents) if spec.parents is not None else tuple(sorted(used))
    if undeclared := used - set(declared):
        raise ConfigError(f"{where}: low/high use {', '.join(sorted(undeclared))} but 'parents' does not list "
                          f"{'it' if len(undeclared) == 1 else 'them'}; add to parents")
    if name in declared:
        raise ConfigError(f"{where}: a latent cannot be its own parent")
    if "class" in declared:
        raise ConfigError(f"{where}: a uniform window cannot have the class as a parent")
    return Mechanism(name, "uniform", declared, window=window)


def _topological_order(mechanisms: Mapping[str, Mechanism]) -> tuple[str, ...]:
    return dependency_order(lambda name: [p for p in mechanisms[name].parents if p != "class"],
                            lambda cycle: ConfigError(f"the SCM has a cycle: {cycle}; remove one of these parent edges"))


def dependency_order(parents: Callable[[str], Iterable[str]],
                     cycle_error: Callable[[str], Exception]) -> tuple[str, ...]:
    """The latents (LATENT_NAMES order where free) with every latent after its ``parents``; a cycle raises
    ``cycle_error('a -> b -> a')``. Shared by the SCM's parents and the temporal presets' same-frame goals."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise cycle_error(" -> ".join((*path[path.index(name):], name)))
        state[name] = 1
        for parent in parents(name):
            visit(parent, (*path, name))
        state[name] = 2
        order.append(name)

    for name in LATENT_NAMES:
        visit(name, ())
    return tuple(order)


# -- presets ---------------------------------------------------------------------------------------
def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files("causal3dident.presets").iterdir() if p.name.endswith(".yaml"))


def load_preset_dict(preset: str | Path) -> dict[str, Any]:
    """The raw mapping of a shipped preset (by name) or of a YAML/JSON file (by path)."""
    text: str
    path = Path(preset)
    if str(preset) in preset_names():
        text = resources.files("causal3dident.presets").joinpath(f"{preset}.yaml").read_text()
        source = f"preset {preset!r}"
    elif path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file {str(path)!r} does not exist; pass a shipped preset "
                              f"({', '.join(preset_names())}) or a path to a YAML file")
        text = path.read_text()
        source = str(path)
    else:
        raise ConfigError(f"unknown preset {str(preset)!r}; choose one of {', '.join(preset_names())} "
                          f"or pass a path to a YAML file (c3di presets show causal3dident > my.yaml)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    data.setdefault("name", str(preset) if str(preset) in preset_names() else path.stem)
    return data


def load_preset(preset: str | Path) -> SCM:
    """The SCM of a shipped preset name or a preset file."""
    data = load_preset_dict(preset)
    if data.get("kind") == "temporal":  # causal3dident.temporal: a sequence, not i.i.d. samples
        raise ConfigError(f"preset {data['name']!r} is a temporal preset: sample its frames with c3di latents "
                          f"--preset {preset} --n FRAMES --out seq.h5, then render that file (c3di render seq.h5 ...)")
    return SCM.from_dict(data, source=f"preset {data['name']!r}")
