"""The ``python`` source: the running interpreter's standard library ``.py`` files, one document per file."""

from __future__ import annotations

import pathlib
import sysconfig

from .common import Candidate

PYTHON_VERSION = (3, 11, 7)
PYTHON_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "encodings", "__pycache__"})
PYTHON_SMALL_MAX_FILE_BYTES = 32_000  # many mid-sized files rather than a few huge ones (e.g. pydoc_data/topics.py)


def python_candidates(max_file_bytes: int | None) -> list[Candidate]:
    """One candidate per stdlib ``.py`` file, sorted by POSIX relative path."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    candidates = []
    for path in sorted(stdlib.rglob("*.py"), key=lambda p: p.relative_to(stdlib).as_posix()):
        rel = path.relative_to(stdlib)
        if any(part in PYTHON_EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        data = path.read_bytes()
        if max_file_bytes is not None and len(data) > max_file_bytes:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # the stdlib outside test/ is UTF-8; skip rather than guess an encoding
        if not text.strip():
            continue  # many __init__.py files are empty
        candidates.append(Candidate(f"python/{rel.as_posix()}", text, "python", "Latin"))
    return candidates
