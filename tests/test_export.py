"""Export to Hugging Face (issue 12, item 2): ``blt export RUN OUT --format hf`` and ``blt.load``.

Tiny models (``_tiny.TINY`` sizes, norms perturbed so a swapped norm would show) are exported and
loaded back with ``transformers.BltForCausalLM.from_pretrained``; on real text
(``blt/resources/sample.txt``) the port's float32 logits equal ours within 1e-4 with the same patch
lengths, eager and sdpa attention on both sides, and ``load_hf_checkpoint`` gives the model back
exactly. The port always runs with ``use_cache=False``.
"""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch
from _tiny import tiny, write_toml

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "BltForCausalLM"):
    pytest.skip("this transformers has no BLT port", allow_module_level=True)

import blt  # noqa: E402
import blt.interop as interop  # noqa: E402
from blt.cli.main import main  # noqa: E402
from blt.core.errors import BltError, UnavailableError  # noqa: E402
from blt.corpus import sample_text_path  # noqa: E402
from blt.entropy import TransformerEntropyConfig, TransformerEntropyModel, save_entropy_model  # noqa: E402
from blt.experiment import load_experiment  # noqa: E402
from blt.interop.checkpoint import read_checkpoint  # noqa: E402
from blt.tokens import encode  # noqa: E402
from blt.train.weights import export_weights  # noqa: E402

TOL = 1e-4
NO_DOCS = {"block_documents": False}  # the port's attention crosses EOS; these models match it everywhere


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """These models are tiny: one thread is fastest, and immune to oversubscribed CPUs (conftest's fixture)."""


@pytest.fixture(scope="module")
def rows() -> torch.Tensor:
    """``[2, 302]``: two 300-byte stretches of the sample text (prose, code, Tang poetry), BOS ... EOS."""
    text = sample_text_path().read_bytes()
    return torch.stack([encode(text[:300]), encode(text[300:600])])


def experiment(patcher, attention="eager", documents=False, **sections):
    data = tiny(patcher=patcher, attention={"kind": attention}, **sections)
    if not documents:
        for name in ("model", "encoder", "decoder"):
            data[name].update(NO_DOCS)
    return load_experiment(data)


def build(exp_registry, seed=0):
    exp, registry = exp_registry
    patcher = registry.build_patcher(exp.patcher)
    torch.manual_seed(seed)
    model = blt.build_model(exp, registry, patcher=patcher).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    return exp, patcher, model


def safe_threshold(entropies: torch.Tensor) -> float:
    """Half-way across the widest gap near the median entropy: float noise cannot move a boundary."""
    values = entropies[:, 1:].flatten().sort().values
    lo, hi = values.numel() * 3 // 8, values.numel() * 5 // 8
    gaps = values[lo + 1 : hi] - values[lo : hi - 1]
    i = int(gaps.argmax())
    assert float(gaps[i]) > 1e-4
    return float(values[lo + i] + values[lo + i + 1]) / 2


@pytest.fixture(scope="module")
def entropy_file(tmp_path_factory):
    """A small transformer entropy model (window 16, no document blocks, as the port's patcher)."""
    torch.manual_seed(3)
    model = TransformerEntropyModel(TransformerEntropyConfig(dim=32, layers=2, heads=2, kv_heads=1, ffn_dim=48, window=16,
                                                             block_documents=False))
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
        model.norm.weight.add_(0.1 * torch.randn_like(model.norm.weight))
    return save_entropy_model(model, tmp_path_factory.mktemp("entropy") / "patcher.safetensors")


@pytest.fixture(scope="module")
def entropy_threshold(entropy_file, rows):
    probe = blt.make_registry(autoload=False).build_patcher({"kind": "entropy", "model_path": str(entropy_file), "threshold": 1.0})
    return safe_threshold(probe.patch(rows).scores)


