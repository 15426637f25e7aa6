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
    batches = [res[key] for key in ("batch", *sorted(k for k in res if k.startswith("batch_"))) if res.get(key)]
    for b in batches:
        lines += ["", f"Batch of {b['rows']} ragged prompts x {b['bytes_per_row']} bytes vs one prompt, patcher "
                  f"`{b['patcher']}`: total bytes/s **x{b['median_ratio']:.2f}** (CPU time x{b['median_cpu_ratio']:.2f}; "
                  f"rounds {', '.join(f'{r:.2f}' for r in b['ratios'])})."]
    split = [b for b in batches if b.get("step_split")]
    if split:
        lines += ["", "Where a step goes (same run, fastest of 3 instrumented runs each; us per step and, in brackets, "
                  "calls per step: the close path's parts run only at steps where some row closes a patch):", "",
                  "| part | " + " | ".join(f"`{b['patcher']}` one row | `{b['patcher']}` batch of {b['rows']}" for b in split) + " |",
                  "|---|" + "---|---|" * len(split)]
        for part in split[0]["step_split"]["one"]["us_per_step"]:
            cells = []
            for b in split:
                for side in ("one", "batch"):
                    us, per = b["step_split"][side]["us_per_step"][part], b["step_split"][side]["calls_per_step"][part]
                    cells.append(f"{us:.0f}" if part == "step" else f"{us:.0f} ({per:.2f})")
            lines.append(f"| {'whole step' if part == 'step' else part} | " + " | ".join(cells) + " |")
        lines.append("| steps | " + " | ".join(str(b["step_split"][side]["steps"]) for b in split for side in ("one", "batch")) + " |")
        lines += ["", batch_why(split)]
    return lines + [""]


CLOSE_PARTS = ("patch vectors", "global", "decoder push")


def batch_why(split: list[dict]) -> str:
    """Why ragged rows gain less from a batch, from the measured split."""
    def close(b: dict, side: str) -> tuple[float, float, float]:
        s = b["step_split"][side]
        return sum(s["us_per_step"][p] for p in CLOSE_PARTS), s["calls_per_step"]["global"], s["us_per_step"]["step"]

    text = []
    for b in split:
        c1, f1, s1 = close(b, "one")
        c8, f8, s8 = close(b, "batch")
        text.append(f"with `{b['patcher']}` a global step runs at {100 * f8:.0f}% of the batch's steps against "
                    f"{100 * f1:.0f}% of one row's, and the close path costs {c8:.0f} us per batch step against {c1:.0f} "
                    f"({100 * c8 / s8:.0f}% and {100 * c1 / s1:.0f}% of the step)")
    return ("Why `space` gains less than `strided`: " + "; ".join(text) + ". Rows with different prompts close their "
            "patches at different positions, so with `space` some row runs the close path (patch vector, global step, "
            "the decoder's key/value update) at most steps, while `strided` rows close together. At these widths a "
            "call costs about the same for 1 or 8 rows (a step is a chain of small kernels), so the ratio is set by "
            "how many close paths a step runs; the rows' own arithmetic adds the rest (single-query attention over 8 "
            "rows costs ~4x one row's: PyTorch's CPU flash kernel works head by head). Anything that shortens the close "
            "path shortens the single row's step too. Measured and dropped (2026-12-01): every row stepping through "
            "the global stack whenever any row closes (no gathers) was 1.2x slower than gathering the ~2 closing rows; "
            "closing rows waiting so that global steps run together gained ~4% in a simulation with the measured "
            "costs; `torch.compile` of one decoder layer ran in 68 us (56 us with cpp_wrapper) against 54 us eager, so "
            "no compiled step ships. At the local-256 / global-512 widths of the training benchmark the global step "
            "reads its weights from memory (~5 ms a call for 1 or 3 rows), and a batch of 8 with `space` gave x2.44 "
            "(measured by hand, 3 rounds of 128 bytes). Both sides read their prompts in blocks "
            "(`blt/generate/prefill.py`); the batch only up to its shortest prompt, so its longer rows step through "
            "the rest (the batch's extra steps).")


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
