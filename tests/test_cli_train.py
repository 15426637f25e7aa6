"""Bad input to ``blt train`` / ``blt eval``: one clear line, non-zero exit, nothing finished lost."""

from __future__ import annotations

import json
import os

import pytest
from _tiny import tiny, write_toml

from blt.cli.main import main


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")


def _fails(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    line = " ".join(err.split())  # rich may wrap
    assert line.startswith("error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in line, line
    return line


def test_unknown_plugin_lists_alternatives(tmp_path, capsys):
    cfg = write_toml(tmp_path / "c.toml", tiny(patcher={"kind": "entropi"}))
    _fails(capsys, ["train", str(cfg), "--out", str(tmp_path / "o")], "$.patcher.kind", "entropi", "strided", "did you mean 'entropy'")


def test_missing_corpus_path(tmp_path, capsys):
    cfg = write_toml(tmp_path / "c.toml", tiny(data={"source": str(tmp_path / "nowhere")}))
    _fails(capsys, ["train", str(cfg), "--out", str(tmp_path / "o")], "does not exist", "nowhere")


def test_empty_and_whitespace_corpus(tmp_path, capsys):
    for name, text in (("empty.txt", ""), ("blank.txt", " \n\t \n")):
        (tmp_path / name).write_text(text)
        cfg = write_toml(tmp_path / "c.toml", tiny(data={"source": str(tmp_path / name), "heldout": str(tmp_path / name)}))
        _fails(capsys, ["train", str(cfg), "--out", str(tmp_path / "o")], "no text")


def test_budget_too_small_for_one_step(tmp_path, capsys):
    data = tiny(budget={"train_flops": 1000.0})
    data["train"].pop("steps")
    cfg = write_toml(tmp_path / "c.toml", data)
    _fails(capsys, ["train", str(cfg), "--out", str(tmp_path / "o")], "$.budget.train_flops", "less than one training step")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    os.environ.setdefault("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    cfg = write_toml(root / "c.toml", tiny(train={"steps": 2, "eval_every": 0, "checkpoint_every": 1, "keep_checkpoints": 1}))
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    return root, cfg


def test_incompatible_checkpoint_is_refused_and_kept(finished_run, capsys, tmp_path):
    root, cfg = finished_run
    run = tmp_path / "run"
    import shutil

    shutil.copytree(root / "run", run)
    (run / "final.json").unlink()  # an unfinished run: the next command would resume it
    before = (run / "checkpoints" / "latest").read_text()
    _fails(capsys, ["train", str(cfg), "--out", str(run), "--set", "model.d_global=96"],
           "different model config", "--no-resume")
    assert (run / "checkpoints" / "latest").read_text() == before
    assert json.loads((run / "config.json").read_text())["model"]["d_global"] == 64  # the run's own config kept


def test_finished_run_with_other_config_is_kept(finished_run, capsys):
    root, cfg = finished_run
    before = (root / "run" / "final.json").read_text()
    _fails(capsys, ["train", str(cfg), "--out", str(root / "run"), "--set", "train.lr=0.01"], "finished run of a different config")
    assert (root / "run" / "final.json").read_text() == before


def test_corrupt_checkpoint_is_a_clear_error(finished_run, capsys, tmp_path):
    root, cfg = finished_run
    import shutil

    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    (run / "final.json").unlink()
    step = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    for shard in step.glob("*.distcp"):
        shard.write_bytes(shard.read_bytes()[:100])  # truncated
    _fails(capsys, ["train", str(cfg), "--out", str(run)], "corrupt", str(step))
    _fails(capsys, ["eval", str(step)], "corrupt")
    (run / "checkpoints" / "latest").write_text("step_99999999\n")
    _fails(capsys, ["train", str(cfg), "--out", str(run)], "not a checkpoint directory")


def test_corrupt_or_mismatched_export(finished_run, capsys, tmp_path):
    root, _ = finished_run
    import shutil

    export = tmp_path / "export"
    shutil.copytree(root / "run" / "export", export)
    cfg = json.loads((export / "config.json").read_text())
    cfg["model"]["d_global"] = 96
    (export / "config.json").write_text(json.dumps(cfg))
    _fails(capsys, ["eval", str(export)], "incompatible config")
    (export / "model.safetensors").write_bytes(b"not a safetensors file")
    _fails(capsys, ["eval", str(export)], "corrupt")
    _fails(capsys, ["eval", str(tmp_path / "missing")], "does not exist")
