"""Two gloo ranks on CPU (DDP and FSDP2) train to the same losses as one process on the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from _tiny import run_env, tiny, write_toml

pytestmark = pytest.mark.slow

STEPS = 4


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line]


def _run(root, cache, name, parallel, nproc):
    config = write_toml(root / f"{name}.toml", tiny(train={"steps": STEPS, "eval_every": 0, "checkpoint_every": 2,
                                                                  "eval_bytes": 512}, run={"parallel": parallel}))
    out = root / name
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] \
        if nproc > 1 else [sys.executable]
    proc = subprocess.Popen([*launcher, "-m", "blt", "train", str(config), "--out", str(out)], env=run_env(cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        proc.stdout_text, proc.stderr_text = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its workers, nothing else
        raise
    proc.stdout, proc.stderr = proc.stdout_text, proc.stderr_text
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    cache = root / "cache"
    return root, cache, _losses(_run(root, cache, "single", "none", 1))


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_match_one(single, mode):
    root, cache, reference = single
    out = _run(root, cache, mode, mode, 2)
    losses = _losses(out)
    assert len(losses) == len(reference) == STEPS
    diff = max(abs(a - b) for a, b in zip(losses, reference))
    assert diff < 1e-4, (losses, reference)
    final = json.loads((out / "final.json").read_text())
    assert final["world_size"] == 2
    assert (out / "export" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step_{STEPS:08d}"
