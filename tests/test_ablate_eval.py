"""``[eval] suites`` in ablations: suites and the BPB breakdown computed after each run, cached in
the run directory (a rerun scores nothing again), aggregated over seeds in results.json /
results.md, and drawn in robustness.png; adding [eval] to a finished ablation evaluates its runs
without retraining them."""

from __future__ import annotations

import json

import pytest
from _tiny import write_toml
from test_ablate import _base

from blt.ablation.stats import mean_ci

pytestmark = pytest.mark.slow


def _file(path, with_eval):
    variants = {"strided4": {"patcher": {"kind": "strided", "patch_size": 4}},
                "byte_lm": {"patcher": {"kind": "byte"}, "model": {"kind": "byte", "d_global": 32, "global_layers": 1, "global_heads": 2}}}
    data = {"base": _base(), "budget": {"train_flops": 6e8, "seeds": [0, 1]}, "variants": variants}
    if with_eval:
        data["eval"] = {"suites": ["noise"], "max_bytes": 1024}
    return write_toml(path, data)


def test_suites_in_an_ablation(tmp_path, monkeypatch, one_thread):
    from blt.ablation import run_ablation

    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    out = tmp_path / "out"
    plain = run_ablation(_file(tmp_path / "plain.toml", False), out, jobs=1)
    assert all("eval" not in e for e in plain) and not (out / "robustness.png").exists()
    trained = {p: p.read_text() for p in out.glob("runs/*/*/metrics.jsonl")}
    results = run_ablation(_file(tmp_path / "eval.toml", True), out, jobs=1)
    assert {p: p.read_text() for p in out.glob("runs/*/*/metrics.jsonl")} == trained  # evaluated, not retrained
    assert [e["bpb"] for e in results] == [e["bpb"] for e in plain]
    keys = {"clean", "antspeak", "drop", "random_case", "repeat", "upper_case"}
    for e in results:
        per_seed = [s["eval"]["noise"] for s in e["seeds"]]
        assert all(set(n) == keys for n in per_seed)
        for k in keys:
            assert e["eval"]["noise"][k]["ci95"] == pytest.approx(mean_ci([n[k] for n in per_seed])["ci95"])
        inc = [n["antspeak"] - n["clean"] for n in per_seed]
        assert e["eval"]["noise_increase"]["antspeak"]["mean"] == pytest.approx(sum(inc) / 2)
        assert set(e["eval"]["by_source"]) == {"kjv"} and e["eval"]["by_script"]
        for s in e["seeds"]:
            cached = json.loads((out / s["dir"] / "eval" / "noise.json").read_text())
            assert cached["result"] == s["eval"]["noise"] and cached["settings"]["max_bytes"] == 1024
    md = (out / "results.md").read_text()
    assert "## Noise robustness" in md and "+antspeak" in md and "## BPB by source" in md and "| kjv |" in md
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    # rerun: nothing is scored again (the cached files are untouched)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/eval/*.json")}
    assert len(stamps) == 2 * 2 * 2  # noise and breakdown, for every run
    again = run_ablation(_file(tmp_path / "eval.toml", True), out, jobs=1)
    assert again == results and {p: p.stat().st_mtime_ns for p in stamps} == stamps
