"""One output, one job: a render job holds an exclusive lock on its work folder ``OUT.parts/``.

The lock is an ``flock`` on ``OUT.parts/job.lock``, so it goes with its process however that ends
(kill -9 included), and a second job on the same output fails at once, naming the holder.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from ..errors import OutputBusyError

LOCK_NAME = "job.lock"


class OutputLock:
    """``with OutputLock(parts, out):`` holds ``parts/job.lock`` (creating ``parts``), or raises
    ``OutputBusyError``; on exit, a work folder that holds nothing but the lock is removed."""

    def __init__(self, parts: Path, out: Path) -> None:
        self.parts, self.out = Path(parts), Path(out)
        self.path = self.parts / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        for _ in range(20):  # the folder or its lock file may vanish meanwhile (a job finishing): try again
            self.parts.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "a process"
                os.close(fd)
                raise OutputBusyError(f"{self.out} is being rendered by another job ({holder}, holding "
                                      f"{self.path}); wait for it to finish or stop it, then run this command "
                                      f"again") from None
            except OSError as exc:  # a filesystem without locks (e.g. NFS without lockd): go on, unprotected
                print(f"warning: cannot lock {self.path} ({exc.strerror}); make sure no other job renders "
                      f"to {self.out} meanwhile", file=sys.stderr)
            if self._is_current(fd):
                holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                os.ftruncate(fd, 0)
                os.pwrite(fd, holder.encode(), 0)
                self._fd = fd
                return self
            os.close(fd)  # we locked a lock file that was removed meanwhile: take the new one
        raise OutputBusyError(f"could not lock {self.path}: other jobs keep replacing it; run one job per --out")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if {p.name for p in self.parts.iterdir()} <= {LOCK_NAME}:
                self.path.unlink(missing_ok=True)
                self.parts.rmdir()
        except OSError:
            pass  # the folder stays; the next job takes its lock
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False
