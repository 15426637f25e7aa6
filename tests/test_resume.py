"""Exact resume: a run SIGKILLed mid-way and restarted with the same command ends exactly like an
uninterrupted run; a crash inside checkpoint writing never leaves a corrupt ``latest``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from _tiny import run_env, tiny, write_toml

pytestmark = pytest.mark.slow


def _train(config, out, env, check=True):
    cmd = [sys.executable, "-m", "blt", "train", str(config), "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    cache = root / "cache"
    config = write_toml(root / "tiny.toml", tiny())
    out = root / "uninterrupted"
    _train(config, out, run_env(cache))
    return root, cache, config, out


@pytest.mark.parametrize("fault", ["kill_at_step:6", "kill_in_checkpoint:8"])
def test_sigkill_then_rerun_matches_uninterrupted(reference, fault):
    root, cache, config, ref_out = reference
    out = root / fault.replace(":", "_")
    killed = _train(config, out, run_env(cache, BLT_FAULT=fault), check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "final.json").exists()
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest == "step_00000004"  # step 6 and the half-written step 8 are not 'latest'
    _train(config, out, run_env(cache))  # the same command again
    final, ref = json.loads((out / "final.json").read_text()), json.loads((ref_out / "final.json").read_text())
    assert final["steps"] == ref["steps"] == 12
    assert final["loss"] == ref["loss"]  # bitwise: same data position, weights, optimizer, schedule
    assert final["eval_bpb"] == ref["eval_bpb"]
    assert [(r["step"], r.get("loss"), r.get("eval_bpb")) for r in _rows(out) if r["kind"] != "resume"] == \
           [(r["step"], r.get("loss"), r.get("eval_bpb")) for r in _rows(ref_out)]
    assert [(r["step"], r["checkpoint"]) for r in _rows(out) if r["kind"] == "resume"] == [(4, "step_00000004")]


def test_finished_run_is_not_retrained(reference):
    root, cache, config, ref_out = reference
    before = (ref_out / "final.json").read_text()
    proc = _train(config, ref_out, run_env(cache, BLT_FAULT="kill_at_step:1"))  # would die if it trained
    assert proc.returncode == 0
    assert (ref_out / "final.json").read_text() == before
