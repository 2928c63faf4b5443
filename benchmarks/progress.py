"""Progress lines of ``c3di bench run`` and ``sweep`` (loss, steps/s, time left) and what Ctrl-C leaves to a rerun."""

from __future__ import annotations

import time
from collections.abc import Callable

import click


def duration(seconds: float) -> str:
    """``1h02m``, ``4m05s`` or ``12s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class TrainProgress:
    """A step callback printing ``step S/T: loss L, R steps/s, ETA D`` every ``every`` steps (and at the last).

    The rate counts the steps since the first one this process saw, so start-up and a resumed run's earlier
    steps do not distort it. It remembers the last step for ``interrupted``.
    """

    def __init__(self, steps: int, every: int, checkpoint_every: int, prefix: str = "",
                 echo: Callable[[str], None] = click.echo, clock: Callable[[], float] = time.monotonic) -> None:
        self.steps, self.every, self.checkpoint_every, self.prefix = steps, every, checkpoint_every, prefix
        self.echo, self.clock = echo, clock
        self.first: tuple[int, float] | None = None
        self.last_step: int | None = None

    def __call__(self, step: int, loss: float) -> None:
        now = self.clock()
        if self.first is None:
            self.first = (step, now)
        self.last_step = step
        if step % self.every == 0 or step == self.steps:
            self.echo(f"  {self.prefix}step {step}/{self.steps}: loss {loss:.4f}{self._speed(step, now)}")

    def _speed(self, step: int, now: float) -> str:
        assert self.first is not None
        first_step, first_time = self.first
        if step <= first_step or now <= first_time:
            return ""
        rate = (step - first_step) / (now - first_time)
        return f", {rate:.2f} steps/s, ETA {duration((self.steps - step) / rate)}"

    def interrupted(self) -> str:
        """What rerunning the same command does after Ctrl-C now."""
        if self.last_step is None:
            return ("rerunning the same command resumes this run from its last checkpoint if it has one, "
                    "else starts it over")
        if self.last_step >= self.steps:
            return "training had finished and is saved; rerunning the same command only evaluates"
        assert self.first is not None
        saved = max(self.first[0] - 1, (self.last_step - 1) // self.checkpoint_every * self.checkpoint_every)
        if saved <= 0:
            return (f"stopped at step {self.last_step} of {self.steps}, before the first checkpoint (step "
                    f"{self.checkpoint_every}); rerunning the same command starts this run over")
        return (f"stopped at step {self.last_step} of {self.steps}; rerunning the same command resumes from the "
                f"last checkpoint, at step {saved} or later (one is saved every {self.checkpoint_every} steps)")


class SweepProgress:
    """Which run of how many, the time the sweep has left, and the interrupt message of a sweep."""

    def __init__(self, total: int, echo: Callable[[str], None] = click.echo,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.echo, self.clock = total, echo, clock
        self.index = 0
        self.finished = 0
        self.timed: list[float] = []
        self.current: TrainProgress | None = None
        self.label = ""
        self._started = 0.0

    def skip(self, index: int, label: str) -> None:
        self.finished += 1
        self.echo(f"[{index}/{self.total}] {label}: finished, skipped")

    def start(self, index: int, label: str, train: TrainProgress) -> None:
        self.index, self.label, self.current, self._started = index, label, train, self.clock()
        left = ""
        if self.timed:
            per_run = sum(self.timed) / len(self.timed)
            left = f" (about {duration(per_run * (self.total - index + 1))} left in this sweep)"
        self.echo(f"[{index}/{self.total}] {label}{left}")

    def done(self) -> None:
        self.timed.append(self.clock() - self._started)
        self.finished += 1
        self.current = None

    def interrupted(self) -> str:
        if self.current is None:
            return f"rerunning the same command skips the {self.finished} finished run(s) and goes on"
        return (f"in run {self.index} of {self.total} ({self.label}): {self.current.interrupted()}; "
                f"the {self.finished} finished run(s) are skipped")
