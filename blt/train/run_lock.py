"""One live run per run directory: an exclusive ``fcntl.flock`` on ``<dir>/run.lock``.

The OS drops a ``flock`` when the process holding it dies (SIGKILL, OOM, power loss of the
process), so a lock is never left held by a dead run; the pid written into the file only names
the holder in the refusal message. A lock file whose lock is free (its process is gone) is taken
over and the takeover is reported. On a clean exit the file is removed while still locked (and
the directory too when the lock created it and nothing else was written), and a taker re-checks
that the file it locked is still the one at the path, so two runs never both hold a lock. Under torchrun only rank 0 takes the lock and tells the other ranks whether it got it
(:func:`hold`), so every rank stops together instead of waiting in a collective.

Filesystems without ``flock`` (some network mounts) fall back to the pid: a live pid on this
host holds the directory; a dead one is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from blt.core.errors import BltError

LOCK_FILE = "run.lock"


class RunLockedError(BltError):
    """Another live process is running in this directory."""


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return {}
    return holder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _refusal(directory: Path, holder: dict) -> RunLockedError:
    who = f"pid {holder['pid']}" if holder.get("pid") else "another process"
    if holder.get("host") and holder["host"] != socket.gethostname():
        who += f" on {holder['host']}"
    return RunLockedError(f"{directory} is in use by a live run ({who}); wait for it to finish, stop it, "
                          "or choose another --out")


class RunLock:
    """``acquire()`` takes the directory or raises :class:`RunLockedError`; ``release()`` frees it.

    ``previous`` holds the pid a taken-over stale lock file named (``None`` for a clean take)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.previous: int | None = None
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> RunLock:
        self._created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _refusal(self.directory, _read_holder(self.path)) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                return self._acquire_by_pid()
            try:  # the holder may have removed the file between our open and our lock: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        self._take(_read_holder(self.path))
        return self

    def _acquire_by_pid(self) -> RunLock:
        holder = _read_holder(self.path)
        pid = holder.get("pid")
        if pid and pid != os.getpid() and holder.get("host") == socket.gethostname() and _alive(int(pid)):
            raise _refusal(self.directory, holder)
        self._take(holder)
        return self

    def _take(self, holder: dict) -> None:
        pid = holder.get("pid")
        self.previous = int(pid) if pid and pid != os.getpid() else None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if self._fd is None:
            self.path.write_text(record + "\n", encoding="utf-8")
            return
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (record + "\n").encode(), 0)
        os.fsync(self._fd)

    def release(self) -> None:
        if self._fd is None:
            if _read_holder(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # while still locked: a taker that opened it sees it is gone and retries
            os.close(self._fd)
            self._fd = None
        if self._created:  # a run refused by its config leaves no empty directory behind
            with contextlib.suppress(OSError):
                self.directory.rmdir()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def hold(directory: str | os.PathLike[str], *, is_main: bool = True, device=None, say=None) -> Iterator[RunLock | None]:
    """Hold ``directory`` for a run on every rank: rank 0 takes the lock, then all ranks learn
    (one all-reduce, when a process group is up) whether it did, and all raise if it did not.
    ``say(message)`` reports a taken-over stale lock."""
    from blt import parallel

    lock, error = None, None
    if is_main:
        lock = RunLock(directory)
        try:
            lock.acquire()
        except RunLockedError as exc:
            lock, error = None, exc
    refused = parallel.all_reduce_sum([0.0 if error is None else 1.0], device)[0]
    if error is not None:
        raise error
    if refused:
        raise _refusal(Path(directory), _read_holder(Path(directory) / LOCK_FILE))
    if lock is not None and lock.previous is not None and say is not None:
        say(f"{directory}: took over the stale lock of pid {lock.previous}, which no longer holds it")
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


__all__ = ["LOCK_FILE", "RunLock", "RunLockedError", "hold"]
