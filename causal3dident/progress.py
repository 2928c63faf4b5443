"""Progress bars on stderr that step aside for errors.

A long command shows a tqdm bar; when the work it counts fails, the bar clears itself instead of leaving
its last state on its own line, so the error stays the one line the CLI promises (docs/integrity.md).
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class ProgressBar(tqdm):
    """``tqdm`` (on stderr by default) that is cleared, not left behind, when its ``with`` block raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("file", sys.stderr)
        super().__init__(*args, **kwargs)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc_type is not None:
            self.leave = False
        return super().__exit__(exc_type, exc, tb)
