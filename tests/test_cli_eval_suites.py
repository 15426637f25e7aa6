"""``blt eval``: BPB by script and source, ``--suite noise|chars`` for every model family, bad input."""

from __future__ import annotations

import json
import math
import os

import pytest
from _tiny import tiny, write_toml

from blt.cli.main import main
from blt.evaluation.chars import TASKS

FAMILIES = {
    "blt": {},
    "byte": {"model": {"kind": "byte", "d_global": 32, "global_layers": 1, "global_heads": 2, "global_ffn": 64}},
    "bpe_token": {"model": {"kind": "bpe_token", "d_global": 32, "global_layers": 1, "global_heads": 2, "global_ffn": 64},
                  "patcher": {"kind": "bpe"}},
}
NOISE_KEYS = ["clean", "antspeak", "drop", "random_case", "repeat", "upper_case"]


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained run per model family (2 steps each)."""
    root = tmp_path_factory.mktemp("eval_runs")
    old = {k: os.environ.get(k) for k in ("BLT_CACHE_DIR", "BLT_DISABLE_PLUGIN_AUTOLOAD")}
    os.environ["BLT_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "cache")
    os.environ["BLT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    out = {}
    try:
        for name, sections in FAMILIES.items():
            cfg = write_toml(root / f"{name}.toml", tiny(**sections, train={"steps": 2, "eval_every": 0, "checkpoint_every": 2}))
            assert main(["train", str(cfg), "--out", str(root / name)]) == 0
            out[name] = root / name
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_plain_eval_adds_the_breakdown(runs, capsys, family):
    out = _json(capsys, ["eval", str(runs[family]), "--max-bytes", "600", "--json"])
    assert {"bpb", "bytes", "bytes_per_s", "avg_patch_size", "params", "documents", "by_script", "by_source"} <= set(out)
    assert list(out["by_source"]) == ["kjv"] and out["by_source"]["kjv"]["bytes"] == 600
    assert sum(v["bytes"] for v in out["by_script"].values()) == 600
    assert set(out["by_script"]) <= {"Latin", "other"} and all(v["bpb"] > 0 for v in out["by_script"].values())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_noise_suite_every_family(runs, capsys, family):
    out = _json(capsys, ["eval", str(runs[family]), "--suite", "noise", "--max-bytes", "300", "--json"])
    assert list(out) == NOISE_KEYS
    assert all(math.isfinite(v) and v > 0 for v in out.values())
    assert out["antspeak"] > out["clean"]  # twice the bytes to predict, per original byte


def test_noise_suite_is_seeded(runs, capsys):
    argv = ["eval", str(runs["blt"]), "--suite", "noise", "--max-bytes", "300", "--json"]
    out = _json(capsys, argv)
    assert _json(capsys, argv) == out  # deterministic
    other = _json(capsys, [*argv, "--seed", "1"])
    # the clean and upper-cased texts do not depend on the seed (batches of other lengths may round differently)
    assert other["clean"] == pytest.approx(out["clean"], rel=1e-6)
    assert other["upper_case"] == pytest.approx(out["upper_case"], rel=1e-6)
    assert other["drop"] != pytest.approx(out["drop"], rel=1e-6)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_chars_suite_every_family(runs, capsys, family):
    out = _json(capsys, ["eval", str(runs[family]), "--suite", "chars", "--max-bytes", "300", "--items", "2", "--json"])
    assert list(out) == list(TASKS)
    for task, row in out.items():
        assert set(row) == {"accuracy", "chance", "n"}
        assert 1 <= row["n"] <= 2 and 0 <= row["accuracy"] <= 1 and row["chance"] in (0.25, 0.5), task


def test_tables(runs, capsys):
    capsys.readouterr()
    assert main(["eval", str(runs["blt"]), "--suite", "noise", "--max-bytes", "200"]) == 0
    text = capsys.readouterr().out
    assert "increase over clean" in text and "antspeak" in text and "upper_case" in text
    assert main(["eval", str(runs["blt"]), "--max-bytes", "200"]) == 0
    text = capsys.readouterr().out
    assert "BPB by script" in text and "BPB by source" in text and "kjv" in text
    assert main(["eval", str(runs["blt"]), "--suite", "chars", "--max-bytes", "200", "--items", "2"]) == 0
    text = capsys.readouterr().out
    assert "chance" in text and "swap_word" in text


def test_files_break_down_by_script_and_file(runs, capsys, tmp_path):
    (tmp_path / "mixed.txt").write_text("In the beginning. Привет мир. Καλημέρα. 東京 カタカナ 한국어 مرحبا\n", encoding="utf-8")
    out = _json(capsys, ["eval", str(runs["blt"]), str(tmp_path / "mixed.txt"), "--json"])
    assert set(out["by_script"]) == {"Latin", "Cyrillic", "Greek", "Han", "Kana", "Hangul", "Arabic", "other"}
    assert list(out["by_source"]) == ["mixed.txt"]
    assert out["by_source"]["mixed.txt"]["bytes"] == len((tmp_path / "mixed.txt").read_bytes())


def _fails(capsys, argv, *needles):
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err
    line = " ".join(err.split())
    assert line.startswith("error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in line, line


def test_bad_input_is_one_line(runs, capsys, tmp_path):
    run = str(runs["blt"])
    _fails(capsys, ["eval", run, "--suite", "nois"], "unknown suite 'nois'", "noise, chars")
    (tmp_path / "empty.txt").write_text("")
    _fails(capsys, ["eval", run, str(tmp_path / "empty.txt"), "--suite", "noise"], "no text")
    _fails(capsys, ["eval", run, str(tmp_path / "empty.txt")], "no text")
    (tmp_path / "norun").mkdir()
    _fails(capsys, ["eval", str(tmp_path / "norun"), "--suite", "chars"], "no checkpoint in")
    _fails(capsys, ["eval", run, "--max-bytes", "0"], "--max-bytes must be positive")
