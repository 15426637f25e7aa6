"""Benchmark (not a test): entropy-patching throughput on CPU next to a training step it would serve.

    PYTHONPATH=. python bench/bench_entropy_patching.py [--rows 8] [--seq-len 4096] [--threads 2]

Measures, in one run: bytes/s of realtime entropy patching (model forward + threshold rule) for the
shipped transformer-tiny and cnn-tiny models, batched and one row at a time; and bytes/s of one
training step (forward + backward + AdamW) of a small BLT from ``blt.build_model`` on the same
batch. If ``blt.build_model`` is not available (or fails), a comparable plain byte transformer
built from ``blt.model.blocks`` is timed instead, and the output says so.
"""

from __future__ import annotations

import argparse
import time

import torch


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def batch_of_text(rows: int, seq_len: int) -> torch.Tensor:
    from blt.corpus import load_builtin_corpus
    from blt.tokens import encode

    stream = torch.cat([encode(d.text) for d in load_builtin_corpus("heldout")])
    return stream[: rows * seq_len].view(rows, seq_len)


def blt_step(tokens: torch.Tensor, lengths: torch.Tensor):
    """A training step of the default small BLT (``blt.build_model``), or None with the reason."""
    try:
        import blt
        from blt.experiment import load_experiment

        config, registry = load_experiment({})
        model = blt.build_model(config, registry=registry)
    except Exception as exc:  # the model is being written by another engineer
        return None, f"{type(exc).__name__}: {exc}"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        logits = model(tokens, lengths)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return (step, sum(p.numel() for p in model.parameters())), "blt.build_model (default experiment config)"


def plain_step(tokens: torch.Tensor):
    """Fallback: a plain 4-layer, 128-wide byte transformer (about the default small BLT's compute)."""
    import torch.nn.functional as F

    from blt.model.blocks import TransformerLayer, rope_angles

    dim, layers = 128, 4
    emb, head = torch.nn.Embedding(260, dim), torch.nn.Linear(dim, 260, bias=False)
    stack = torch.nn.ModuleList(TransformerLayer(dim, 4, ffn_dim=384) for _ in range(layers))
    params = [*emb.parameters(), *head.parameters(), *stack.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    rope = rope_angles(torch.arange(tokens.shape[1]), dim // 4, 10000.0)

    def attend(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def step() -> None:
        x = emb(tokens)
        for layer in stack:
            x = layer(x, rope, attend)
        loss = F.cross_entropy(head(x)[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import blt

    registry = blt.make_registry(autoload=False)
    tokens = batch_of_text(args.rows, args.seq_len)
    n_bytes = tokens.numel()
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; batch {args.rows} x {args.seq_len} tokens of held-out text")
    results = {}
    lengths = None
    for kind in ("entropy", "cnn_entropy"):
        patcher = registry.build_patcher({"kind": kind, "batch_size": args.rows})
        single = registry.build_patcher({"kind": kind, "batch_size": 1})
        t_batch = timed(lambda: patcher.patch(tokens, include_next_token=True), args.repeats)
        t_single = timed(lambda: single.patch(tokens[0]), args.repeats) * args.rows
        results[kind] = (t_batch, t_single)
        print(f"{kind:12s} batched {n_bytes / t_batch:12,.0f} B/s   one row at a time {n_bytes / t_single:12,.0f} B/s")
        if kind == "entropy":
            lengths = patcher.patch(tokens, include_next_token=True).lengths
    built, what = blt_step(tokens, lengths)
    if built is None:
        print(f"blt.build_model unavailable ({what}); timing a comparable plain byte transformer instead")
        step, n_params = plain_step(tokens)
        what = "plain 4-layer 128-wide byte transformer (blt.model.blocks)"
    else:
        step, n_params = built
    t_step = timed(step, args.repeats)
    print(f"train step   {n_bytes / t_step:12,.0f} B/s   ({what}, {n_params / 1e6:.2f} M params, {t_step:.2f} s/step)")
    for kind, (t_batch, t_single) in results.items():
        print(f"ratio {kind:12s}: patching costs {t_batch / t_step:.2f}x a training step (batched), {t_single / t_step:.2f}x (one row at a time)")


if __name__ == "__main__":
    main()