def hf_logits(hf, ids, lengths=None):
    with torch.no_grad():
        kw = {} if lengths is None else {"patch_lengths": lengths}
        return hf(input_ids=ids, use_cache=False, **kw).logits


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def one_line(fn, *args, match, kind=BltError, **kw):
    with pytest.raises(kind, match=match) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_entropy_model_exports_with_its_patcher(attention, rows, entropy_file, entropy_threshold, tmp_path):
    patcher_cfg = {"kind": "entropy", "model_path": str(entropy_file), "threshold": entropy_threshold}
    exp, patcher, model = build(experiment(patcher_cfg, attention))
    assert interop.save_hf(model, exp, patcher, tmp_path) == []
    hf = transformers.BltForCausalLM.from_pretrained(tmp_path, attn_implementation=attention).eval()

    lengths = interop.hf_patch_lengths(patcher, rows)
    assert int((lengths > 1).sum()) > 20, "θ should give multi-byte patches"
    with torch.no_grad():
        ours = model(rows, lengths)
    diff = float((ours - hf_logits(hf, rows, lengths)).abs().max())  # the same padded batch of lengths
    assert diff < TOL, f"max |Δlogit| = {diff}"
    for i in range(2):  # the port patching by itself with the exported entropy model, one row at a time
        _, hf_lengths, _ = hf.model.patcher(rows[i : i + 1], patch_size=hf.config.patch_size,
                                            threshold=hf.config.patching_threshold)
        got = interop.hf_lengths_to_blt(hf_lengths.long())[0]
        assert torch.equal(got, lengths[i, : got.numel()]) and int(lengths[i, got.numel():].sum()) == 0
        diff = float((ours[i : i + 1] - hf_logits(hf, rows[i : i + 1])).abs().max())
        assert diff < TOL, f"row {i}, the port's own patching: max |Δlogit| = {diff}"

    back, back_patcher = interop.load_hf_checkpoint(tmp_path)
    assert_same_state(back, model)
    assert_same_state(back_patcher.model, patcher.model)
    assert back_patcher.threshold == patcher.threshold


@pytest.mark.parametrize("sections", [
    dict(encoder={"layers": 2, "cross_all_layers": True, "repool": True}, decoder={"cross_all_layers": False}),
    dict(encoder={"k": 3, "window": None}, decoder={"k": 3, "window": None}, model={"global_kv_heads": 2}),
    dict(encoder={"hash_functions": 0, "window": None}, decoder={"window": None}),
    dict(encoder={"hash_functions": 2, "hash_sizes": [2, 3, 5]}, patcher={"kind": "byte"}),
], ids=["repool-first-only", "k3-nowindow-gqa", "no-hash", "byte-patcher"])
def test_variants_match_the_port(sections, rows, tmp_path):
    sections = copy.deepcopy(sections)
    patcher = sections.pop("patcher", {"kind": "space", "max_patch_length": 8})
    exp, patcher, model = build(experiment(patcher, **sections), seed=1)
    interop.save_hf(model, exp, patcher, tmp_path)
    hf = transformers.BltForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    lengths = interop.hf_patch_lengths(patcher, rows)
    with torch.no_grad():
        diff = float((model(rows, lengths) - hf_logits(hf, rows, lengths)).abs().max())
    assert diff < TOL, f"max |Δlogit| = {diff}"
    if exp.patcher.kind == "byte":  # the port's own fallback: one byte per patch, no lengths needed
        with torch.no_grad():
            assert float((model(rows, lengths) - hf_logits(hf, rows)).abs().max()) < TOL
    assert_same_state(interop.load_hf_checkpoint(tmp_path)[0], model)


def test_port_checkpoint_round_trips_to_the_same_tensors(tmp_path):
    """A port model (GQA local stacks: its cross-attention shares k/v) -> blt -> port: the same tensors."""
    local = dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2, hidden_size_global=64,
                 cross_attn_k=2, intermediate_size=48)
    config = transformers.BltConfig(
        patching_threshold=3.0, local_attention_window_len=24, cross_attn_k=2, encoder_hash_byte_group_size=[3, 4],
        encoder_hash_byte_group_vocab=31, encoder_config=dict(local, cross_attn_all_layers=True),
        decoder_config=dict(local, cross_attn_all_layers=True),
        global_config=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=1, intermediate_size=96),
        patcher_config=dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=48, sliding_window=None),
        use_cache=False)
    torch.manual_seed(0)
    transformers.BltForCausalLM(config).save_pretrained(tmp_path / "src")
    model, patcher = interop.load_hf_checkpoint(tmp_path / "src")
    hf_config, tensors = read_checkpoint(tmp_path / "src")
    fields = interop.experiment_from_hf(interop.read_hf_config(hf_config, {k: tuple(v.shape) for k, v in tensors.items()}))
    exp, _ = load_experiment({**fields, "patcher": {"kind": "entropy", "threshold": 3.0}, "data": {"seq_len": 64}})
    interop.save_hf(model, exp, patcher, tmp_path / "out")
    _, exported = read_checkpoint(tmp_path / "out")
    assert sorted(exported) == sorted(tensors)
    for key, tensor in tensors.items():
        assert torch.equal(exported[key], tensor), key


