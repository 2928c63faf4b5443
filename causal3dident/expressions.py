"""Safe, vectorised arithmetic expressions for the SCM's structural equations.

Presets write means such as ``-sin(spot_pos * pi / 2)``; they are parsed with ``ast`` and
only numbers, declared parent names, arithmetic and a few numpy functions are allowed.

Presets come from files anyone can write and from the config recorded in downloaded datasets (which
``c3di verify`` evaluates), so evaluation is bounded: at most ``MAX_LENGTH`` characters and ``MAX_NODES``
syntax nodes, and every number is a float64 (no Python big integers: ``9 ** 9 ** 9`` overflows to inf
at once instead of computing a number with 370 million digits). A result that is not finite (inf or
NaN) is a ConfigError naming the latent and the expression.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping

import numpy as np

from .errors import ConfigError

FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "arctan2": np.arctan2,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sign": np.sign,
    "clip": np.clip,
    "minimum": np.minimum,
    "maximum": np.maximum,
    "where": np.where,
}
ARITY: dict[str, int] = {"arctan2": 2, "clip": 3, "minimum": 2, "maximum": 2, "where": 3}
"""Arguments each function takes (the others: one)."""
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
MAX_LENGTH = 1000
"""Longest expression accepted, in characters."""
MAX_NODES = 400
"""Most syntax nodes accepted: each costs one vectorised numpy operation per evaluation."""
_NUMBER = "__c3di_number_"
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod)
_UNARYOPS = (ast.UAdd, ast.USub)
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


class Expression:
    """A parsed expression; ``names`` are the variables it reads."""

    def __init__(self, source: str | float | int, where: str = "expression") -> None:
        self.source = str(source)
        self.where = where
        if len(self.source) > MAX_LENGTH:
            raise ConfigError(f"{where}: the expression is {len(self.source)} characters long, more than "
                              f"{MAX_LENGTH}; write a shorter one")
        try:
            tree = ast.parse(self.source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ConfigError(f"{where}: cannot parse {self.source!r} ({exc.msg}); write arithmetic "
                              f"such as '-sin(spot_pos * pi / 2)'") from None
        except (RecursionError, MemoryError, ValueError):
            raise ConfigError(f"{where}: {self._short()} is nested too deeply; write a flatter expression") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise ConfigError(f"{where}: {self._short()} has more than {MAX_NODES} parts; write a shorter one")
        self.names: frozenset[str] = frozenset()
        names: set[str] = set()
        self._check(tree.body, names)
        self.names = frozenset(names)
        self._numbers: dict[str, np.float64] = {}
        tree = ast.fix_missing_locations(_FloatNumbers(self._numbers, self.where, self.source).visit(tree))
        self._code = compile(tree, f"<{where}>", "eval")
        if not self.names:
            self({}, 1)  # a constant: evaluate it now, so that inf or NaN is refused before any work

    def _check(self, node: ast.AST, names: set[str]) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return
        if isinstance(node, ast.Name):
            if node.id not in CONSTANTS and node.id not in FUNCTIONS:
                names.add(node.id)
            return
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            self._check(node.left, names)
            self._check(node.right, names)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARYOPS):
            self._check(node.operand, names)
            return
        if isinstance(node, ast.Compare) and all(isinstance(op, _COMPARE) for op in node.ops):
            self._check(node.left, names)
            for comparator in node.comparators:
                self._check(comparator, names)
            return
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                and not node.keywords):
            if len(node.args) != ARITY.get(node.func.id, 1) or any(isinstance(a, ast.Starred) for a in node.args):
                raise ConfigError(f"{self.where}: {node.func.id}() takes {ARITY.get(node.func.id, 1)} argument(s), "
                                  f"in {self.source!r}")
            for arg in node.args:
                self._check(arg, names)
            return
        raise ConfigError(f"{self.where}: {ast.unparse(node)!r} is not allowed in {self.source!r}; use numbers, "
                          f"parent latent names, + - * / ** %, comparisons and {', '.join(sorted(FUNCTIONS))}")

    def __call__(self, variables: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """Evaluate on arrays of length ``n``; constants broadcast to ``n``."""
        missing = self.names - set(variables)
        if missing:
            raise ConfigError(f"{self.where}: {self.source!r} uses {', '.join(sorted(missing))}, "
                              f"which is not among its parents; add it to 'parents'")
        scope = {**FUNCTIONS, **CONSTANTS, **self._numbers, **{k: variables[k] for k in self.names}}
        with np.errstate(all="ignore"):  # overflow and invalid values are checked below, with a better message
            value = eval(self._code, {"__builtins__": {}}, scope)  # noqa: S307 - AST whitelisted above
        value = np.asarray(value, dtype=np.float64)
        finite = np.isfinite(value)
        if not finite.all():
            raise ConfigError(f"{self.where}: {self._short()} gives {value[~finite].flat[0]}"
                              f"{self._example(variables, finite)}; keep the expression finite over its parents' "
                              f"ranges (no overflow, log or sqrt of negatives, division by zero)")
        return np.broadcast_to(value, (n,))

    def _short(self, limit: int = 80) -> str:
        text = repr(self.source)
        return text if len(text) <= limit else text[:limit - 4] + "...'"

    def _example(self, variables: Mapping[str, np.ndarray], finite: np.ndarray) -> str:
        """`` for hue_bg=-0.5`` : parent values of the first sample where the result is not finite."""
        if not self.names or finite.ndim == 0:
            return ""
        row = int(np.flatnonzero(~finite.ravel())[0])
        values = ", ".join(f"{k}={float(np.asarray(variables[k]).ravel()[row]):.4g}" for k in sorted(self.names))
        return f" for {values}"

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


class _FloatNumbers(ast.NodeTransformer):
    """Replace each number by a name bound to its float64, so that all arithmetic is numpy's float64."""

    def __init__(self, numbers: dict[str, np.float64], where: str, source: str) -> None:
        self.numbers, self.where, self.source = numbers, where, source

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        try:
            value = np.float64(node.value)
        except OverflowError:
            raise ConfigError(f"{self.where}: the number {str(node.value)[:20]}... in the expression is too large "
                              f"for a float") from None
        if not np.isfinite(value):
            raise ConfigError(f"{self.where}: the number {node.value} in {self.source[:80]!r} is not finite")
        name = f"{_NUMBER}{len(self.numbers)}"
        self.numbers[name] = value
        return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node)
