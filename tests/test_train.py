"""The trainer in one process: metrics, BPB, schedule, accumulation, export and ``blt eval``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _tiny import tiny

from blt.cli.main import main
from blt.experiment import load_experiment
from blt.train.objective import bits_per_byte, cross_entropy_sum, lr_at
from blt.train.trainer import train


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def _rows(out, kind):
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_bpb_counts_bos_eos_and_ignores_pad():
    logits = torch.zeros(1, 4, 260)  # uniform: ln(260) nats per target
    targets = torch.tensor([[1, 70, 2, 0]])  # BOS, a byte, EOS, pad
    ce = cross_entropy_sum(logits, targets)
    assert float(ce) == pytest.approx(3 * math.log(260), rel=1e-6)
    assert bits_per_byte(float(ce), 3) == pytest.approx(math.log2(260), rel=1e-6)


def test_schedule_warmup_then_cosine_to_floor():
    lrs = [lr_at(s, lr=1.0, warmup=4, total=20, lr_min_ratio=0.1) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lr_at(20, lr=1.0, warmup=4, total=20, lr_min_ratio=0.1) == pytest.approx(0.1)


def test_short_run_writes_metrics_tensorboard_checkpoints_export(tmp_path, registry):
    config, reg = load_experiment(tiny(train={"steps": 6, "eval_every": 3, "checkpoint_every": 3}), registry)
    out = tmp_path / "run"
    record = train(config, reg, out_dir=out)
    train_rows, eval_rows = _rows(out, "train"), _rows(out, "eval")
    assert [r["step"] for r in train_rows] == list(range(1, 7)) and [r["step"] for r in eval_rows] == [3, 6]
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]  # it learns
    assert train_rows[0]["bpb"] == pytest.approx(train_rows[0]["loss"] / math.log(2))
    assert record["eval_bpb"] == eval_rows[-1]["eval_bpb"] and record["steps"] == 6
    assert record["train_flops"] == pytest.approx(6 * record["train_flops_per_byte"] * 4 * 64)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_00000006"
    assert (out / "export" / "model.safetensors").is_file() and (out / "export" / "config.json").is_file()


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path, registry):
    """batch 4 x accum 1 and batch 2 x accum 2 see the same rows and take the same steps."""
    a, reg = load_experiment(tiny(train={"steps": 3, "eval_every": 0, "checkpoint_every": 0}), registry)
    b, _ = load_experiment(tiny(data={"batch_size": 2}, train={"steps": 3, "grad_accum": 2, "eval_every": 0,
                                                               "checkpoint_every": 0}), registry)
    la = [r["loss"] for r in _rows_of(train(a, reg, out_dir=tmp_path / "a"), tmp_path / "a")]
    lb = [r["loss"] for r in _rows_of(train(b, reg, out_dir=tmp_path / "b"), tmp_path / "b")]
    assert la == pytest.approx(lb, abs=1e-5)


def _rows_of(_record, out):
    return _rows(out, "train")


def test_budget_sets_the_steps(tmp_path, registry):
    config, reg = load_experiment(tiny(train={"steps": None, "eval_every": 0, "checkpoint_every": 0},
                                       budget={"train_flops": 3.5e8}), registry)
    record = train(config, reg, out_dir=tmp_path / "budget")
    per_step = record["train_flops_per_byte"] * 4 * 64
    assert record["steps"] == math.floor(3.5e8 / per_step) >= 1
    assert record["train_flops"] <= 3.5e8


def test_eval_command_on_run_export_and_files(tmp_path, registry, capsys):
    config, reg = load_experiment(tiny(train={"steps": 2, "eval_every": 0, "checkpoint_every": 2}), registry)
    out = tmp_path / "run"
    train(config, reg, out_dir=out)
    doc = tmp_path / "doc.txt"
    doc.write_text("And God said, Let there be light: and there was light.\n" * 20)
    results = []
    for target in (out, out / "export", out / "checkpoints" / "step_00000002"):
        assert main(["eval", str(target), str(doc), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["bytes"] == len(doc.read_bytes()) + 1  # the bytes plus EOS
    assert results[0]["bpb"] == pytest.approx(results[1]["bpb"]) == pytest.approx(results[2]["bpb"])
    assert results[0]["avg_patch_size"] > 1
