"""Parity with Hugging Face transformers' BLT port (issue 4, item 6).

A randomly initialised small ``transformers.BltForCausalLM`` is converted with
``blt.interop.from_transformers`` / ``load_hf_checkpoint``; on real text (a held-out KJV chapter and
Tang poems from the built-in corpus) the converted model's float32 logits equal the port's within
1e-4 with the port's own patch lengths, and the converted entropy patcher reproduces those lengths.
The port is always run with ``use_cache=False`` (its cache crashes or diverges from uncached output
in transformers 5.23) and eager attention.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "BltForCausalLM"):
    pytest.skip("this transformers has no BLT port", allow_module_level=True)

import blt.interop as interop  # noqa: E402
from blt.core.errors import BltError, UnavailableError  # noqa: E402
from blt.corpus import load_builtin_corpus  # noqa: E402
from blt.tokens import encode  # noqa: E402

N_BYTES = 150  # tokens per row: BOS + 148 bytes + EOS (longer than both sliding windows)
TOL = 1e-4


def hf_config(*, enc_all=False, dec_all=True, kv_heads=4, k=2, window=24, threshold=5.0, max_patch_length=None,
              patch_in_forward=True, patch_size=4):
    """A tiny port config, every size set by hand (widths 64 / 128, 2 hash functions x 3 sizes)."""
    local = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=kv_heads, num_hidden_layers=2,
                 hidden_size_global=128, cross_attn_k=k, rms_norm_eps=1e-5)
    return transformers.BltConfig(
        vocab_size=260, patch_in_forward=patch_in_forward, patch_size=patch_size, patching_mode="entropy",
        patching_threshold=threshold, max_patch_length=max_patch_length, local_attention_window_len=window,
        cross_attn_k=k, encoder_hash_byte_group_size=[3, 4, 5], encoder_hash_byte_group_vocab=97,
        encoder_hash_byte_group_nb_functions=2,
        encoder_config=dict(local, intermediate_size=96, cross_attn_all_layers=enc_all),
        decoder_config=dict(local, intermediate_size=112, cross_attn_all_layers=dec_all),
        global_config=dict(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
                           intermediate_size=160),
        patcher_config=dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=64,
                            sliding_window=16, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        attn_implementation="eager", use_cache=False,
    )


def make_hf(seed=0, **kw):
    torch.manual_seed(seed)
    model = transformers.BltForCausalLM(hf_config(**kw)).eval()
    # Random init leaves every norm weight at 1; perturb them so a swapped norm would show.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """These models are tiny: one thread is fastest, and immune to oversubscribed CPUs (conftest's fixture)."""


@pytest.fixture(scope="module")
def rows() -> torch.Tensor:
    """``[2, N]``: a held-out KJV chapter prefix and Tang poems (multi-byte UTF-8), BOS ... EOS."""
    texts = [load_builtin_corpus("heldout", [source])[0].text.encode("utf-8")[: N_BYTES - 2] for source in ("kjv", "chinese")]
    return torch.stack([encode(t) for t in texts])


def hf_patch(model, row_1N):
    """The port's own patcher on one row (its batching garbles rows with different patch counts)."""
    cfg = model.config
    with torch.no_grad():
        entropies, lengths, _ = model.model.patcher(row_1N, patch_size=cfg.patch_size, threshold=cfg.patching_threshold,
                                                    max_patch_length=cfg.max_patch_length)
    return entropies, lengths.long()


def hf_logits(model, ids, patch_lengths=None):
    with torch.no_grad():
        kw = {} if patch_lengths is None else {"patch_lengths": patch_lengths}
        return model(input_ids=ids, use_cache=False, **kw).logits


def safe_threshold(entropies: torch.Tensor) -> float:
    """A threshold near the median entropy, half-way across the widest nearby gap between values,
    so that float noise between two implementations cannot move a boundary."""
    values = entropies[:, 1:].flatten().sort().values
    mid = values.numel() // 2
    lo, hi = mid - values.numel() // 8, mid + values.numel() // 8
    gaps = values[lo + 1 : hi] - values[lo : hi - 1]
    i = int(gaps.argmax())
    assert float(gaps[i]) > 1e-4
    return float(values[lo + i] + values[lo + i + 1]) / 2


def trim(row: torch.Tensor) -> torch.Tensor:
    nz = (row != 0).nonzero()
    return row[: int(nz.max()) + 1] if nz.numel() else row[:0]


@pytest.fixture(scope="module")
def source(rows):
    """The default port model with θ at a safe spot near the median entropy of the two rows."""
    model = make_hf()
    e = torch.cat([hf_patch(model, rows[i : i + 1])[0] for i in range(2)])
    model.config.patching_threshold = safe_threshold(e)
    return model


@pytest.fixture(scope="module")
def converted(source):
    return interop.from_transformers(source)


def test_lengths_and_logits_match_the_port(source, converted, rows):
    model, patcher = converted
    assert patcher.threshold == source.config.patching_threshold
    hf_rows = [hf_patch(source, rows[i : i + 1])[1][0] for i in range(2)]
    assert all(int((r > 1).sum()) > 3 for r in hf_rows), "θ should give multi-byte patches"

    ours = patcher.patch(rows, include_next_token=False)
    for i in range(2):  # the port's lengths sum to N (a trailing 0 when position N would start a patch)
        assert torch.equal(trim(ours.lengths[i]), trim(hf_rows[i]))
    with_next = patcher.patch(rows, include_next_token=True).lengths
    for i in range(2):
        assert torch.equal(trim(with_next[i]), interop.hf_lengths_to_blt(hf_rows[i]))

    with torch.no_grad():
        logits = model(rows, with_next)
    for i in range(2):  # the port patching itself, one row at a time
        ref = hf_logits(source, rows[i : i + 1])
        diff = float((logits[i : i + 1] - ref).abs().max())
        assert diff < TOL, f"row {i}: max |Δlogit| = {diff}"
    # The port on the same padded batch with blt's lengths (sum N + 1) agrees too.
    ref_batch = hf_logits(source, rows, patch_lengths=with_next)
    assert float((logits - ref_batch).abs().max()) < TOL


def test_given_entropies_reproduce_the_port_rule(source, converted, rows, registry):
    _, patcher = converted
    e, hf_lengths = hf_patch(source, rows[:1])
    assert torch.equal(trim(patcher.patch(rows[:1], entropies=e).lengths[0]), trim(hf_lengths[0]))
    # Thresholds exactly at stored entropy values exercise the strict ">" rule; with max_patch_length too.
    N = rows.shape[1]
    for q in (0.25, 0.5, 0.75):
        theta = float(e[0, 1:].quantile(q, interpolation="nearest"))
        ref = transformers.models.blt.modeling_blt.BltPatcher.patch_lengths_from_entropies(e, N, 4, theta)
        for m in (None, 3):
            want = transformers.models.blt.modeling_blt.process_patch_lengths(ref, m)
            p = registry.build_patcher({"kind": "entropy", "threshold": theta, "max_patch_length": m})
            got = p.patch(rows[:1], entropies=e).lengths[0]
            assert torch.equal(trim(got), trim(want[0])), (q, m)


@pytest.mark.parametrize("variant", [
    dict(enc_all=True, dec_all=False, kv_heads=2),        # re-pooling per encoder layer; GQA cross-attention
    dict(enc_all=True, dec_all=True, k=3, window=None),   # global token_embedding_projection (3*64 != 128); no window
    dict(enc_all=False, dec_all=False, max_patch_length=3),
], ids=["enc_all-gqa", "all-k3-nowindow", "first-only-maxlen"])
def test_cross_attn_variants(variant, rows):
    source = make_hf(seed=1, **variant)
    e = torch.cat([hf_patch(source, rows[i : i + 1])[0] for i in range(2)])
    source.config.patching_threshold = safe_threshold(e)
    model, patcher = interop.from_transformers(source, attention="eager")
    for i in range(2):
        row = rows[i : i + 1]
        hf_lengths = hf_patch(source, row)[1]
        assert torch.equal(trim(patcher.patch(row).lengths[0]), trim(hf_lengths[0]))
        with torch.no_grad():
            logits = model(row, interop.hf_lengths_to_blt(hf_lengths))
        diff = float((logits - hf_logits(source, row)).abs().max())
        assert diff < TOL, f"row {i}: max |Δlogit| = {diff}"


def test_without_patcher_is_one_byte_per_patch(rows):
    source = make_hf(seed=2, patch_in_forward=False)
    model, patcher = interop.from_transformers(source)
    lengths = patcher.patch(rows, include_next_token=True).lengths
    assert torch.equal(lengths, torch.ones(2, rows.shape[1] + 1, dtype=torch.long))
    with torch.no_grad():
        logits = model(rows, lengths)
    assert float((logits - hf_logits(source, rows)).abs().max()) < TOL


@pytest.fixture(scope="module")
def saved(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf_blt")
    source.save_pretrained(out)
    assert (out / "model.safetensors").is_file()
    return out


def test_load_hf_checkpoint_matches(source, converted, saved, rows, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # must not need transformers
    model, patcher = interop.load_hf_checkpoint(saved)
    ref_model, ref_patcher = converted
    lengths = patcher.patch(rows, include_next_token=True).lengths
    assert torch.equal(lengths, ref_patcher.patch(rows, include_next_token=True).lengths)
    with torch.no_grad():
        logits = model(rows, lengths)
        assert torch.equal(logits, ref_model(rows, lengths))
    monkeypatch.undo()
    assert float((logits - hf_logits(source, rows, patch_lengths=lengths)).abs().max()) < TOL


def test_sharded_checkpoint(source, converted, rows, tmp_path):
    source.save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    model, _ = interop.load_hf_checkpoint(tmp_path)
    lengths = converted[1].patch(rows, include_next_token=True).lengths
    with torch.no_grad():
        assert torch.equal(model(rows, lengths), converted[0](rows, lengths))


def _copy_with_config(saved: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "ckpt"
    out.mkdir(parents=True)
    (out / "model.safetensors").symlink_to(saved / "model.safetensors")
    config = json.loads((saved / "config.json").read_text())
    edit(config)
    (out / "config.json").write_text(json.dumps(config))
    return out


def _one_line_error(fn, *args, match: str, kind=BltError):
    with pytest.raises(kind, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)


def test_bad_checkpoints(saved, tmp_path):
    _one_line_error(interop.load_hf_checkpoint, tmp_path / "nope", match="not found")
    (tmp_path / "file").write_text("x")
    _one_line_error(interop.load_hf_checkpoint, tmp_path / "file", match="not a directory")
    (tmp_path / "empty").mkdir()
    _one_line_error(interop.load_hf_checkpoint, tmp_path / "empty", match="no config.json")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    _one_line_error(interop.load_hf_checkpoint, tmp_path / "bad", match="not valid JSON")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text((saved / "config.json").read_text())
    _one_line_error(interop.load_hf_checkpoint, tmp_path / "noweights", match="no model.safetensors")

    def other_model(c):
        c["model_type"] = "llama"

    _one_line_error(interop.load_hf_checkpoint, _copy_with_config(saved, tmp_path / "a", other_model), match="model_type is 'llama'")

    def wider_ffn(c):
        c["decoder_config"]["intermediate_size"] = 120

    _one_line_error(interop.load_hf_checkpoint, _copy_with_config(saved, tmp_path / "b", wider_ffn),
                    match=r"tensor model\.local_decoder\.layers\.0\.mlp\.\w+\.weight has shape .*112.* the config implies .*120")

    def more_layers(c):
        c["global_config"]["num_hidden_layers"] = 3

    _one_line_error(interop.load_hf_checkpoint, _copy_with_config(saved, tmp_path / "c", more_layers), match="lacks tensor")

    def split_widths(c):
        c["decoder_config"]["hidden_size"] = 32

    _one_line_error(interop.load_hf_checkpoint, _copy_with_config(saved, tmp_path / "d", split_widths), match="one local width")

    def rope_scaling(c):
        c["global_config"]["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0}

    _one_line_error(interop.load_hf_checkpoint, _copy_with_config(saved, tmp_path / "e", rope_scaling), match="RoPE type 'llama3'")


def test_from_transformers_refusals(monkeypatch):
    _one_line_error(interop.from_transformers, torch.nn.Linear(2, 2), match="expected a transformers.BltForCausalLM")
    monkeypatch.setitem(sys.modules, "transformers", None)
    _one_line_error(interop.from_transformers, object(), match=r"blt-lab\[interop\]", kind=UnavailableError)


def test_importing_interop_does_not_import_transformers():
    code = "import sys, blt.interop; assert 'transformers' not in sys.modules, 'imported'"
    repo = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo, env={"PYTHONPATH": repo, "PATH": "/usr/bin:/bin"})


def test_eos_inside_a_row(rows):
    """The port's local and patcher attention cross an EOS inside a row; the converter sets
    ``block_documents = False`` on the encoder, decoder and entropy model to match."""
    two_docs = torch.cat([rows[0, :60], rows[1, :60]])[None]
    two_docs[0, 59] = 2  # an EOS closes the first document; BOS opens the second
    source = make_hf(seed=3)
    source.config.patching_threshold = safe_threshold(hf_patch(source, two_docs)[0])
    model, patcher = interop.from_transformers(source)
    hf_lengths = hf_patch(source, two_docs)[1]
    lengths = interop.hf_lengths_to_blt(hf_lengths)
    with torch.no_grad():
        diff = float((model(two_docs, lengths) - hf_logits(source, two_docs)).abs().max())
    same_lengths = torch.equal(trim(patcher.patch(two_docs).lengths[0]), trim(hf_lengths[0]))
    assert diff < TOL and same_lengths
