"""Two gloo ranks on CPU (DDP and FSDP2) train to the same losses as one process on the same global batch;
so do two torchrun agents rendezvousing as two nodes (c10d), and a rank that fails stops the run at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny import run_env, tiny, write_toml

pytestmark = pytest.mark.slow

STEPS = 4
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line]


def _config(root, name, parallel):
    return write_toml(root / f"{name}.toml", tiny(train={"steps": STEPS, "eval_every": 0, "checkpoint_every": 2,
                                                         "eval_bytes": 512}, run={"parallel": parallel}))


def _launch(argvs, cache, timeout=240, **env):
    """Start every command line at once (each in its own session), wait for all; (rc, stdout, stderr) each."""
    procs = [subprocess.Popen(argv, env=run_env(cache, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) for argv in argvs]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append((proc.returncode, out, err))
    except subprocess.TimeoutExpired:
        for proc in procs:  # the launchers and their workers (torchrun starts each in its own session), nothing else
            for pid in [proc.pid, *_descendants(proc.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        raise
    return results


def _descendants(pid):
    """Every process below ``pid`` (from /proc; none where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _run(root, cache, name, parallel, nproc):
    config, out = _config(root, name, parallel), root / name
    launcher = [*TORCHRUN, "--standalone", "--nproc-per-node", str(nproc)] if nproc > 1 else [sys.executable]
    [(rc, stdout, stderr)] = _launch([[*launcher, "-m", "blt", "train", str(config), "--out", str(out)]], cache)
    assert rc == 0, stdout[-1500:] + stderr[-3000:]
    return out


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    cache = root / "cache"
    return root, cache, _run(root, cache, "single", "none", 1)


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_match_one(single, mode):
    root, cache, single_out = single
    reference = _losses(single_out)
    out = _run(root, cache, mode, mode, 2)
    losses = _losses(out)
    assert len(losses) == len(reference) == STEPS
    diff = max(abs(a - b) for a, b in zip(losses, reference))
    assert diff < 1e-4, (losses, reference)
    final = json.loads((out / "final.json").read_text())
    assert final["world_size"] == 2
    assert (out / "export" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step_{STEPS:08d}"


def test_two_nodes_match_one(single):
    """The README's multi-node recipe on one machine: two torchrun agents (one worker each) meet
    through a c10d rendezvous on a free port, and the console script ``blt train`` runs under them."""
    root, cache, single_out = single
    config, out, port = _config(root, "nodes", "ddp"), root / "nodes", _free_port()
    blt_script = Path(sys.executable).with_name("blt")
    program = ["--no-python", str(blt_script)] if blt_script.is_file() else ["-m", "blt"]
    agents = [[*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node), "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "blt-two-nodes",
               *program, "train", str(config), "--out", str(out)] for node in range(2)]
    results = _launch(agents, cache)
    for node, (rc, stdout, stderr) in enumerate(results):
        assert rc == 0, f"node {node}:\n" + stdout[-1500:] + stderr[-3000:]
    assert sum("done:" in stdout for _, stdout, _ in results) == 1  # only rank 0 reports
    reference, final = (json.loads((o / "final.json").read_text()) for o in (single_out, out))
    assert final["world_size"] == 2 and reference["world_size"] == 1
    assert abs(final["loss"] - reference["loss"]) < 1e-4, (final["loss"], reference["loss"])
    assert abs(final["eval_bpb"] - reference["eval_bpb"]) < 1e-4, (final["eval_bpb"], reference["eval_bpb"])
    diff = max(abs(a - b) for a, b in zip(_losses(out), _losses(single_out), strict=True))
    assert diff < 1e-4


FAIL_ON_RANK_1 = """
import os, sys
from blt import parallel
if os.environ["RANK"] == "1":
    def all_reduce_sum(*args, **kwargs):
        raise RuntimeError("injected failure on rank 1")
    parallel.all_reduce_sum = all_reduce_sum
from blt.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_one_failing_rank_stops_the_run(single, tmp_path):
    """Rank 1 raises after its first step while rank 0 sums the step's loss (a collective rank 1
    never joins): the run ends within seconds with the failure reported, where a barrier on the way
    out would wait for rank 0 until the group's timeout (30 min under gloo)."""
    root, cache, _ = single
    script = tmp_path / "fail_on_rank_1.py"
    script.write_text(FAIL_ON_RANK_1)
    config = _config(root, "failing", "fsdp")
    [(rc, stdout, stderr)] = _launch([[*TORCHRUN, "--standalone", "--nproc-per-node", "2", str(script), "train",
                                       str(config), "--out", str(tmp_path / "out")]], cache, timeout=60)
    assert rc != 0
    assert "injected failure on rank 1" in stdout + stderr, stdout[-1500:] + stderr[-3000:]
    assert "terminate called" not in stderr, stderr[-3000:]


def test_device_follows_local_rank(monkeypatch):
    """On node 1 of two (RANK 1, LOCAL_RANK 0) a CUDA run takes cuda:0, the node's own first device."""
    import torch

    from blt import parallel

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # no process group: only the device choice is under test
    info = parallel.init("cuda")
    assert info.device == torch.device("cuda", 0) and chosen == [torch.device("cuda", 0)]
    assert (info.rank, info.local_rank) == (1, 0)
