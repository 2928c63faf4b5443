"""Safe, vectorised arithmetic expressions for the SCM's structural equations.

Presets write means such as ``-sin(spot_pos * pi / 2)``; they are parsed with ``ast`` and
only numbers, declared parent names, arithmetic and a few numpy functions are allowed.
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
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod)
_UNARYOPS = (ast.UAdd, ast.USub)
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


class Expression:
    """A parsed expression; ``names`` are the variables it reads."""

    def __init__(self, source: str | float | int, where: str = "expression") -> None:
        self.source = str(source)
        self.where = where
        try:
            tree = ast.parse(self.source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ConfigError(f"{where}: cannot parse {self.source!r} ({exc.msg}); write arithmetic "
                              f"such as '-sin(spot_pos * pi / 2)'") from None
        self.names: frozenset[str] = frozenset()
        names: set[str] = set()
        self._check(tree.body, names)
        self.names = frozenset(names)
        self._code = compile(tree, f"<{where}>", "eval")

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
        scope = {**FUNCTIONS, **CONSTANTS, **{k: variables[k] for k in self.names}}
        value = eval(self._code, {"__builtins__": {}}, scope)  # noqa: S307 - AST whitelisted above
        return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
