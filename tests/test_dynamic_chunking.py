"""The ``dynamic_chunking`` model plugin (H-Net, arXiv 2507.07955): routing maths on hand-computed
vectors, the ratio loss at known F/G, chunk/dechunk against a hand-run EMA, causality (logits and
boundaries), document isolation, a row alone = in a batch, FLOPs against FlopCounterMode, the
model contract suite, and the CLI: training logs compression and the ratio loss, eval carries
the realised chunk size, ``blt patch --run`` shows the router's chunks, ``--no-cache`` generation
works and cached generation is refused with a one-line message."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _tiny import tiny, write_toml
from hypothesis import given, settings
from hypothesis import strategies as st

import blt
from blt.plugins.models.dynamic_chunking import chunking, routing
from blt.testing import check_model, run_model_contracts
from blt.testing.model_checks import LOGIT_TOLERANCE, flops_mismatch, next_targets
from blt.testing.model_inputs import edits, padded, rows
from blt.tokens import EOS_ID, PAD_ID, encode

ONE = {"kind": "dynamic_chunking", "d_model": [16, 32], "heads": [2, 2], "ffn": [32, 64], "main_layers": 1,
       "compression": [3.0]}
TWO = {"kind": "dynamic_chunking", "stages": 2, "d_model": [16, 16, 32], "heads": [2, 2, 2], "ffn": [32, 32, 64],
       "encoder_layers": [1, 1], "decoder_layers": [1, 1], "main_layers": 1, "compression": [2.0, 2.0], "byte_window": 7}


def build(table, attention="eager", dtype=torch.float64, seed=0):
    """The model with its zero-initialised residual projections made random, so every path from
    the encoder to the decoder carries signal (a leak through any of them would show)."""
    torch.manual_seed(seed)
    model = blt.build_model({"model": table, "patcher": {"kind": "byte"}, "attention": {"kind": attention}})
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("residual.weight"):
                param.normal_(0.0, param.shape[1] ** -0.5)
    return model.to(dtype).eval()


MODELS = {"one": build(ONE), "two": build(TWO)}


# --- routing maths -----------------------------------------------------------------------------

def test_boundary_probabilities_on_hand_vectors():
    q = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]]])
    k = torch.tensor([[[1.0, 0.0], [5.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    starts = torch.tensor([[True, False, False, False, True]])
    p = routing.boundary_probs(q, k, starts)
    # t=1: cos([1,0],[1,0]) = 1 -> 0; t=2: cos([0,2],[5,0]) = 0 -> 0.5; t=3: cos([-3,0],[1,0]) = -1 -> 1;
    # t=0 and the document start t=4: 1
    assert torch.allclose(p, torch.tensor([[1.0, 0.0, 0.5, 1.0, 1.0]]), atol=1e-6)
    assert routing.boundaries(p).tolist() == [[True, False, True, True, True]]
    q2 = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    p2 = routing.boundary_probs(q2, q2, torch.tensor([[True, False]]))  # cos 45 degrees
    assert math.isclose(float(p2[0, 1]), (1 - math.sqrt(0.5)) / 2, rel_tol=1e-6)
    assert routing.confidence(routing.boundaries(p), p).tolist() == [[1.0, 1.0, 0.5, 1.0, 1.0]]


def test_router_starts_as_the_identity_and_compares_adjacent_states():
    router = routing.Router(3)
    x = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    p = router(x, torch.tensor([[True, False, False]]))
    assert torch.allclose(p, torch.tensor([[1.0, 0.0, 0.5]]))


@pytest.mark.parametrize(("F", "G", "N", "want"), [
    (0.25, 0.25, 4.0, 1.0),                       # on target: 1
    (0.5, 0.5, 4.0, 4 / 3 * (3 * 0.25 + 0.25)),   # 1.333...
    (1.0, 1.0, 5.0, 5.0),                         # every position a boundary: N
    (0.0, 0.0, 5.0, 5 / 4),                       # none: N / (N - 1)
])
def test_ratio_loss_at_known_fraction_and_mean(F, G, N, want):
    L = 8
    b = torch.zeros(1, L, dtype=torch.bool)
    b[0, : int(F * L)] = True
    p = torch.full((1, L), G, requires_grad=True)
    loss = routing.ratio_loss(b, p, torch.ones(1, L, dtype=torch.bool), N)
    assert math.isclose(float(loss.detach()), want, rel_tol=1e-6)
    loss.backward()  # gradient only through G: d/dG = N/(N-1) ((N-1) F - (1-F)), spread over L positions
    assert torch.allclose(p.grad, torch.full((1, L), N / (N - 1) * ((N - 1) * F - (1 - F)) / L))


def test_ratio_loss_ignores_invalid_positions():
    b = torch.tensor([[True, False, False, False, True, True]])
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]])
    valid = torch.tensor([[True, True, True, True, False, False]])  # F = G = 1/4 over the valid ones
    assert math.isclose(float(routing.ratio_loss(b, p, valid, 4.0)), 1.0, rel_tol=1e-6)


def test_straight_through_is_one_forward_and_passes_the_gradient():
    x = torch.tensor([0.3, 0.7, 0.9], requires_grad=True)
    y = routing.straight_through(x)
    assert y.tolist() == [1.0, 1.0, 1.0]
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0]


def test_chunk_and_dechunk_on_a_hand_example():
    b = torch.tensor([[True, False, True, True, False], [True, True, False, False, False]])
    chunks = chunking.make_chunks(b)
    assert chunks.start_BM.tolist() == [[0, 2, 3], [0, 1, 0]]
    assert chunks.real_BM.tolist() == [[True, True, True], [True, True, False]]
    assert chunks.chunk_of_BL.tolist() == [[0, 0, 1, 2, 2], [0, 1, 1, 1, 1]]
    zhat = torch.tensor([[[1.0], [2.0], [4.0]], [[3.0], [5.0], [7.0]]])
    P = torch.tensor([[1.0, 0.5, 0.75], [1.0, 0.6, 1.0]])
    z = chunking.ema_smooth(zhat, P)
    z1 = 0.5 * 2 + 0.5 * 1
    assert torch.allclose(z[0, :, 0], torch.tensor([1.0, z1, 0.75 * 4 + 0.25 * z1]))
    assert torch.allclose(z[1, :2, 0], torch.tensor([3.0, 0.6 * 5 + 0.4 * 3]))
    up = chunks.upsample(z)[..., 0]  # each position: its chunk, the last that started at or before it
    assert torch.allclose(up[0], z[0, [0, 0, 1, 2, 2], 0]) and torch.allclose(up[1], z[1, [0, 1, 1, 1, 1], 0])
    docs = chunking.chunk_documents(chunks, torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]))
    assert docs[0].tolist() == [0, 0, 1] and docs[1, :2].tolist() == [0, 0] and docs[1, 2] > 1  # pad slot: its own


# --- the model: causality, documents, batches, FLOPs -------------------------------------------

def decisions(model, ids):
    out = model.routing_decisions(torch.tensor([ids]))
    return [(d["p"][0], d["b"][0]) for d in out]


@pytest.mark.parametrize("name", ["one", "two"])
@settings(max_examples=10)
@given(edit=edits(max_bytes=32))
def test_changing_byte_j_changes_nothing_before_j(name, edit):
    """Logits and every stage's boundary probabilities and decisions at positions <= t are the same
    whatever follows t (stage-2 positions are the stage-1 chunks that start at or before t)."""
    model = MODELS[name]
    with torch.no_grad():
        before = model(torch.tensor([edit.ids]), None)[0, : edit.t + 1]
        after = model(torch.tensor([edit.edited]), None)[0, : edit.t + 1]
    assert torch.allclose(before, after, **LOGIT_TOLERANCE), edit  # float32 logits of float64 models
    n_known = edit.t + 1
    for (p0, b0), (p1, b1) in zip(decisions(model, edit.ids), decisions(model, edit.edited)):
        assert torch.allclose(p0[:n_known], p1[:n_known], atol=1e-10) and torch.equal(b0[:n_known], b1[:n_known]), edit
        n_known = int(b0[:n_known].sum())  # next stage: the chunks that started at or before t


def test_causality_test_sees_a_change_after_j():
    """The perturbation test can fail: a change at j does move the logits at j."""
    ids = encode("the cat sat on the mat").tolist()
    edited = ids[:5] + [ids[5] + 1] + ids[6:]
    with torch.no_grad():
        a, b = MODELS["one"](torch.tensor([ids]), None), MODELS["one"](torch.tensor([edited]), None)
    assert torch.equal(a[0, :5], b[0, :5]) and not torch.allclose(a[0, 5], b[0, 5])


@pytest.mark.parametrize("name", ["one", "two"])
def test_documents_in_a_row_do_not_see_each_other(name):
    model = MODELS[name]
    second = encode("the second document, the same", bos=True, eos=False).tolist()
    rows_ = [encode("first one.", eos=True).tolist() + second,
             encode("a quite different earlier text!!", eos=True).tolist() + second]
    with torch.no_grad():
        outs = [model(torch.tensor([r]), None)[0, -len(second):] for r in rows_]
    assert torch.allclose(outs[0], outs[1], **LOGIT_TOLERANCE)


@pytest.mark.parametrize("name", ["one", "two"])
@settings(max_examples=8)
@given(batch=st.lists(rows(max_bytes=30), min_size=2, max_size=3),
       pad=st.sampled_from([PAD_ID, EOS_ID]))
def test_a_row_alone_equals_the_row_in_a_padded_batch(name, batch, pad):
    model = MODELS[name]
    together = padded(batch, [pad] * len(batch), extra=2)
    with torch.no_grad():
        out = model(together, None)
        for b, row in enumerate(batch):
            alone = model(torch.tensor([row]), None)[0]
            assert torch.allclose(alone, out[b, : len(row)], **LOGIT_TOLERANCE), (b, row)


@pytest.mark.parametrize("name", ["one", "two"])
def test_flops_equal_flop_counter_at_the_realised_chunk_counts(name):
    model = build(ONE if name == "one" else TWO, dtype=torch.float32)
    tokens = encode("The quick brown fox jumps over the lazy dog; then it naps in the sun.")[None]
    shape = model.flops_kwargs(tokens)
    assert len(shape["compression"]) == (1 if name == "one" else 2)
    reported = model.flops(float(tokens.shape[1]), 1.0, attention="dense", **shape)
    assert set(reported) == {"encoder", "router", "main", "decoder", "head"} and all(v > 0 for v in reported.values())
    assert flops_mismatch(reported, lambda: model(tokens, None, next_targets(tokens)), name) is None
    # without the realised shape: the configured targets (what the training budget uses)
    target = model.flops(1000.0, 1.0)
    main_at = model.flops(1000.0, 1.0, compression=[c * 2 for c in model.config.compression])["main"]
    assert main_at < target["main"]


@pytest.mark.parametrize("table", [ONE, TWO], ids=["one", "two"])
def test_model_contract_suite(registry, table):
    results = {r.name: r for r in check_model("dynamic_chunking", registry=registry, config=table, max_examples=6)}
    assert {"loss", "flops", "gradients"} <= set(results)
    assert {f"causality[{p}]" for p in ("byte", "strided", "space")} <= set(results)
    assert all(r.status in ("pass", "skip") for r in results.values()), results


def test_default_config_passes_the_contract_suite(registry):
    results = run_model_contracts("dynamic_chunking", registry=registry, max_examples=4)
    assert all(r.status in ("pass", "skip") for r in results), [r for r in results if r.status == "fail"]


def test_config_lengths_are_checked():
    with pytest.raises(blt.core.errors.ConfigError, match=r"\$\.model\.compression: expected 2 entries"):
        build({**TWO, "compression": [2.0]})
    with pytest.raises(blt.core.errors.ConfigError, match=r"\$\.model\.heads\[0\]"):
        build({**ONE, "heads": [3, 2]})


def test_aux_loss_and_stats():
    model = build(ONE, dtype=torch.float32)
    tokens = padded([encode("hello there, general").tolist(), encode("hi").tolist()], [PAD_ID, PAD_ID])
    model.train()
    ce, n = model(tokens, None, next_targets(tokens))
    aux, metrics = model.aux_loss()
    assert model.aux_loss() is None  # read once
    assert {"ratio_loss", "compression_stage1"} <= set(metrics)
    assert math.isclose(float(aux.detach()), 0.03 * metrics["ratio_loss"], rel_tol=1e-5)
    d = model.routing_decisions(tokens)[0]
    real = d["valid"].sum().item()
    assert math.isclose(metrics["compression_stage1"], real / (d["b"] & d["valid"]).sum().item())
    model.eval()
    model(tokens, None)
    assert model.aux_loss() is None  # eval forwards leave none
    stats = model.eval_stats(tokens, None)
    assert stats["avg_patch_size"] == stats["compression_stage1"] == metrics["compression_stage1"]


# --- the CLI: train, eval stats, patch --run, generate -----------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("dc")
    os.environ.setdefault("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    os.environ["BLT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    data = tiny(model=dict(ONE), patcher={"kind": "strided", "patch_size": 3},
                train={"steps": 4, "eval_every": 2, "checkpoint_every": 2, "grad_accum": 2})
    cfg = write_toml(root / "c.toml", data)
    from blt.cli.main import main

    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run"


def test_training_logs_compression_and_ratio_loss(trained):
    rows_ = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows_ if r["kind"] == "train"]
    assert train_rows and all({"compression_stage1", "ratio_loss", "aux_loss"} <= set(r) for r in train_rows)
    assert all(r["compression_stage1"] >= 1 and r["ratio_loss"] > 0 for r in train_rows)
    assert all(math.isclose(r["aux_loss"], 0.03 * r["ratio_loss"], rel_tol=1e-4) for r in train_rows)
    evals = [r for r in rows_ if r["kind"] == "eval"]
    assert evals and all(r["stats"]["avg_patch_size"] >= 1 for r in evals)
    final = json.loads((trained / "final.json").read_text())
    assert final["stats"]["compression_stage1"] == final["avg_patch_size"] == evals[-1]["stats"]["avg_patch_size"]
    assert set(final["flops_by_component"]) >= {"encoder", "router", "main", "decoder", "head"}


def test_eval_reports_the_realised_chunk_size(trained):
    from blt.train.evaluate import evaluate
    from blt.data import open_store
    from blt.train.weights import load_trained

    from blt.data import eval_batches

    config, _registry, patcher, model = load_trained(trained)
    store = open_store(config.data, "heldout", patcher, config.patcher)
    for net in (model, build(TWO, dtype=torch.float32)):
        result = evaluate(net, store, seq_len=64, batch_size=2, max_bytes=1024, device=torch.device("cpu"), dtype="fp32")
        # oracle: the split's positions over its chunks, per stage, counted batch by batch here
        positions, chunks, batch_ratios = {}, {}, []
        for batch in eval_batches(store, 64, 2, 1024):
            for s, d in enumerate(net.routing_decisions(batch.tokens), start=1):
                positions[s] = positions.get(s, 0) + int(d["valid"].sum())
                chunks[s] = chunks.get(s, 0) + int((d["b"] & d["valid"]).sum())
            batch_ratios.append(net.eval_stats(batch.tokens)["avg_patch_size"])
        assert len(batch_ratios) > 1
        stats = result["stats"]
        assert math.isclose(stats["avg_patch_size"], positions[1] / chunks[1], rel_tol=1e-9)
        for s in positions:
            assert math.isclose(stats[f"compression_stage{s}"], positions[s] / chunks[s], rel_tol=1e-9)
        if 2 in positions:
            assert math.isclose(stats["bytes_per_chunk_stage2"], positions[1] / chunks[2], rel_tol=1e-9)


def test_held_out_compression_divides_summed_counts():
    """Bytes per chunk over two batches is their bytes over their chunks (20 / 6), not the mean
    of the batches' ratios ((10 + 2) / 2 = 6), which overstates it."""
    model = MODELS["two"]
    stats = model.stats_from_counts({"positions_stage1": 10.0 + 10.0, "chunks_stage1": 1.0 + 5.0,
                                     "positions_stage2": 6.0, "chunks_stage2": 4.0})
    assert math.isclose(stats["avg_patch_size"], 20 / 6) and stats["avg_patch_size"] == stats["compression_stage1"]
    assert math.isclose(stats["compression_stage2"], 6 / 4) and math.isclose(stats["bytes_per_chunk_stage2"], 20 / 4)
    tokens = padded([encode("hello there, general").tolist(), encode("hi").tolist()], [PAD_ID, PAD_ID])
    counts = model.eval_counts(tokens)
    d = model.routing_decisions(tokens)
    real = len("hello there, general") + len("hi") + 2 * 2  # BOS and EOS count, pads do not
    assert counts["positions_stage1"] == int(d[0]["valid"].sum()) == real
    assert counts["chunks_stage1"] == int((d[0]["b"] & d[0]["valid"]).sum())
    assert counts["positions_stage2"] == counts["chunks_stage1"]  # stage 2 reads stage 1's chunks


def test_patch_run_shows_the_routers_chunks(trained, capsys):
    from blt.cli.main import main

    assert main(["patch", "--run", str(trained), "--kind", "dynamic_chunking", "--text", "In the beginning",
                 "--separator", "|", "--show-entropy"]) == 0
    out = capsys.readouterr().out
    assert "dynamic_chunking stage 1" in out and "scores:" in out and "|" in out
    code = main(["patch", "--run", str(trained), "--kind", "blt", "--text", "x"])
    err = " ".join(capsys.readouterr().err.split())
    assert code != 0 and "does not match the run's model kind 'dynamic_chunking'" in err and "Traceback" not in err


def test_generate_no_cache_works_and_cached_is_refused_clearly(trained, capsysbinary):
    from blt.cli.main import main

    base = ["generate", str(trained), "--prompt", "In the", "--max-bytes", "6", "--no-stream", "--no-eos-stop"]
    assert main(base + ["--no-cache"]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b"In the") and len(out) > len(b"In the")
    code = main(base)
    err = " ".join(capsysbinary.readouterr().err.decode().split())
    assert code != 0 and err.startswith("error:") and "--no-cache" in err and "Traceback" not in err
