"""The one atomic-write helper: old file or new file, never a torn one, no temporary left behind."""

import json
import os
import stat

import pytest

from blt.core.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "state.json"
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    atomic_write_bytes(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_failed_writer_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_temp_keeps_suffix_and_directory(tmp_path):
    target = tmp_path / "plot.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png"


def test_permissions_follow_the_replaced_file_or_the_umask(tmp_path):
    target = tmp_path / "config.toml"
    target.write_text("x = 1\n")
    target.chmod(0o640)
    atomic_write_text(target, "x = 2\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640

    fresh = tmp_path / "model.safetensors"
    umask = os.umask(0o022)
    try:
        with atomic_path(fresh) as tmp:
            tmp.unlink()  # a writer that recreates the file owner-only (as safetensors does)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