def test_unsupported_components_are_refused_in_one_line(tmp_path):
    exp, patcher, model = build(experiment({"kind": "space"}, encoder={"kind": "pooling", **NO_DOCS}, decoder={"kind": "add", **NO_DOCS}))
    line = one_line(interop.save_hf, model, exp, patcher, tmp_path, match="the port has no encoder 'pooling'")
    assert "decoder 'add'" in line and not any(tmp_path.iterdir())

    exp, patcher, model = build(experiment({"kind": "space"}, decoder={"window": 16, "k": 3},
                                           encoder={"cross_window": 2, "cross_heads": 1, "layers": 2, "cross_all_layers": True}))
    line = one_line(interop.save_hf, model, exp, patcher, tmp_path, match="cannot export to Hugging Face")
    for field in ("$.encoder.cross_window = 2", "$.encoder.cross_heads = 1", "$.encoder.repool = False",
                  "$.decoder.window = 16", "$.decoder.k = 3"):
        assert field in line, line

    exp, patcher, model = build(experiment({"kind": "space"}, encoder={"kv_heads": 1}))
    one_line(interop.save_hf, model, exp, patcher, tmp_path, match=r"\$\.encoder\.kv_heads = 1 < heads = 2")

    exp, registry = load_experiment({"model": {"kind": "byte"}, "patcher": {"kind": "byte"}})
    byte_model = blt.build_model(exp, registry)
    one_line(interop.save_hf, byte_model, exp, registry.build_patcher(exp.patcher), tmp_path, match="model kind 'byte'")


def test_entropy_rules_the_port_lacks_export_with_notes(entropy_file, entropy_threshold, tmp_path):
    exp, patcher, model = build(experiment({"kind": "entropy", "model_path": str(entropy_file), "relative_threshold": 0.5}))
    notes = interop.save_hf(model, exp, patcher, tmp_path / "relative")
    assert len(notes) == 1 and "no 'entropy' (relative_threshold) patcher" in notes[0] and "patch_lengths" in notes[0]
    config = json.loads((tmp_path / "relative" / "config.json").read_text())
    assert not config["patch_in_forward"] and "blt_patcher" not in config  # its entropy model is not in the export

    exp, patcher, model = build(experiment({"kind": "entropy", "model_path": str(entropy_file), "threshold": entropy_threshold,
                                            "max_patch_length": 4}))
    notes = interop.save_hf(model, exp, patcher, tmp_path / "maxlen")
    assert len(notes) == 1 and "max_patch_length" in notes[0]
    assert interop.load_hf_checkpoint(tmp_path / "maxlen")[1].config.max_patch_length == 4


def test_document_blocking_needs_consent(rows, tmp_path):
    exp, patcher, model = build(experiment({"kind": "space"}, documents=True))
    one_line(interop.save_hf, model, exp, patcher, tmp_path,
             match=r"\$\.model\.block_documents, \$\.encoder\.block_documents, \$\.decoder\.block_documents = true.*--cross-documents")
    notes = interop.save_hf(model, exp, patcher, tmp_path, cross_documents=True)
    assert any("one document per row" in note for note in notes)
    hf = transformers.BltForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    lengths = interop.hf_patch_lengths(patcher, rows)
    with torch.no_grad():  # one document per row: the same logits
        assert float((model(rows, lengths) - hf_logits(hf, rows, lengths)).abs().max()) < TOL


