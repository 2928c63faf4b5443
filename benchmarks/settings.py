"""The benchmark's settings: how each setting makes its two views, and its content and style latents.

The shipped registry is ``settings.yaml`` (the 12 settings of Table 1 and 6 of Table 6); users add
their own in a YAML file of the same form (``--settings FILE``). Each entry is checked against the typed
schema ``SettingSpec`` (unknown keys, unknown augmentations or latents: one-line ConfigErrors).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator

from causal3dident.augmentations import AUGMENTATIONS
from causal3dident.errors import ConfigError
from causal3dident.latents import LATENT_GROUPS, LATENT_NAMES
from causal3dident.schema import config_schema, validate
from causal3dident.transformations import LatentTransformation

LT_PAIRS = ("exact", "nearest")
CLASS = "class"
HINT = "fix the settings file"

Augmentation = Literal[tuple(AUGMENTATIONS)]  # type: ignore[valid-type]
StyleLatent = Literal[(*LATENT_NAMES, *LATENT_GROUPS)]  # type: ignore[valid-type]
Label = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, (int, float)) else v)]


@config_schema(source="settings", hint=HINT)
class SettingSpec:
    """One entry of a settings file, as written: ``views``, ``augment`` and/or ``lt``, ``lt_pairs``, ``style``,
    ``table``."""

    views: Label | None = None
    augment: tuple[Augmentation, ...] = ()
    lt: str | None = None
    lt_pairs: Literal["exact", "nearest"] = "exact"
    style: tuple[StyleLatent, ...] = ()
    table: Label = "user"


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
    checked = validate(SettingSpec, {k: v for k, v in spec.items() if v is not None}, source=where, hint=HINT)
    augment = checked.augment
    crops = [a for a in augment if a.startswith("crop")]
    if len(crops) > 1 or len(set(augment)) != len(augment):
        raise ConfigError(f"{where}: list each augmentation once and at most one crop")
    lt = None if checked.lt is None else LatentTransformation.parse(checked.lt).name
    if not augment and lt is None:
        raise ConfigError(f"{where} makes no views; give 'augment: [...]' and/or 'lt: NAME'")
    return Setting(id=setting_id, views=checked.views or setting_id, augment=augment, lt=lt,
                   lt_pairs=checked.lt_pairs, style=_expand_latents(checked.style), table=checked.table)


def _expand_latents(names: Iterable[str]) -> tuple[str, ...]:
    """Latent names and groups -> latent names, in LATENT_NAMES order."""
    chosen: set[str] = set()
    for name in names:
        chosen.update(LATENT_GROUPS.get(name, (name,)))
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
