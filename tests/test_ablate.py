"""``blt ablate``: a tiny two-variant ablation end to end, matched budgets, skip, resume, no overwrite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from _tiny import run_env, tiny, write_toml

from blt.train.ablation import resolve_variants

pytestmark = pytest.mark.slow


def _ablation_file(path, budget=1.2e9, **variant_overrides):
    base = tiny()
    base["train"].pop("steps")
    base["train"].update({"eval_points": 2, "checkpoint_every": 2})
    base["run"].update({"log_every": 1})
    variants = {"strided4": {"patcher": {"kind": "strided", "patch_size": 4}},
                "byte_lm": {"patcher": {"kind": "byte"}, "model": {"kind": "byte", "d_global": 32, "global_layers": 1, "global_heads": 2}}}
    variants.update(variant_overrides)
    return write_toml(path, {"base": base, "budget": {"train_flops": budget}, "variants": variants})


def _ablate(config, out, env):
    return subprocess.run([sys.executable, "-m", "blt", "ablate", str(config), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=400)


def test_ablation_end_to_end_skip_and_resume(tmp_path):
    cache = tmp_path / "cache"
    config = _ablation_file(tmp_path / "ablation.toml")
    out = tmp_path / "out"
    # interrupted: SIGKILL in the first variant after its step 3 (its checkpoint at step 2 survives)
    killed = _ablate(config, out, run_env(cache, BLT_FAULT="kill_at_step:3"))
    assert killed.returncode == -signal.SIGKILL
    # the same command without the fault resumes it from its checkpoint, then trains the second
    done = _ablate(config, out, run_env(cache))
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in records] == ["strided4", "byte_lm"]
    for r in records:
        assert r["train_flops"] <= 1.2e9 and r["train_flops"] > 1.2e9 * 0.5  # matched budget, floor of whole steps
        assert 0 < r["bpb"] < 9 and r["params"] > 0 and r["wall_s"] > 0 and len(r["fingerprint"]) == 16
    assert records[0]["steps"] != records[1]["steps"]  # the same FLOPs, not the same step count
    assert records[1]["avg_patch_size"] == 1.0 and records[0]["avg_patch_size"] > 3
    assert "| strided4 |" in (out / "results.md").read_text()
    assert (out / "bpb_vs_flops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "strided4" in done.stdout and "BPB" in done.stdout
    # rerun: finished variants are skipped (the fault hook would kill any training)
    before = (out / "results.json").read_text()
    again = _ablate(config, out, run_env(cache, BLT_FAULT="kill_at_step:1"))
    assert again.returncode == 0 and "skipped" in again.stdout
    assert (out / "results.json").read_text() == before
    # a changed variant never overwrites the finished one
    changed = _ablation_file(tmp_path / "changed.toml", strided4={"patcher": {"kind": "strided", "patch_size": 3}})
    refused = _ablate(changed, out, run_env(cache))
    assert refused.returncode != 0 and "never overwritten" in refused.stderr
    assert (out / "results.json").read_text() == before


def test_bad_ablation_files(tmp_path, registry):
    from blt.core.errors import ConfigError

    bad = _ablation_file(tmp_path / "bad.toml", typo={"patcher": {"kind": "spaec"}})
    with pytest.raises(ConfigError, match="variant 'typo'.*did you mean 'space'"):
        resolve_variants(bad)
    tiny_budget = _ablation_file(tmp_path / "small.toml", budget=10.0)
    proc = _ablate(tiny_budget, tmp_path / "o", run_env(tmp_path / "cache"))
    assert proc.returncode != 0 and "less than one training step" in " ".join(proc.stderr.split())


def test_default_ablation_resolves(registry):
    from blt.train.ablation import default_ablation_path

    names = [name for name, _, _ in resolve_variants(default_ablation_path())]
    assert names == ["strided4", "space", "entropy", "cnn_entropy", "bpe", "byte_transformer", "bpe_transformer"]
