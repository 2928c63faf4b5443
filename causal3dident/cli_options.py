"""Click parameter types shared by the ``c3di`` commands.

Their errors are ``ConfigError``s, so a bad value is one line on stderr and exit code 2 (click's own
usage errors print the usage block as well).
"""

from __future__ import annotations

from typing import Any

import click

from .errors import ConfigError

MAX_SEED = 2**32 - 1
"""Largest seed: every consumer takes it (numpy's SeedSequence, torch, scikit-learn's 32-bit random_state)."""


def check_seed(value: Any, option: str = "--seed") -> int:
    """``value`` as a seed in 0..MAX_SEED, else a one-line ``ConfigError`` saying which seeds are valid."""
    try:
        seed = int(str(value).strip())
    except ValueError:
        seed = None
    if seed is None or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{option} {value}: a seed is a whole number from 0 to {MAX_SEED} (2**32 - 1); "
                          f"pick one in that range, e.g. {option} 0")
    return seed


class SeedType(click.ParamType):
    """A seed option: an integer in 0..MAX_SEED."""

    name = "seed"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        return check_seed(value, _option(param, "--seed"))


class SeedListType(click.ParamType):
    """Comma-separated seeds, each in 0..MAX_SEED."""

    name = "seeds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        option = _option(param, "--seeds")
        parts = [p.strip() for p in str(value).split(",")]
        if not all(parts):
            raise ConfigError(f"{option} {value}: give comma-separated seeds, e.g. {option} 0,1,2")
        return [check_seed(p, option) for p in parts]


def _option(param: click.Parameter | None, default: str) -> str:
    return max(param.opts, key=len) if param is not None and param.opts else default


SEED = SeedType()
SEEDS = SeedListType()

BALANCED_HELP = ("Exactly equal counts of every class the preset draws (n / 7 each; --n must divide), in a seeded "
                 "random order; the other latents still follow their mechanisms given the class. The original "
                 "release's layout (c3di export --format original) needs it.")
SPLIT_HELP = ("Split the file records (train, test, ...; c3di export names its folder <split>set/ after it); "
              "default: the output's name if it starts with train/test (train.h5, test-lz4.h5), else train.")
