"""The ``blt`` commands of issue 2: plugins, patch, check-plugin, schema; errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blt.cli.main import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_autoload(monkeypatch):
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("COLUMNS", "200")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plugins_table_and_json(capsys):
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    for word in ("strided", "space", "bpe", "blt-lab", "incremental", "available", "sdpa"):
        assert word in out
    code, out, _ = run(capsys, "plugins", "--json", "--family", "patchers")
    rows = {r["kind"]: r for r in json.loads(out)}
    assert rows["bpe"]["incremental"] is False and rows["space"]["incremental"] is True
    assert rows["strided"]["plugin"] == "blt.plugins.patchers.strided" and rows["strided"]["available"] is True


def test_patch_text_shows_patches_count_and_average(capsys):
    code, out, _ = run(capsys, "patch", "--text", "Hello world", "--kind", "space", "--separator", "|")
    assert code == 0
    assert "⟨bos⟩|Hello |world⟨eos⟩" in out
    assert "│ space │ 3       │ 2            │ 5.50" in out  # 11 bytes in 2 byte-holding patches


def test_patch_with_set_config_file_and_stdin(capsys, tmp_path, monkeypatch):
    code, out, _ = run(capsys, "patch", "--text", "abcdefg", "--kind", "strided", "--set", "patch_size=3", "--separator", "|")
    assert code == 0 and "⟨bos⟩ab|cde|fg⟨eos⟩" in out
    cfg = tmp_path / "exp.toml"
    cfg.write_text('[patcher]\nkind = "strided"\npatch_size = 2\n')
    code, out, _ = run(capsys, "patch", "--text", "abc", "--config", str(cfg), "--separator", "|")
    assert "⟨bos⟩a|bc|⟨eos⟩" in out
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": type("B", (), {"read": lambda self: b"a\xffb"})()})())
    code, out, _ = run(capsys, "patch", "-", "--kind", "byte", "--separator", "|")
    assert code == 0 and "a|\\xff|b" in out


def test_patch_all_kinds_on_the_shipped_sample(capsys):
    code, out, _ = run(capsys, "patch", "--all-kinds", "--max-bytes", "300")
    assert code == 0
    for kind in ("strided", "byte", "space", "bpe"):
        assert f"│ {kind} " in out
    assert "showing the first 300" in out


def test_show_entropy_without_scores_says_so(capsys):
    code, out, _ = run(capsys, "patch", "--text", "hi", "--kind", "space", "--show-entropy")
    assert code == 0 and "gives no per-position scores" in out


def test_sparkline_and_plot_helpers(tmp_path):
    from blt.cli.patch import plot_scores, sparkline_block

    block = sparkline_block([1, 4 + ord("a"), 4 + ord(" "), 2], [0.0, 1.0, 2.0, 3.0], [1, 2, 1])
    assert "▁▃▆█" in block and "·a␣·" in block and "|| |" in block
    plot_scores(str(tmp_path / "s.png"), [0.0, 1.0, 2.0], [1, 2], "t")
    assert (tmp_path / "s.png").stat().st_size > 0


def test_render_alternates_colours_per_patch():
    from blt.cli.patch import STYLES, render_patches

    text = render_patches([1, 4 + ord("a"), 4 + 0xC3, 4 + 0xA9, 2], [1, 1, 2, 1])
    assert text.plain == "⟨bos⟩aé⟨eos⟩"
    styles = [str(span.style) for span in text.spans]
    assert styles == [STYLES[0], STYLES[1], STYLES[0], STYLES[1]]


def test_check_plugin_passes_builtin_and_shows_bpe_counterexample(capsys):
    code, out, _ = run(capsys, "check-plugin", "space", "--max-examples", "10")
    assert code == 0 and "7 passed, 0 failed" in out
    code, out, _ = run(capsys, "check-plugin", "bpe", "--max-examples", "10")
    assert code == 0 and "not prefix-stable, as declared" in out


def test_schema_prints_and_writes(capsys, tmp_path):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and "$defs" in schema
    assert "StridedConfig" in json.dumps(schema)
    code, out, _ = run(capsys, "schema", "--out", str(tmp_path / "s.json"))
    assert json.loads((tmp_path / "s.json").read_text()) == schema


@pytest.mark.parametrize(("argv", "needle"), [
    (["patch", "--text", "x", "--kind", "spcae"], "did you mean 'space'"),
    (["patch", "--text", "x", "--kind", "strided", "--set", "patch_size=0"], "$.patcher.patch_size"),
    (["patch", "--text", "x", "--kind", "strided", "--set", "patch_sise=2"], "unknown field `patch_sise`"),
    (["patch", "--text", "x", "--kind", "space", "--set", "max_patch_length=0"], "$.patcher.max_patch_length"),
    (["patch", "--text", "x", "--kind", "bpe", "--set", "tokenizer_path='/no/such.json'"], "tokenizer file not found: /no/such.json"),
    (["patch", "/no/such/file.txt"], "input file not found"),
    (["patch", "--text", "x", "--set", "oops"], "expected KEY=VALUE"),
    (["check-plugin", "nope"], "unknown kind 'nope'"),
    (["check-plugin", "cross_attention"], "--family encoder|decoder"),
    (["check-plugin", "--family", "encoder", "nope"], "unknown encoder kind 'nope'"),
    (["schema", "--out", "/no/such/dir/s.json"], "cannot write schema"),
])
def test_bad_input_is_one_line_error_and_nonzero_exit(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert needle in err and err.strip().startswith("error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_python_m_blt_subprocess_gives_no_traceback():
    env = {**os.environ, "PYTHONPATH": str(REPO), "BLT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([sys.executable, "-m", "blt", "patch", "--text", "x", "--kind", "nope"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "unknown patcher kind 'nope'" in proc.stderr
