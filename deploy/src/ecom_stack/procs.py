"""Child processes that cannot outlive the launcher, and their logs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A server of the local stack failed to start (the message carries its log tail)."""


# `setpriv --pdeathsig` (util-linux) sets the parent-death signal, then execs the server. It
# replaces a preexec_fn doing prctl(): any Python code between fork and exec makes subprocess
# fork() rather than vfork(), and a real fork() runs gRPC's fork handlers in the child, which
# can abort it when the launcher's own gRPC threads (health checks) are busy.
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _die_with_parent(argv: Sequence[str]) -> list[str]:
    if _SETPRIV is None:
        return list(argv)  # no parent-death signal here: stop()/atexit must do the work
    return [_SETPRIV, "--pdeathsig=TERM", "--", *argv]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.popen.pid

    def failure(self, what: str) -> StackError:
        return StackError(f"{self.name} {what}; last lines of {self.log}:\n{tail(self.log)}")


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Proc:
    """Start `argv` in its own session (Ctrl-C in the terminal reaches only the launcher,
    which then stops children in order) with SIGTERM as parent-death signal.

    Linux sends the parent-death signal when the *thread* that forked exits, so call this
    from a thread that lives as long as the stack (the main thread in practice).
    """
    with open(log, "wb") as out:
        popen = subprocess.Popen(  # noqa: S603 (argv is built by us)
            _die_with_parent(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    return Proc(name, popen, log, stop_signal)


def run(
    jobs: Sequence[tuple[str, Sequence[str], Path]], env: Mapping[str, str], timeout: float
) -> None:
    """Run one-shot commands (initdb, migrations) side by side, as (name, argv, log), until
    all finish; the first failure stops the rest and is raised with its output."""
    procs = [spawn(name, argv, log, env) for name, argv, log in jobs]
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            try:
                code = proc.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise proc.failure(f"did not finish within {timeout:.0f} s") from None
            if code != 0:
                raise proc.failure(f"exited with code {code}")
    finally:
        stop_all(procs)  # a no-op for those that finished


def _signal_group(proc: Proc, sig: int) -> None:
    # Each child leads its own process group: signalling the group also reaches helpers it
    # forked (postgres backends, worker processes).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_all(procs: Sequence[Proc], grace: float = 5.0) -> None:
    """Signal every process, wait up to `grace` seconds for all of them, then SIGKILL."""
    for proc in procs:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(proc.stop_signal)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.popen.wait()
        # Sweep anything the leader left behind in its group.
        _signal_group(proc, signal.SIGKILL)
