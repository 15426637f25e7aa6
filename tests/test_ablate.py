"""``blt ablate`` end to end on tiny runs: two variants x two seeds at matched budgets (per-seed
numbers, means, 95% intervals and paired differences as computed by hand), resume after a kill
without redoing finished runs, ``--jobs 2`` identical to ``--jobs 1``
a grid with an lr sweep,
and one-line errors for bad files."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys

import pytest
from _tiny import run_env, tiny, write_toml

pytestmark = pytest.mark.slow

T_975_DF1 = 12.7062047  # two seeds: t quantile with one degree of freedom


def _base():
    base = tiny()
    base["train"].pop("steps")
    base["train"].update({"eval_points": 2, "checkpoint_every": 2})
    base["run"].update({"log_every": 1})
    return base


def _ablation_file(path, budget=1.2e9, seeds=(0, 1), extra=None, **variant_overrides):
    variants = {"strided4": {"patcher": {"kind": "strided", "patch_size": 4}},
                "byte_lm": {"patcher": {"kind": "byte"}, "model": {"kind": "byte", "d_global": 32, "global_layers": 1, "global_heads": 2}}}
    variants.update(variant_overrides)
    data = {"base": _base(), "budget": {"train_flops": budget, **({"seeds": list(seeds)} if seeds else {})}, "variants": variants}
    data.update(extra or {})
    return write_toml(path, data)


def _ablate(config, out, env, *extra):
    return subprocess.run([sys.executable, "-m", "blt", "ablate", str(config), "--out", str(out), *extra], env=env,
                          capture_output=True, text=True, timeout=400)


def _bpbs(out):
    return {(e["name"], s["seed"]): s["bpb"] for e in json.loads((out / "results.json").read_text()) for s in e["seeds"]}


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory):
    """The two-variant two-seed ablation, killed in its first run and resumed (``--jobs 1``)."""
    root = tmp_path_factory.mktemp("ablate")
    cache = root / "cache"
    config = _ablation_file(root / "ablation.toml")
    out = root / "out"
    killed = _ablate(config, out, run_env(cache, BLT_FAULT="kill_at_step:3"), "--jobs", "1")
    assert killed.returncode == -signal.SIGKILL
    done = _ablate(config, out, run_env(cache), "--jobs", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    return root, cache, config, out, done


def test_two_variants_two_seeds_statistics(two_by_two):
    root, cache, config, out, done = two_by_two
    results = json.loads((out / "results.json").read_text())
    assert [e["name"] for e in results] == ["strided4", "byte_lm"]
    for e in results:
        assert [s["seed"] for s in e["seeds"]] == [0, 1] and e["n_seeds"] == 2
        for s in e["seeds"]:
            assert 1.2e9 * 0.5 < s["train_flops"] <= 1.2e9 and 0 < s["bpb"] < 9 and len(s["fingerprint"]) == 16
            assert (out / s["dir"] / "final.json").is_file() and s["dir"] == f"runs/{e['name']}/seed{s['seed']}"
        a, b = (s["bpb"] for s in e["seeds"])
        mean, sd = (a + b) / 2, abs(a - b) / math.sqrt(2)
        half = T_975_DF1 * sd / math.sqrt(2)
        assert e["bpb"] == pytest.approx(mean, rel=1e-12)
        assert e["bpb_ci95"] == pytest.approx([mean - half, mean + half], rel=1e-6)
    assert results[0]["seeds"][0]["bpb"] != results[0]["seeds"][1]["bpb"]  # the seed changes the run
    assert results[0]["steps"] != results[1]["steps"]  # the same FLOPs, not the same step count
    assert results[1]["avg_patch_size"] == 1.0 and results[0]["avg_patch_size"] > 3
    assert "paired_diff" not in results[0]
    pd = results[1]["paired_diff"]
    diffs = [results[1]["seeds"][k]["bpb"] - results[0]["seeds"][k]["bpb"] for k in (0, 1)]
    dmean, dhalf = sum(diffs) / 2, T_975_DF1 * abs(diffs[0] - diffs[1]) / math.sqrt(2) / math.sqrt(2)
    assert pd["reference"] == "strided4" and pd["mean"] == pytest.approx(dmean, rel=1e-12)
    assert pd["ci95"] == pytest.approx([dmean - dhalf, dmean + dhalf], rel=1e-6)
    assert [d["diff"] for d in pd["per_seed"]] == pytest.approx(diffs)
    # the evaluation bytes are the same for every seed and variant
    evals = {json.loads((out / s["dir"] / "final.json").read_text())["eval_bytes"] for e in results for s in e["seeds"]}
    assert len(evals) == 1
    md = (out / "results.md").read_text()
    assert "| strided4 | " in md and " ± " in md and "Δ vs strided4" in md and "## Per seed" in md
    assert f"{dmean:+.4f} ± {dhalf:.4f}" in md
    assert (out / "bpb_vs_flops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "strided4" in done.stdout and "BPB" in done.stdout and "resuming from" in done.stdout


def test_rerun_reuses_finished_runs_and_never_overwrites(two_by_two, monkeypatch, one_thread):
    root, cache, config, out, _ = two_by_two
    monkeypatch.setenv("BLT_CACHE_DIR", str(cache))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    before = (out / "results.json").read_text()
    again = _ablate(config, out, run_env(cache, BLT_FAULT="kill_at_step:1"))  # any training would be killed
    assert again.returncode == 0 and again.stdout.count("finished earlier, skipped") == 4
    assert (out / "results.json").read_text() == before
    # one more seed: only the two new runs train; the old ones are reused
    more = _ablate(config, out, run_env(cache), "--seeds", "0,1,2")
    assert more.returncode == 0, more.stderr[-2000:]
    assert more.stdout.count("finished earlier, skipped") == 4 and more.stdout.count(": training") == 2
    snapshot = (out / "results.json").read_text()
    three = json.loads(snapshot)
    assert [e["n_seeds"] for e in three] == [2 + 1, 2 + 1]
    assert {k: v for k, v in _bpbs(out).items() if k[1] < 2} == {k: v for e in json.loads(before)
                                                                 for k, v in {(e["name"], s["seed"]): s["bpb"] for s in e["seeds"]}.items()}
    # a changed variant never overwrites the finished one (refused before anything trains)
    from blt.ablation import AblationError, run_ablation

    changed = _ablation_file(root / "changed.toml", strided4={"patcher": {"kind": "strided", "patch_size": 3}})
    with pytest.raises(AblationError, match="never overwritten"):
        run_ablation(changed, out, jobs=1)
    assert (out / "results.json").read_text() == snapshot


def test_jobs_2_gives_the_numbers_of_jobs_1_and_resumes_after_a_dead_worker(two_by_two, tmp_path):
    root, cache, config, out, _ = two_by_two
    par = tmp_path / "par"
    killed = _ablate(config, par, run_env(cache, BLT_FAULT="kill_at_step:3"), "--jobs", "2")
    assert killed.returncode != 0 and "worker process died" in killed.stderr and "Traceback" not in killed.stderr
    done = _ablate(config, par, run_env(cache), "--jobs", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 worker processes" in done.stdout and "resuming from" in done.stdout
    serial = {k: v for k, v in _bpbs(out).items() if k[1] < 2}
    assert _bpbs(par) == serial  # exactly, per seed
    # no interleaved output: every line a worker caused is a whole line naming its run
    for line in done.stdout.splitlines():
        if "resuming from" in line:
            assert line.startswith(("strided4 seed", "byte_lm seed"))