def test_missing_transformers_is_one_line(monkeypatch, tmp_path):
    exp, patcher, model = build(experiment({"kind": "space"}))
    monkeypatch.setitem(sys.modules, "transformers", None)
    one_line(interop.save_hf, model, exp, patcher, tmp_path, match=r"blt-lab\[interop\]", kind=UnavailableError)


@pytest.fixture(scope="module")
def strided_run(tmp_path_factory):
    """A two-step ``blt train`` run with the strided patcher (the port has none)."""
    root = tmp_path_factory.mktemp("strided")
    data = tiny(patcher={"kind": "strided", "patch_size": 3}, model=NO_DOCS, encoder=NO_DOCS, decoder=NO_DOCS,
                data={"max_documents": 8}, train={"steps": 2, "eval_every": 0, "checkpoint_every": 2})
    assert main(["train", str(write_toml(root / "c.toml", data)), "--out", str(root / "run")]) == 0
    return root / "run"


def test_cli_strided_run_exports_with_a_note(strided_run, rows, tmp_path, capsys):
    out = tmp_path / "hf"
    assert main(["export", str(strided_run), str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "note: the port has no 'strided' patcher" in printed and "patch_lengths" in printed
    model, patcher = blt.load(strided_run)
    hf = transformers.BltForCausalLM.from_pretrained(out, attn_implementation="sdpa").eval()
    lengths = interop.hf_patch_lengths(patcher, rows)
    assert int(lengths[0, 0]) == 1 and int(lengths[0, 1]) == 2  # BOS split off the first stride, as blt's model does
    with torch.no_grad():
        diff = float((model(rows, lengths) - hf_logits(hf, rows, lengths)).abs().max())
    assert diff < TOL, f"max |Δlogit| = {diff}"
    back, back_patcher = blt.load(out)  # the recorded patcher comes back with the model
    assert back_patcher.config == patcher.config
    assert_same_state(back, model)


def test_blt_load_everywhere(strided_run, tmp_path):
    assert main(["export", str(strided_run), str(tmp_path / "hf")]) == 0
    checkpoint = strided_run / "checkpoints" / (strided_run / "checkpoints" / "latest").read_text().strip()
    assert checkpoint.is_dir()
    ref, ref_patcher = blt.load(strided_run)
    for where in (strided_run, strided_run / "export", checkpoint, tmp_path / "hf"):
        model, patcher = blt.load(where)
        assert not model.training and type(patcher).__name__ == "StridedPatcher" and patcher.config == ref_patcher.config
        assert_same_state(model, ref)


def test_cli_entropy_export_and_safetensors_format(tmp_path, rows, entropy_file, entropy_threshold, capsys):
    exp, patcher, model = build(experiment({"kind": "entropy", "model_path": str(entropy_file), "threshold": entropy_threshold}))
    export_weights(model, exp, tmp_path / "export")  # a run's export directory
    assert main(["export", str(tmp_path / "export"), str(tmp_path / "hf")]) == 0
    assert "note:" not in capsys.readouterr().out
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["patch_in_forward"] and config["patching_threshold"] == entropy_threshold and not config["use_cache"]
    back, back_patcher = blt.load(tmp_path / "hf")
    assert_same_state(back, model)
    assert_same_state(back_patcher.model, patcher.model)

    assert main(["export", str(tmp_path / "export"), str(tmp_path / "st"), "--format", "safetensors"]) == 0
    again, _ = blt.load(tmp_path / "st")
    assert_same_state(again, model)


def test_cli_errors_are_one_line(tmp_path, capsys, strided_run):
    assert main(["export", str(strided_run), str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    for argv, needle in (
        (["export", str(tmp_path / "hf"), str(tmp_path / "again")], "already a Hugging Face checkpoint"),
        (["export", str(tmp_path / "nope"), str(tmp_path / "x")], "not found"),
        (["export", str(strided_run), str(strided_run / "export")], "holds another config.json"),
    ):
        assert main(argv) != 0
        err = capsys.readouterr().err
        line = " ".join(err.split())
        assert line.startswith("error:") and needle in line and "Traceback" not in err, line
