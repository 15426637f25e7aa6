"""GPU check (not a test) of the ``flex`` backend's compile behaviour: one compile per mask kind, no
fallback to the unfused path as shapes change between batches.

    python bench/gpu_flex_check.py [OUT_JSON]

A small BLT in bf16 is trained (forward + cross-entropy + backward) with ``flex`` (BlockMasks built
by a compiled ``create_block_mask``, the default), ``flex_eager_mask`` (``compile_block_mask = false``:
BlockMasks built uncompiled, the previous behaviour) and ``sdpa`` (same weights) on batches of
several lengths; per batch it records the losses, the step times after the first call, and
dynamo's count of compiled graphs and recompilations.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

CFG = {"d_local": 512, "local_heads": 8, "local_ffn": 1536, "encoder_layers": 1, "decoder_layers": 3,
       "d_global": 1024, "global_heads": 16, "global_layers": 4, "global_ffn": 2816,
       "window": 512, "k": 2, "hash_sizes": [3, 4, 5, 6, 7, 8], "hash_buckets": 4096, "batch": 4, "seq_len": 2048}


def main() -> None:
    import blt
    import common
    from torch._dynamo.utils import counters

    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.environ.get("OUT", HERE / "results")) / "gpu_flex_check.json"
    device = torch.device("cuda")
    torch.manual_seed(0)
    with torch.device(device):
        flex = blt.build_model(common.experiment(CFG, "flex"), training=True, device=device).to(torch.bfloat16).train()
        sdpa = blt.build_model(common.experiment(CFG, "sdpa"), training=True, device=device).to(torch.bfloat16).train()
        eager_mask_exp = common.experiment(CFG, "flex")
        eager_mask_exp["attention"]["compile_block_mask"] = False
        flex_eager_mask = blt.build_model(eager_mask_exp, training=True, device=device).to(torch.bfloat16).train()
    sdpa.load_state_dict(flex.state_dict())
    flex_eager_mask.load_state_dict(flex.state_dict())
    rows = []
    t0 = time.perf_counter()
    for i, (batch, seq_len) in enumerate([(4, 2048), (4, 1536), (2, 3000), (4, 2048), (3, 1000), (4, 2500)]):
        tokens, lengths = common.text_batch(batch, seq_len, offset=7919 * i)
        tokens, lengths = tokens.to(device), lengths.to(device)
        row = {"batch": batch, "seq_len": seq_len, "patches": int(lengths.shape[1])}
        for name, model in (("flex", flex), ("flex_eager_mask", flex_eager_mask), ("sdpa", sdpa)):
            def step() -> float:
                model.zero_grad(set_to_none=True)
                loss = common.loss_of(model(tokens, lengths), tokens)
                loss.backward()
                return float(loss)
            torch.cuda.synchronize()
            t = time.perf_counter()
            row[f"{name}_loss"] = step()
            torch.cuda.synchronize()
            row[f"{name}_first_s"] = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(3):
                step()
            torch.cuda.synchronize()
            row[f"{name}_step_s"] = (time.perf_counter() - t) / 3
        row["unique_graphs"] = counters["stats"].get("unique_graphs", 0)
        row["recompiles"] = dict(counters.get("recompiles", {}))
        row["elapsed_s"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps(row), flush=True)
        if time.perf_counter() - t0 > float(os.environ.get("BLT_FLEX_CHECK_BUDGET_S", "120")):
            break
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "config": CFG,
                                    "rows": rows}, indent=2))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
