"""Threshold calibration: hits the target, refuses impossible targets, writes configs."""

from __future__ import annotations

import tomllib

import pytest
import torch

from blt.cli.main import main
from blt.core.errors import InputError
from blt.entropy import CNNEntropyConfig, CNNEntropyModel, save_entropy_model
from blt.entropy.calibrate import calibrate_threshold
from blt.entropy.config_file import update_patcher_table
from blt.tokens import encode


def synthetic_docs(n=20, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(int(torch.randint(50, 400, (1,), generator=gen)), generator=gen) * 4 for _ in range(n)]


@pytest.mark.parametrize("rule", ["global", "relative"])
@pytest.mark.parametrize("target", [4.5, 6.0, 8.0])
def test_achieves_target_and_matches_the_patcher(registry, rule, target):
    docs = synthetic_docs()
    cal = calibrate_threshold(docs, target, rule=rule)
    assert abs(cal.achieved - target) / target < 0.02
    field = "threshold" if rule == "global" else "relative_threshold"
    patcher = registry.build_patcher({"kind": "entropy", field: cal.threshold})
    patches = sum(patcher.patch(torch.zeros(e.numel(), dtype=torch.long), entropies=e).lengths.numel() for e in docs)
    assert patches == cal.patches and cal.tokens == sum(e.numel() for e in docs)
    spread = cal.spread()
    assert spread["min"] <= cal.achieved <= spread["max"]


def test_max_patch_length_is_taken_into_account():
    cal = calibrate_threshold(synthetic_docs(), 4.0, max_patch_length=5)
    assert abs(cal.achieved - 4.0) < 0.1
    with pytest.raises(InputError, match="achievable"):
        calibrate_threshold(synthetic_docs(), 6.0, max_patch_length=5)


def test_bad_targets_and_empty_corpus():
    with pytest.raises(InputError, match=">= 1"):
        calibrate_threshold(synthetic_docs(), 0.5)
    with pytest.raises(InputError, match=r"unreachable.*achievable: 1\.\d+ to \d+"):
        calibrate_threshold(synthetic_docs(), 1000.0)
    with pytest.raises(InputError, match="empty"):
        calibrate_threshold([], 4.5)


@pytest.fixture()
def cnn_model(tmp_path):
    torch.manual_seed(0)
    return save_entropy_model(CNNEntropyModel(CNNEntropyConfig(dim=8, hidden=16)), tmp_path / "cnn.safetensors")


def test_cli_writes_config(tmp_path, cnn_model, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join('{"text": "%s"}' % (f"line {i} of some text, " * 8) for i in range(12)))
    cfg = tmp_path / "exp.toml"
    cfg.write_text('# my experiment\n[model]\nd_local = 64\n\n[patcher]\nkind = "cnn_entropy"\nthreshold = 9.0  # old\nbatch_size = 4\n')
    argv = ["calibrate", "--kind", "cnn_entropy", "--model", str(cnn_model), "--files", str(corpus), "--split", "all",
            "--target", "1.5", "--write", str(cfg)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "achieved" in out and "median" in out
    data = tomllib.loads(cfg.read_text())
    assert data["model"] == {"d_local": 64} and data["patcher"]["batch_size"] == 4
    assert data["patcher"]["kind"] == "cnn_entropy" and data["patcher"]["model_path"] == str(cnn_model)
    assert data["patcher"]["threshold"] != 9.0 and cfg.read_text().startswith("# my experiment")
    assert main([*argv[:-2], "--rule", "relative", "--write", str(cfg)]) == 0
    data = tomllib.loads(cfg.read_text())
    assert "threshold" not in data["patcher"] and "relative_threshold" in data["patcher"]


def test_cli_errors(tmp_path, cnn_model, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["calibrate", "--kind", "cnn_entropy", "--model", str(cnn_model), "--files", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["calibrate", "--kind", "cnn_entropy", "--model", str(cnn_model), "--target", "0.5"]) == 2
    assert ">= 1" in capsys.readouterr().err
    assert main(["calibrate", "--kind", "cnn_entropy", "--model", str(tmp_path / "nope.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err


def test_update_creates_file_and_appends_table(tmp_path):
    new = tmp_path / "new.toml"
    update_patcher_table(new, {"kind": "entropy", "threshold": 1.25})
    assert tomllib.loads(new.read_text()) == {"patcher": {"kind": "entropy", "threshold": 1.25}}
    other = tmp_path / "other.toml"
    other.write_text('[patcher]\nkind = "space"\nmax_patch_length = 3\n[train]\nsteps = 5\n')
    update_patcher_table(other, {"kind": "entropy", "threshold": 2.0})
    assert tomllib.loads(other.read_text()) == {"patcher": {"kind": "entropy", "threshold": 2.0}, "train": {"steps": 5}}


def test_threshold_sits_between_observed_scores_not_on_one():
    """Entropies from a small discrete set (as a 2-byte-context CNN produces): the calibrated θ must
    fall strictly between two observed values, so a last-ulp recomputation cannot flip a boundary."""
    from blt.entropy.calibrate import calibrate_threshold

    torch.manual_seed(0)
    levels = torch.tensor([0.5, 1.25, 2.0, 2.75, 3.5])
    docs = [levels[torch.randint(0, 5, (n,))] for n in (40, 57, 33, 80)]
    for rule in ("global", "relative"):
        result = calibrate_threshold(docs, 3.0, rule=rule)
        observed = torch.cat([d[1:] if rule == "global" else d[1:] - d[:-1] for d in docs]).double()
        assert not bool((observed == result.threshold).any())
        nudged = [result.threshold - 1e-6, result.threshold + 1e-6]
        assert [calibrate_patches(docs, t, rule) for t in nudged] == [calibrate_patches(docs, result.threshold, rule)] * 2


def calibrate_patches(docs, theta, rule):
    from blt.entropy.calibrate import _padded, patch_counts

    e, lengths = _padded(docs)
    return int(patch_counts(e, lengths, theta, rule).sum())
