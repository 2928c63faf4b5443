"""The benchmark's settings: how each setting makes its two views, and its content and style latents.

The shipped registry is ``settings.yaml`` (the 12 settings of Table 1 and 6 of Table 6); users add
their own in a YAML file of the same form (``--settings FILE``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from causal3dident.augmentations import AUGMENTATIONS
from causal3dident.errors import ConfigError
from causal3dident.latents import LATENT_GROUPS, LATENT_NAMES
from causal3dident.transformations import LatentTransformation

LT_PAIRS = ("exact", "nearest")
CLASS = "class"


@dataclass(frozen=True)
class Setting:
    """One row of the benchmark: views made by ``augment`` (DA) and/or ``lt`` (LT); ``style`` latents differ."""

    id: str
    views: str
    augment: tuple[str, ...] = ()
    lt: str | None = None
    lt_pairs: str = "exact"
    style: tuple[str, ...] = ()
    table: str = "user"

    @property
    def content(self) -> tuple[str, ...]:
        """The class and every latent the two views share."""
        return (CLASS, *(n for n in LATENT_NAMES if n not in self.style))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "views": self.views, "augment": list(self.augment), "lt": self.lt,
                "lt_pairs": self.lt_pairs, "style": list(self.style), "content": list(self.content),
                "table": self.table}


def parse_setting(setting_id: str, spec: Mapping[str, Any], source: str = "settings") -> Setting:
    """Validate one entry of a settings file; errors name the entry and the fix."""
    where = f"{source}: setting {setting_id!r}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping with 'views' and 'augment' or 'lt'")
    unknown = set(spec) - {"views", "augment", "lt", "lt_pairs", "style", "table"}
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; use views, augment, lt, lt_pairs, style, table")
    augment = tuple(spec.get("augment") or ())
    for name in augment:
        if name not in AUGMENTATIONS:
            raise ConfigError(f"{where}: unknown augmentation {name!r}; use {', '.join(AUGMENTATIONS)}")
    crops = [a for a in augment if a.startswith("crop")]
    if len(crops) > 1 or len(set(augment)) != len(augment):
        raise ConfigError(f"{where}: list each augmentation once and at most one crop")
    lt = spec.get("lt")
    if lt is not None:
        lt = LatentTransformation.parse(str(lt)).name
    if not augment and lt is None:
        raise ConfigError(f"{where} makes no views; give 'augment: [...]' and/or 'lt: NAME'")
    lt_pairs = spec.get("lt_pairs", "exact")
    if lt_pairs not in LT_PAIRS:
        raise ConfigError(f"{where}: lt_pairs must be {' or '.join(LT_PAIRS)}, got {lt_pairs!r}")
    return Setting(id=setting_id, views=str(spec.get("views", setting_id)), augment=augment, lt=lt,
                   lt_pairs=lt_pairs, style=_expand_latents(spec.get("style") or (), where),
                   table=str(spec.get("table", "user")))


def _expand_latents(names: Iterable[str], where: str) -> tuple[str, ...]:
    chosen: set[str] = set()
    for name in names:
        if name in LATENT_GROUPS:
            chosen.update(LATENT_GROUPS[name])
        elif name in LATENT_NAMES:
            chosen.add(name)
        else:
            raise ConfigError(f"{where}: unknown style latent {name!r}; use latent names or "
                              f"{', '.join(LATENT_GROUPS)}")
    return tuple(n for n in LATENT_NAMES if n in chosen)


def load_settings(extra_files: Iterable[str | os.PathLike[str]] = ()) -> dict[str, Setting]:
    """The shipped settings plus those of ``extra_files`` (later files override earlier ids)."""
    text = resources.files("causal3dident.benchmarks").joinpath("settings.yaml").read_text()
    settings = _parse_file(yaml.safe_load(text), "settings.yaml (shipped)")
    for path in extra_files:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--settings {path}: no such file; pass a YAML file with a 'settings:' mapping")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"--settings {path} is not valid YAML ({exc.__class__.__name__}); "
                              f"fix its syntax") from None
        settings.update(_parse_file(data, str(path)))
    return settings


def _parse_file(data: Any, source: str) -> dict[str, Setting]:
    if not isinstance(data, Mapping) or not isinstance(data.get("settings"), Mapping):
        raise ConfigError(f"{source} must hold a top-level 'settings:' mapping of id -> setting")
    return {str(k): parse_setting(str(k), v, source) for k, v in data["settings"].items()}


def get_setting(setting_id: str, settings: Mapping[str, Setting]) -> Setting:
    """Look a setting up by id, with an error that lists the known ids."""
    try:
        return settings[setting_id]
    except KeyError:
        raise ConfigError(f"unknown setting {setting_id!r}; known: {', '.join(settings)} "
                          f"(add your own with --settings FILE)") from None


def table1_ids(settings: Mapping[str, Setting]) -> list[str]:
    """Ids of the paper's Table 1 settings, in the registry's order."""
    return [k for k, s in settings.items() if s.table == "1"]
