"""Typed, validated configuration: unknown keys, wrong types and bad values become one-line ``ConfigError`` s.

Every config of the project (benchmark tiers, settings, SCM presets, render settings, method parameters) is a
frozen pydantic dataclass declared with :func:`config_schema`. pydantic checks each value against its type and
constraints, coerces it where nothing is lost (``"1e-3"`` -> 0.001 for a float, ``"100"`` or ``2e5`` -> an
integer) and refuses the rest; this module turns its errors into one line that names the key path, the bad
value and what is allowed, e.g. ``tier 'mini': train.stpes: unknown key; known keys: batch_size, steps, ...``.
``--set section.key=VALUE`` overrides (:func:`apply_assignments`) go through the same validation.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar, Union

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .errors import ConfigError

T = TypeVar("T")

SCHEMA_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
"""Unknown keys are errors and numbers must be finite, in every config."""


def _not_bool(value: Any) -> Any:
    """YAML's ``true``/``yes`` would pass as the number 1: refuse booleans where numbers are expected."""
    if isinstance(value, bool):
        raise ValueError("a number, not true/false")
    return value


def _integral(value: Any) -> Any:
    """Integers written as ``"2e5"`` or ``200000.0`` are integers (pydantic refuses fractional ones)."""
    value = _not_bool(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value


Int = Annotated[int, BeforeValidator(_integral)]
Float = Annotated[float, BeforeValidator(_not_bool)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]


def config_schema(cls: type[T] | None = None, *, source: str = "config", hint: str = "") -> Any:
    """Make ``cls`` a frozen, keyword-only pydantic dataclass that rejects unknown keys.

    Constructing it directly (or with ``dataclasses.replace``) with bad values raises a one-line
    ``ConfigError`` starting with ``source`` and ending with ``hint``, as :func:`validate` does.
    """

    def wrap(cls: type[T]) -> type[T]:
        cls = pydantic_dataclass(cls, frozen=True, kw_only=True, config=SCHEMA_CONFIG)  # type: ignore[call-overload]
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                raise ConfigError(describe(exc, type(self), kwargs, source, hint)) from None

        cls.__init__ = __init__  # type: ignore[method-assign]
        return cls

    return wrap if cls is None else wrap(cls)


@functools.lru_cache(maxsize=None)
def _adapter(cls: Any) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def validate(cls: type[T], data: Any, source: str, hint: str = "", prefix: Sequence[str] = ()) -> T:
    """``data`` (a mapping as read from YAML or JSON) as an instance of the schema ``cls``, or a ConfigError.

    ``prefix`` is prepended to the key paths in messages (e.g. ``method`` for a method's parameters).
    """
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, cls, data, source, hint, prefix)) from None


# -- --set KEY=VALUE -------------------------------------------------------------------------------
class _ValueLoader(yaml.SafeLoader):
    """YAML as the CLI reads values: like PyYAML's safe loader, but ``1e-3`` is a number (as in YAML 1.2)."""


_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML (numbers, true/false, null, [lists], {mappings}), else the text itself."""
    try:
        return yaml.load(text, Loader=_ValueLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text


def parse_assignment(item: str, option: str = "--set") -> tuple[list[str], Any]:
    """``section.key=VALUE`` -> (["section", "key"], VALUE)."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(f"{option} {item!r}: write section.key=value, e.g. train.steps=100")
    return [p.strip() for p in parts], parse_value(value.strip())


def set_path(data: dict[str, Any], path: Sequence[str], value: Any, item: str, option: str = "--set") -> None:
    """Set ``data[path[0]][path[1]]... = value``, creating missing sections (unknown ones fail validation)."""
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{option} {item!r}: {'.'.join(path[:depth + 1])} is a value, not a section")
        node = child
    node[path[-1]] = value


