"""One dev launcher per state dir: an flock held for the launcher's lifetime."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(
            f"the local stack is already running (pid {pid if pid else 'unknown'}); "
            "stop it with Ctrl-C in its terminal"
        )


def acquire_lock(state_dir: Path) -> int:
    """Lock `<state_dir>/stack.lock` and write our pid in it; returns the fd to keep open.

    The kernel drops the lock when the process dies, however it dies: no stale locks.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "stack.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raw = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise AlreadyRunning(int(raw) if raw.isdigit() else None) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
