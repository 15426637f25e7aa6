"""Runs that survive what users do to them: a second run into a live run directory is refused in
one line and the first finishes unchanged; a stale lock is taken over; a run killed inside a
checkpoint write, or whose newest checkpoint is truncated, resumes from the previous one exactly
and says so; a run driven to NaN stops in one line with its last good checkpoint loadable;
pruning never removes the newest checkpoint or the one ``latest`` names."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from _tiny import run_env, tiny, write_toml
from test_resume import _rows

from blt.cli.main import main
from blt.train import checkpoint
from blt.train.run_lock import LOCK_FILE, RunLock, RunLockedError


def _blt_train(config, out, env, *extra):
    cmd = [sys.executable, "-m", "blt", "train", str(config), "--out", str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _one_line(text):
    return " ".join(text.split())  # rich may wrap


def _final(out):
    return json.loads((out / "final.json").read_text())


def _train_rows(out):
    return [(r["step"], r.get("loss"), r.get("eval_bpb")) for r in _rows(out) if r["kind"] != "resume"]


def _snapshot(out):
    return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    cache = root / "cache"
    config = write_toml(root / "tiny.toml", tiny())  # 12 steps, a checkpoint every 4, keep 2
    out = root / "uninterrupted"
    proc = _blt_train(config, out, run_env(cache))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, cache, config, out


@pytest.fixture
def in_process(reference, monkeypatch):
    root, cache, config, _ = reference
    monkeypatch.setenv("BLT_CACHE_DIR", str(cache))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    return config


def test_second_run_into_a_live_run_is_refused_and_the_first_finishes_unchanged(reference, tmp_path):
    root, cache, config, ref = reference
    out = tmp_path / "live"
    with open(tmp_path / "first.log", "w") as log:  # a file, not a pipe: a stopped writer never blocks the test
        first = subprocess.Popen([sys.executable, "-m", "blt", "train", str(config), "--out", str(out)],
                                 env=run_env(cache, BLT_FAULT="stop_at_step:2"), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:  # the first run SIGSTOPs itself after step 2, holding the directory
            pid, status = os.waitpid(first.pid, os.WUNTRACED | os.WNOHANG)
            if pid:
                assert os.WIFSTOPPED(status), (tmp_path / "first.log").read_text()[-2000:]
                break
            assert time.monotonic() < deadline, "the first run never reached step 2"
            time.sleep(0.05)
        before = _snapshot(out)
        second = _blt_train(config, out, run_env(cache), "--no-resume")  # would wipe the run if it went ahead
        assert second.returncode != 0
        line = _one_line(second.stderr)
        assert line.startswith("error:") and "Traceback" not in second.stderr, second.stderr
        assert f"in use by a live run (pid {first.pid})" in line, line
        assert second.stderr.count("\n") == 1
        assert _snapshot(out) == before
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=240) == 0, (tmp_path / "first.log").read_text()[-2000:]
    assert _final(out)["loss"] == _final(ref)["loss"]
    assert _train_rows(out) == _train_rows(ref)
    assert not (out / LOCK_FILE).exists()  # released on a clean finish


def test_kill_inside_a_checkpoint_write_resumes_from_the_previous_one_exactly(reference, tmp_path):
    root, cache, config, ref = reference
    out = tmp_path / "killed"
    killed = _blt_train(config, out, run_env(cache, BLT_FAULT="kill_in_checkpoint:8"))
    assert killed.returncode == -signal.SIGKILL
    partial = out / "checkpoints" / ".tmp-step_00000008"
    written = {p.name for p in partial.iterdir()}
    assert any(name.endswith(".distcp") for name in written) and "train_state.json" not in written  # died between files
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_00000004"
    dead_pid = json.loads((out / LOCK_FILE).read_text())["pid"]  # the killed run's lock file stays behind

    rerun = _blt_train(config, out, run_env(cache))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    said = _one_line(rerun.stderr)
    assert f"took over the stale lock of pid {dead_pid}" in said, said
    assert "resuming from" in said and "step_00000004 (step 4 of 12)" in said, said
    assert "data order and RNG continue" in said, said
    resumes = [r for r in _rows(out) if r["kind"] == "resume"]
    assert [(r["step"], r["checkpoint"]) for r in resumes] == [(4, "step_00000004")]
    assert _final(out)["loss"] == _final(ref)["loss"]  # bitwise
    assert _train_rows(out) == _train_rows(ref)


def test_truncated_newest_checkpoint_resumes_from_the_previous_valid_one(reference, tmp_path, in_process, capsys):
    root, cache, config, ref = reference
    out = tmp_path / "truncated"
    killed = _blt_train(config, out, run_env(cache, BLT_FAULT="kill_at_step:10"))
    assert killed.returncode == -signal.SIGKILL
    ckpts = out / "checkpoints"
    assert [p.name for p in checkpoint.checkpoints(ckpts)] == ["step_00000004", "step_00000008"]
    shard = next((ckpts / "step_00000008").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])

    both = tmp_path / "both_truncated"  # with every checkpoint damaged the run refuses in one line naming them
    shutil.copytree(out, both)
    old_shard = next((both / "checkpoints" / "step_00000004").glob("*.distcp"))
    old_shard.write_bytes(old_shard.read_bytes()[:100])
    before = _snapshot(both / "checkpoints")
    assert main(["train", str(config), "--out", str(both)]) != 0
    err = capsys.readouterr().err
    note, line = err.strip().splitlines()  # the killed run's lock taken over, then the refusal
    assert "took over the stale lock" in note and line.startswith("error:"), err
    assert "no checkpoint" in line and "--no-resume" in line, line
    assert str(both / "checkpoints" / "step_00000008" / shard.name) in line
    assert str(both / "checkpoints" / "step_00000004" / old_shard.name) in line
    assert _snapshot(both / "checkpoints") == before

    rerun = _blt_train(config, out, run_env(cache))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    said = _one_line(rerun.stderr)
    assert f"skipped a damaged checkpoint: checkpoint file {shard} is truncated" in said, said
    assert "step_00000004 (step 4 of 12, the newest readable one)" in said, said
    assert _final(out)["loss"] == _final(ref)["loss"]
    assert _train_rows(out) == _train_rows(ref)


def test_nan_loss_stops_in_one_line_and_the_last_good_checkpoint_loads(reference, tmp_path, in_process, capsys):
    from blt.train.weights import load_trained

    out = tmp_path / "diverged"
    code = main(["train", str(in_process), "--out", str(out), "--set", "train.lr=1e30", "--set", "train.checkpoint_every=1"])
    err = capsys.readouterr().err
    assert code != 0
    line = _one_line(err)
    assert line.startswith("error:") and "Traceback" not in err, err
    assert "loss became nan" in line and "at step 2" in line, line
    assert "last good checkpoint is" in line and "step_00000001 (step 1)" in line, line
    assert not (out / "final.json").exists()
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_00000001"
    assert [p.name for p in checkpoint.checkpoints(out / "checkpoints")] == ["step_00000001"]
    *_, model = load_trained(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    diverged = [r for r in _rows(out) if r["kind"] == "diverged"]
    assert len(diverged) == 1 and diverged[0]["step"] == 2 and math.isnan(diverged[0]["loss"])
    assert not (out / LOCK_FILE).exists()


def _save(root, step, keep):
    torch.manual_seed(step)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    return checkpoint.save(root, step, model, optimizer, {"step": step}, rank=0, keep=keep)


def test_pruning_keeps_the_newest_and_latest_by_step(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 4, keep=2)
    _save(root, 12, keep=2)  # then a crash between the rename of 12 and `latest`: a stale, newer-named checkpoint
    (root / "latest").write_text("step_00000004\n")
    assert checkpoint.resume_candidates(root)[0] == [root / "step_00000004"]  # `latest`, not the stale newer one

    written = _save(root, 5, keep=1)  # sorting names and keeping the last one would delete step 5 itself
    assert (root / "latest").read_text().strip() == written.name == "step_00000005"
    assert [p.name for p in checkpoint.checkpoints(root)] == ["step_00000005", "step_00000012"]
    assert checkpoint.problem(written) is None

    for step in (100, 1000):
        _save(root, step, keep=2)
    assert [p.name for p in checkpoint.checkpoints(root)] == ["step_00000100", "step_00001000"]
    (root / "step_00001000" / "train_state.json").write_text("{")  # a damaged one is not counted as kept
    _save(root, 2000, keep=2)
    assert [p.name for p in checkpoint.checkpoints(root)] == ["step_00000100", "step_00002000"]


def test_lock_is_exclusive_names_its_holder_and_a_stale_one_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run) as held:
        with pytest.raises(RunLockedError, match=rf"in use by a live run \(pid {os.getpid()}\)"):
            RunLock(run).acquire()  # another open of the lock file, as another process would make
        assert held.previous is None
    assert not (run / LOCK_FILE).exists()

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / LOCK_FILE).write_text(json.dumps({"pid": int(gone.stdout), "host": "x"}))  # left by a killed run
    with RunLock(run) as taken:
        assert taken.previous == int(gone.stdout)
    (run / LOCK_FILE).write_text(json.dumps({"pid": os.getppid()}))  # a live pid that holds no lock: flock decides
    with RunLock(run) as taken:
        assert taken.previous == os.getppid()


def test_an_ablation_into_a_live_directory_is_refused_before_it_writes(tmp_path):
    from blt.ablation import default_ablation_path, run_ablation

    out = tmp_path / "ablation"
    with RunLock(out):
        with pytest.raises(RunLockedError, match=str(os.getpid())):
            run_ablation(default_ablation_path(), out)
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]
    assert not out.exists()  # the lock made the directory and nothing else was written: it is gone again
