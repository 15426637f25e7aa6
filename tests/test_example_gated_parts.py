"""The second worked plugin package, examples/blt-gated-parts (an encoder, a decoder and an
attention backend of its own), "installed" through a generated ``.dist-info`` (no network):
listed with its distribution, trained, ablated, generated (cached == --no-cache) and checked by
``blt check-plugin``; its own test suite passes as its authors would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny import tiny, write_toml

from blt.cli.main import main
from blt.testing import fake_distribution

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on shared CPUs

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "blt-gated-parts"
ENTRY_POINTS = {"conv_pool": "blt_gated_parts.conv_pool", "gated": "blt_gated_parts.gated", "chunked": "blt_gated_parts.chunked"}
PARTS = {
    "encoder": {"kind": "conv_pool", "layers": 1, "heads": 2, "ffn_dim": 64, "window": 32, "hash_sizes": [3, 4],
                "hash_buckets": 512, "kernel": 4, "pool_heads": 2},
    "decoder": {"kind": "gated", "layers": 1, "heads": 2, "ffn_dim": 64, "window": 32},
    "attention": {"kind": "chunked", "query_chunk": 16, "key_block": 24},
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example 'installed' for this module: its sources and a dist-info on sys.path, autoload on."""
    site = tmp_path_factory.mktemp("site")
    fake_distribution(site, "blt-gated-parts", "0.1.0", ENTRY_POINTS)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BLT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
        mp.delenv("BLT_BLOCK_PLUGINS", raising=False)
        mp.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.syspath_prepend(str(EXAMPLE / "src"))
        mp.syspath_prepend(str(site))
        yield site


@pytest.fixture(scope="module")
def trained(installed, tmp_path_factory):
    root = tmp_path_factory.mktemp("gated_parts_run")
    config = write_toml(root / "c.toml", tiny(**PARTS, train={"steps": 8, "eval_every": 0, "checkpoint_every": 0, "eval_bytes": 256}))
    assert main(["train", str(config), "--out", str(root / "run")]) == 0
    return root / "run"


def test_listed_with_their_distribution(installed, capsys):
    assert main(["plugins", "--json"]) == 0
    rows = {(r["family"], r["kind"]): r for r in json.loads(capsys.readouterr().out)}
    for family, kind in (("encoders", "conv_pool"), ("decoders", "gated"), ("attention", "chunked")):
        row = rows[(family, kind)]
        assert (row["plugin"], row["distribution"]) == (kind, "blt-gated-parts"), row


def test_trains_with_its_own_flops(trained):
    final = json.loads((trained / "final.json").read_text())
    assert final["steps"] == 8 and 0 < final["eval_bpb"] < 9
    components = final["flops_by_component"]
    assert components["encoder_pooling"] > 0 and components["decoder_gate"] > 0, components


def test_cached_generation_equals_no_cache(trained, capsysbinary):
    base = ["generate", str(trained), "--prompt", "In the beginning", "--prompt", "and the", "--max-bytes", "24",
            "--no-eos-stop", "--no-stream"]
    assert main(base) == 0
    cached = capsysbinary.readouterr().out
    assert main(base + ["--no-cache"]) == 0
    assert capsysbinary.readouterr().out == cached
    assert cached.startswith(b"In the beginning") and len(cached) > len(b"In the beginning\nand the\n") + 24


def test_two_variant_ablation(installed, tmp_path, capsys):
    base = tiny(**PARTS)
    base["train"].pop("steps")
    base["train"].update({"eval_points": 1, "checkpoint_every": 0, "eval_bytes": 256})
    variants = {"attention_pool": {"encoder": {"pool": "attention"}}, "gated_mean_k2": {"encoder": {"pool": "gated_mean", "kernel": 2}}}
    config = write_toml(tmp_path / "ablation.toml", {"base": base, "budget": {"train_flops": 3e8}, "variants": variants})
    assert main(["ablate", str(config), "--out", str(tmp_path / "out")]) == 0
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["name"] for r in records] == ["attention_pool", "gated_mean_k2"]
    for r in records:
        assert 0 < r["bpb"] < 9 and r["steps"] >= 1 and r["train_flops"] <= 3e8


@pytest.mark.parametrize(("family", "kind"), [("encoder", "conv_pool"), ("decoder", "gated"), ("attention", "chunked")])
def test_check_plugin(installed, capsys, family, kind):
    code = main(["check-plugin", "--family", family, kind, "--max-examples", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "blt-gated-parts" in out and "0 failed" in out


def test_its_own_suite_passes():
    """What the package's authors run: ``pytest`` in examples/blt-gated-parts (sources on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE / "src"), str(EXAMPLE.parents[1])]),
           "OMP_NUM_THREADS": "2", "BLT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=EXAMPLE, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
