"""Atomic file writes: the one helper every writer of run state uses.

A file is written to a temporary name in its own directory, flushed to disk, then moved over the
target with ``os.replace``, so a reader (or a run resumed after a crash) sees the old file or the
new one, never a torn one. The new file gets the target's permissions when it replaces one, else
the ones an ordinary ``open(path, "w")`` would give (``0o666`` less the umask).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a writer that takes a file name
    (``safetensors.torch.save_file``, ``Tokenizer.save``, ``Figure.savefig``); when the block
    ends cleanly the file is synced and replaces ``path``, and on an exception it is removed.
    The temporary name ends with ``path``'s suffix, so writers that pick a format from it agree."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        mode = path.stat().st_mode & 0o7777 if path.exists() else os.stat(tmp).st_mode & 0o7777
        yield tmp
        os.chmod(tmp, mode)  # some writers (safetensors) recreate the file owner-only
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 1,
                      sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON (and a final newline) to ``path`` atomically; returns ``path``."""
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def _create_temp(path: Path) -> Path:
    # O_EXCL with mode 0o666: a fresh name no one else holds, with the umask applied as for any file
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {path}")


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