def apply_assignments(data: Mapping[str, Any], items: Iterable[str], option: str = "--set") -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key.path=VALUE`` of ``items`` applied (validate the result)."""
    out = copy.deepcopy(dict(data))
    for item in items:
        path, value = parse_assignment(item, option)
        set_path(out, path, value, item, option)
    return out


# -- one-line messages -----------------------------------------------------------------------------
_PHRASES = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer (no fraction)",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "dict_type": "a mapping", "dataclass_type": "a mapping", "model_type": "a mapping",
    "list_type": "a list", "tuple_type": "a list", "none_required": "null",
}
_MISSING = ("missing", "missing_keyword_argument", "missing_argument")
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def describe(exc: ValidationError, cls: Any, data: Any, source: str, hint: str = "",
             prefix: Sequence[str] = ()) -> str:
    """One line for a pydantic ValidationError: the most specific error's key path, value and what is allowed."""
    errors = [(_clean_path(e["loc"], data, e["type"] in _MISSING), e) for e in exc.errors()]
    deepest = max(len(path) for path, _ in errors)
    path, first = next((p, e) for p, e in errors if len(p) == deepest)
    same = [e for p, e in errors if p == path]
    where = ".".join([*prefix, *(f"[{p}]" if isinstance(p, int) else p for p in path)]).replace(".[", "[")
    kind = first["type"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _known_keys(cls, path[:-1], data)
        text = f"{where}: unknown key; known keys: {', '.join(known) or 'none'}"
    elif kind == "missing" and isinstance(first["loc"][-1], int):
        text = f"{where} has too few items, got {_short(first['input'])}"
    elif kind in _MISSING:
        text = f"{where}: missing; add it"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(first["ctx"]["discriminator"]).strip("'")
        allowed = ", ".join(_tags(cls, path, data, key))
        where = f"{where}.{key}" if where else key
        if "tag" in first["ctx"]:
            text = f"{where} must be one of {allowed}, got {first['ctx']['tag']!r}"
        else:
            text = f"{where}: missing; add one of {allowed}"
    else:
        musts = list(dict.fromkeys(_must(e) for e in same))
        whole = isinstance(first["input"], Mapping) and kind == "value_error"  # a check of several keys
        got = "" if whole else f", got {_short(first['input'])}"
        text = f"{where or 'the top level'} must be {' or '.join(musts)}{got}"
    text = f"{source}: {text}"
    return f"{text} ({hint})" if hint else text


def _must(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "literal_error":
        return f"one of {_choices(str(ctx.get('expected', '')))}"
    if kind in _BOUNDS:
        return f"{_BOUNDS[kind]} {next(iter(ctx.values()))}"
    if kind in ("too_short", "too_long"):
        count = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        return f"a list of {'at least' if kind == 'too_short' else 'at most'} {count} item{'s' * (count != 1)}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))  # our validators' ValueErrors complete "must be ..."
    if kind in _PHRASES:
        return _PHRASES[kind]
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def _choices(expected: str) -> str:
    """pydantic's ``'a', 'b' or 'c'`` -> ``a, b, c``."""
    return ", ".join(v.strip().strip("'") for v in re.split(r",| or ", expected) if v.strip())


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _clean_path(loc: Sequence[Any], data: Any, missing: bool = False) -> list[Any]:
    """pydantic's location without its union-member labels: keep the parts that index into ``data``
    (and, for a ``missing`` error, the missing key)."""
    path: list[Any] = []
    for i, part in enumerate(loc):
        if isinstance(data, Mapping) and part in data:
            path.append(part)
            data = data[part]
        elif isinstance(part, int) and isinstance(data, (list, tuple)) and -len(data) <= part < len(data):
            path.append(part)
            data = data[part]
        elif missing and i == len(loc) - 1 and isinstance(data, Mapping):
            path.append(part)
        elif dataclasses.is_dataclass(data) and isinstance(part, str) and hasattr(data, part):
            path.append(part)  # inside a config object passed as is
            data = getattr(data, part)
    return path


def _type_at(cls: Any, path: Sequence[Any], data: Any) -> tuple[Any, Any]:
    """The declared type at ``path`` in schema ``cls`` and the data there (unions chosen by the data)."""
    tp: Any = cls
    for part in path:
        tp = _pick(tp, data)
        fields = getattr(tp, "__pydantic_fields__", None)
        if fields is not None:
            tp = fields[part].annotation if part in fields else None
        else:  # a dict's or a tuple's items
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            tp = args[-1] if args else None
        data = data[part] if isinstance(data, (Mapping, list, tuple)) and _has(data, part) else None
    return tp, data


def _known_keys(cls: Any, path: Sequence[Any], data: Any) -> list[str]:
    """Field names of the schema class at ``path``."""
    fields = getattr(_pick(*_type_at(cls, path, data)), "__pydantic_fields__", None)
    return list(fields) if fields else []


def _tags(cls: Any, path: Sequence[Any], data: Any, key: str) -> list[str]:
    """The values of the discriminator ``key`` that the union at ``path`` accepts."""
    tags: list[str] = []
    for member in _members(_type_at(cls, path, data)[0]):
        field = getattr(member, "__pydantic_fields__", {}).get(key)
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            tags += [str(v) for v in typing.get_args(field.annotation)]
    return tags


def _has(data: Mapping[str, Any] | Sequence[Any], part: Any) -> bool:
    return part in data if isinstance(data, Mapping) else isinstance(part, int) and 0 <= part < len(data)


def _members(tp: Any) -> list[Any]:
    """The members of a union type (Annotated unwrapped); ``[tp]`` for other types."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return [tp]
    return [typing.get_args(m)[0] if typing.get_origin(m) is Annotated else m for m in typing.get_args(tp)]


def _pick(tp: Any, data: Any) -> Any:
    """Of a union's schema classes, the one whose literal fields match ``data``; else its first non-None member."""
    members = _members(tp)
    schemas = [m for m in members if hasattr(m, "__pydantic_fields__")]
    for member in schemas:
        literals = {name: typing.get_args(f.annotation) for name, f in member.__pydantic_fields__.items()
                    if typing.get_origin(f.annotation) is typing.Literal}
        if isinstance(data, Mapping) and all(data.get(k) in v for k, v in literals.items()):
            return member
    others = [m for m in members if m is not type(None)]
    return schemas[0] if schemas else (others[0] if others else tp)
