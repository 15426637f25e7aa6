"""What every source shares: the source table and its licences, the Debian documentation packages'
pins, the record type, the held-out split rule and selection key, and checksum-checked downloads.
"""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import subprocess
from typing import NamedTuple


class DebianDoc(NamedTuple):
    """A Debian package of HTML documentation translated into many languages."""

    package: str
    version: str
    deb_sha256: str
    html_root: str  # directory inside the package holding one subdirectory per language
    english: str  # the subdirectory of the English original
    licence: str


INSTALL_GUIDE = DebianDoc(
    "installation-guide-amd64", "20230508+deb12u1",
    "812c43e1dc906daf671e3efe953dc023205c238e5bd5a3021ce4ca142793573a",
    "usr/share/doc/installation-guide-amd64", "en",
    "GPL-2 (Debian Installation Guide, (c) 1996-2023 Bruce Perens, the Debian Installer team and others).",
)
HANDBOOK = DebianDoc(
    "debian-handbook", "11.20220922",
    "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
    "usr/share/doc/debian-handbook/html", "en-US",
    "GPL-2+ or CC-BY-SA-3.0 (The Debian Administrator's Handbook, (c) Raphaël Hertzog, Roland Mas and translators).",
)
DOCS = {"installation-guide": INSTALL_GUIDE, "handbook": HANDBOOK}


class SourceSpec(NamedTuple):
    language: str  # BCP 47 tag of the records ("python" for code; "various" for udhr, whose records carry their own)
    script: str
    collection: str  # kjv | python | chinese | installation-guide | handbook | udhr
    subdir: str = ""  # the language's directory inside a Debian documentation package
    small_budget: int | None = None  # UTF-8 text bytes in the shipped corpus; None: every candidate


SOURCE_SPECS: dict[str, SourceSpec] = {
    "kjv": SourceSpec("en", "Latin", "kjv", small_budget=450_000),
    "python": SourceSpec("python", "Latin", "python", small_budget=450_000),
    "chinese": SourceSpec("lzh", "Han", "chinese", small_budget=250_000),
    "fr": SourceSpec("fr", "Latin", "installation-guide", "fr", 180_000),
    "de": SourceSpec("de", "Latin", "installation-guide", "de", 180_000),
    "es": SourceSpec("es", "Latin", "installation-guide", "es", 180_000),
    "ru": SourceSpec("ru", "Cyrillic", "installation-guide", "ru", 180_000),
    "el": SourceSpec("el", "Greek", "installation-guide", "el", 180_000),
    "ar": SourceSpec("ar", "Arabic", "handbook", "ar-MA", 180_000),
    "fa": SourceSpec("fa", "Arabic", "handbook", "fa-IR", 180_000),
    "ja": SourceSpec("ja", "Kana", "installation-guide", "ja", 180_000),
    "ko": SourceSpec("ko", "Hangul", "installation-guide", "ko", 180_000),
    "zh": SourceSpec("zh-Hans", "Han", "installation-guide", "zh_CN", 180_000),
    "udhr": SourceSpec("various", "various", "udhr"),
}
SOURCES = tuple(SOURCE_SPECS)
HELDOUT_MODULUS = 10

LICENCES = {
    "kjv": "Public domain (the King James Version text); the Debian packaging is GPL-2+ and is not shipped.",
    "python": "PSF-2.0 (Python Software Foundation License Version 2).",
    "chinese": "MIT (chinese-poetry, Copyright (c) 2016 JackeyGao); the poems themselves are centuries old.",
    "installation-guide": INSTALL_GUIDE.licence,
    "handbook": HANDBOOK.licence,
    "udhr": "MIT (udhr, Copyright (c) Titus Wormer); the Declaration's text is free to reproduce (OHCHR).",
}


class Candidate(NamedTuple):
    id: str
    text: str
    language: str
    script: str


class BuildError(RuntimeError):
    """A source could not be fetched or did not match its pinned version/checksum."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_of(doc_id: str) -> str:
    """The fixed held-out rule, shared by every size."""
    return "heldout" if int(sha256_hex(doc_id.encode()), 16) % HELDOUT_MODULUS == 0 else "train"


def selection_key(doc_id: str) -> str:
    # Salted so the subset choice is independent of the split rule.
    return sha256_hex(("select:" + doc_id).encode())


def check_sha256(path: pathlib.Path, expected: str) -> pathlib.Path:
    digest = sha256_hex(path.read_bytes())
    if digest != expected:
        raise BuildError(f"{path} has sha256 {digest}, expected {expected}")
    return path


def fetch_npm_tarball(cache_dir: pathlib.Path, package: str, version: str, sha256: str) -> pathlib.Path:
    tarball = cache_dir / f"{package}-{version}.tgz"
    if not tarball.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        if shutil.which("npm") is None:
            raise BuildError(f"npm is missing; it is needed to fetch {package} (`npm pack {package}@{version}`)")
        subprocess.run(["npm", "pack", f"{package}@{version}"], cwd=cache_dir, check=True, stdout=subprocess.DEVNULL)
    return check_sha256(tarball, sha256)


def fetch_deb(cache_dir: pathlib.Path, doc: DebianDoc) -> pathlib.Path:
    deb = cache_dir / f"{doc.package}_{doc.version}_all.deb"
    if not deb.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        if shutil.which("apt-get") is None:
            raise BuildError(f"apt-get is missing; it is needed to fetch {doc.package} {doc.version}")
        result = subprocess.run(["apt-get", "download", f"{doc.package}={doc.version}"], cwd=cache_dir,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0 or not deb.exists():
            raise BuildError(f"`apt-get download {doc.package}={doc.version}` failed (run `apt-get update` first?): "
                             f"{result.stderr.strip().splitlines()[-1:]}")
    return check_sha256(deb, doc.deb_sha256)
