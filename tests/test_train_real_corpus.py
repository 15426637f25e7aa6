"""``blt train`` on corpora written here: a Parquet file, a ``.jsonl.zst`` shard and a Hugging Face
``save_to_disk`` DatasetDict. A run SIGKILLed after step 3 and restarted with the same command ends
with exactly the loss of an uninterrupted run; the uninterrupted run builds its stores in two worker
processes and the killed one in-process, so this also checks that both give the same stores."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from _tiny import run_env, tiny, write_toml

pytestmark = pytest.mark.slow

N_DOCS = 90  # more than the store builder's in-process threshold, so workers = 2 runs a pool


def _texts():
    from blt.corpus import load_builtin_corpus

    docs = load_builtin_corpus("train", ["kjv"])[:N_DOCS]
    return [d.text[:1500] for d in docs]  # short documents: a quick store, many document boundaries


def _write(fmt, root):
    texts = _texts()
    if fmt == "parquet":
        path = root / "corpus.parquet"
        pq.write_table(pa.table({"text": texts, "id": list(range(len(texts)))}), path, row_group_size=32)
    elif fmt == "jsonl.zst":
        path = root / "corpus.jsonl.zst"
        lines = "".join(json.dumps({"content": t}) + "\n" for t in texts).encode()
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(lines))
    else:
        datasets = pytest.importorskip("datasets")
        path = root / "hf_dataset"
        full = datasets.Dataset.from_dict({"text": texts})
        datasets.DatasetDict({"train": full.select(range(80)), "test": full.select(range(80, N_DOCS))}).save_to_disk(str(path))
    return path


def _config(root, source, fmt, workers):
    data = {"source": str(source), "workers": workers, "max_documents": 1000}
    if fmt == "jsonl.zst":
        data["text_field"] = "content"
    cfg = tiny(data=data, train={"steps": 6, "eval_every": 6, "checkpoint_every": 2, "eval_bytes": 512})
    del cfg["data"]["builtin_sources"]
    return write_toml(root / f"w{workers}.toml", cfg)


def _train(config, out, env):
    return subprocess.run([sys.executable, "-m", "blt", "train", str(config), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)


def _rows(out):
    return [(r["step"], r.get("loss"), r.get("eval_bpb")) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["kind"] != "resume"]


def _stores(cache):
    return {p.parent.name.split("-")[0]: json.loads(p.read_text()) for p in sorted((cache / "data").glob("*/meta.json"))}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl.zst", "hf"])
def test_train_reads_the_corpus_and_resumes_from_a_kill_at_the_same_loss(tmp_path, fmt):
    source = _write(fmt, tmp_path)
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "killed"
    ref = _train(_config(tmp_path, source, fmt, workers=2), ref_out, run_env(tmp_path / "cache2"))
    assert ref.returncode == 0, ref.stderr[-2000:]
    config = _config(tmp_path, source, fmt, workers=1)
    killed = _train(config, out, run_env(tmp_path / "cache1", BLT_FAULT="kill_at_step:3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    again = _train(config, out, run_env(tmp_path / "cache1"))
    assert again.returncode == 0, again.stderr[-2000:]
    final, want = json.loads((out / "final.json").read_text()), json.loads((ref_out / "final.json").read_text())
    assert final["steps"] == want["steps"] == 6
    assert final["loss"] == want["loss"]  # bitwise
    assert final["eval_bpb"] == want["eval_bpb"]
    assert _rows(out) == _rows(ref_out)
    serial, parallel = _stores(tmp_path / "cache1"), _stores(tmp_path / "cache2")
    assert serial.keys() == {"train", "heldout"}
    assert {k: m["digest"] for k, m in serial.items()} == {k: m["digest"] for k, m in parallel.items()}
    assert serial["train"]["n_docs"] + serial["heldout"]["n_docs"] == N_DOCS
    if fmt == "hf":  # the DatasetDict's own split is the held-out split
        assert serial["heldout"]["n_docs"] == N_DOCS - 80
