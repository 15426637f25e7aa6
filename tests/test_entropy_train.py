"""Entropy-model training shares the main pipeline's rules: held-out split, schedule, BPB."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import blt.entropy.train as entropy_train
from blt.core.errors import InputError
from blt.data.config import DataConfig
from blt.data.sources import iter_documents
from blt.entropy.cnn import CNNEntropyConfig, CNNEntropyModel
from blt.entropy.corpus import corpus_texts
from blt.entropy.train import TrainSettings, heldout_bpb, token_stream
from blt.train import objective


def test_file_corpus_holds_out_what_the_data_pipeline_holds_out(tmp_path):
    (tmp_path / "docs").mkdir()
    jsonl = tmp_path / "docs" / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"document number {i}"}) for i in range(60)) + "\n")
    (tmp_path / "docs" / "b.txt").write_text("a plain text document\n")
    files = [str(tmp_path / "docs")]
    train, heldout, _ = corpus_texts(files)
    config = DataConfig(source=files)
    assert heldout == [d.decode() for _, d in iter_documents(config, "heldout")]
    assert train == [d.decode() for _, d in iter_documents(config, "train")]
    assert 0 < len(heldout) < len(train) and len(train) + len(heldout) == 61


def test_file_corpus_with_no_training_document_is_refused(tmp_path):
    from blt.data.sources import held_out

    name = next(f"doc{i}.txt" for i in range(1000) if held_out(f"doc{i}.txt#0"))
    (tmp_path / name).write_text("held out text\n")
    with pytest.raises(InputError, match="held out"):
        corpus_texts([str(tmp_path / name)])
    with pytest.raises(InputError, match="not found"):
        corpus_texts([str(tmp_path / "missing.txt")])


def test_schedule_is_the_main_models():
    assert entropy_train.lr_at is objective.lr_at
    s = TrainSettings()
    lr = [objective.lr_at(t, lr=s.lr, warmup=s.warmup, total=s.steps, lr_min_ratio=s.min_lr_ratio) for t in range(s.steps)]
    assert lr[0] == pytest.approx(s.lr / s.warmup) and lr[s.warmup - 1] == pytest.approx(s.lr)
    assert lr[s.warmup] == pytest.approx(s.lr) and lr[-1] == pytest.approx(s.lr * s.min_lr_ratio, rel=1e-3)


def test_heldout_bpb_counts_every_non_pad_target():
    torch.manual_seed(0)
    model = CNNEntropyModel(CNNEntropyConfig(dim=8, hidden=16)).eval()
    stream_L = token_stream(["ab", "cd"])  # BOS a b EOS BOS c d EOS: 7 targets, 4 of them bytes
    with torch.no_grad():
        ce = F.cross_entropy(model(stream_L[None, :-1])[0].float(), stream_L[1:], reduction="sum")
    assert heldout_bpb(model, stream_L) == pytest.approx(float(ce) / 7 / math.log(2), rel=1e-5)
