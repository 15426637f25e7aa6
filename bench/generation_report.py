"""The generation part of ``BENCHMARKS.md``: cached vs no-cache, batches, the Llama floor,
speculative decoding, and the issue-15 targets, rendered from the benchmarks' JSON files."""

from __future__ import annotations


def generate_section(res: dict, cmd: str) -> list[str]:
    lines = ["### Generation: cached vs no-cache, batches", "", f"Command: `{cmd}`", "",
             f"Model `{res['config']}` (random weights: the cost per byte does not depend on them), patcher "
             f"`{res['patcher']}`, greedy, EOS ignored.", "",
             "| bytes | cached B/s | no-cache B/s | cached / no-cache |", "|---|---|---|---|"]
    by = {}
    for run in res["runs"]:
        by.setdefault(run["bytes"], {})[run["mode"]] = run["bytes_per_s"]
    for n, modes in sorted(by.items()):
        c, nc = modes.get("cached"), modes.get("no-cache")
        lines.append(f"| {n} | {c:,.0f} | {f'{nc:,.0f}' if nc else '-'} | {f'x{c / nc:.1f}' if nc else '-'} |")
    cached = res.get("per_byte_cached")
    if cached:
        lines += ["", f"Cached time per byte over the first / last 64 bytes of the longest run: {cached['first_ms']:.2f} / "
                  f"{cached['last_ms']:.2f} ms (end/start {cached['ratio']:.2f}: the cost per byte stays flat)."]
    for key in ("batch", *sorted(k for k in res if k.startswith("batch_"))):
        b = res.get(key)
        if b:
            lines += ["", f"Batch of {b['rows']} ragged prompts x {b['bytes_per_row']} bytes vs one prompt, patcher "
                      f"`{b['patcher']}`: total bytes/s **x{b['median_ratio']:.2f}** (CPU time x{b['median_cpu_ratio']:.2f}; "
                      f"rounds {', '.join(f'{r:.2f}' for r in b['ratios'])})."]
    return lines + ["", BATCH_WHY, ""]


BATCH_WHY = (
    "Why `space` gains less from a batch than `strided`, and why x4 is out of reach on this config: rows with "
    "different prompts close their patches at different positions, so in a batch of 8 some row runs the close path "
    "(its patch vector, the global step, the decoder's key/value update) at ~79% of the steps, against ~24% for one "
    "row; `strided` rows close together. Measured by hand (best of 5 runs of 256 bytes, 2026-12-01): one row costs "
    "445 us per step (encoder 140, patch vectors 42, global 69, decoder push 19, decoder 113, the rest head and "
    "bookkeeping); a batch of 8 costs ~1060 us per step (encoder 231, patch vectors 147, global 321, push 66, decoder "
    "190). x4 needs the batch's step at no more than 2x the single row's (890 us). The close path alone adds ~400 us "
    "(it runs 3.3x as often) and the rows' own arithmetic ~170 us: single-query attention over 8 rows costs 33 us "
    "against 8 us for one (PyTorch's CPU flash kernel works head by head), an 8-row projection 8 us against 3; and "
    "whatever shortens the close path or a kernel call shortens the single row's step too. Measured and dropped: "
    "every row stepping through the global stack whenever any row closes (the cache read as one view, no gathers) "
    "was 1.2x slower than gathering the ~2 closing rows; in a simulation where closing rows wait so that global "
    "steps run together, the gain on this config is ~4%; one decoder layer compiled with `torch.compile` ran in 68 "
    "us (56 us with cpp_wrapper) against 54 us eager, after 6-7 s of compilation and with outputs 1e-6 apart, so no "
    "compiled step ships. Both sides read their prompts in blocks (`blt/generate/prefill.py`): the single row all "
    "of its 55-byte prompt but the last byte, the batch up to its shortest prompt (34 bytes), so prefill speeds up "
    "the single row more; the same benchmark gave x3.37 before prefill (an earlier run on 2026-12-01).")


def floor_section(res: dict, cmd: str) -> list[str]:
    lines = ["### Generation floor: our cached step vs a byte-level Llama", "", f"Command: `{cmd}`", "",
             "The floor is transformers' `LlamaForCausalLM` with vocabulary 260 and the local decoder's width, depth, "
             "heads and FFN width, KV cache, the faster of `model.generate` and a manual `past_key_values` loop. Runs "
             "alternate; a ratio is the median of the rounds' own ratios.", "",
             "| bytes | ours ms/B | llama.generate ms/B | llama loop ms/B | ours / floor |", "|---|---|---|---|---|"]
    for n, r in sorted(res["lengths"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {n} | {r['ours_ms_per_byte']:.3f} | {r['hf_generate_ms_per_byte']:.3f} | {r['hf_loop_ms_per_byte']:.3f} "
                     f"| x{r['ours_over_floor']:.2f} |")
    nc = res.get("nocache")
    if nc:
        rounds = f" (median of alternating rounds: {', '.join(f'{r:.1f}' for r in nc['rounds'])})" if nc.get("rounds") else ""
        lines += ["", f"Cached vs no-cache at {nc['bytes']} bytes: cached {nc['cached_s']:.2f} s, no-cache {nc['nocache_s']:.2f} s, "
                  f"cached **x{nc['speedup']:.1f}** faster{rounds}."]
    step = res.get("step")
    if step:
        lines += ["", f"Our step over {step['positions']} positions ({step['patches']} patches closed): "
                  f"{step['per_byte_ms']:.3f} ms per byte; " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in step["shares"].items()) + "."]
    return lines + [""]


def targets_section(generate: dict | None, floor: dict | None, speculative: dict | None) -> list[str]:
    rows = []
    if floor and "1024" in {str(k) for k in floor["lengths"]}:
        r = {str(k): v for k, v in floor["lengths"].items()}["1024"]["ours_over_floor"]
        rows.append(f"| ours <= 1.5x the byte-level Llama per byte at 1 KiB | x{r:.2f} | {'met' if r <= 1.5 else 'NOT met'} |")
    if floor and floor.get("nocache"):
        s = floor["nocache"]["speedup"]
        rows.append(f"| cached >= 20x faster than no-cache at 1 KiB | x{s:.1f} | {'met' if s >= 20 else 'NOT met'} |")
    if generate and generate.get("batch"):
        b = generate["batch"]
        other = next((generate[k] for k in generate if k.startswith("batch_")), None)
        extra = f"; `{other['patcher']}` x{other['median_ratio']:.2f}" if other else ""
        rows.append(f"| batch of 8 prompts >= 4x the bytes/s of one | `{b['patcher']}` x{b['median_ratio']:.2f}{extra} | "
                    f"{'met' if b['median_ratio'] >= 4 else 'NOT met'} with `{b['patcher']}` |")
    if speculative:
        heavy = speculative.get("summary", {})
        ok = heavy.get("identical") and heavy.get("fewer_global_calls") and heavy.get("faster")
        rows.append(f"| `--speculative`: greedy output identical; fewer global calls per byte and higher bytes/s on the "
                    f"global-heavy config | {heavy.get('text', '-')} | {'met' if ok else 'NOT met'} |")
    if not rows:
        return []
    return ["## Targets (issue 15: generation)", "", "| target | measured | status |", "|---|---|---|", *rows, ""]
