"""Issue 11, "Done when": a package of its own re-registers the builtin ``pooling`` encoder and
``add`` decoder under new names (new config tags, the same builders) and everything works with no
change to blt's code: train, ablate, generate (cached == --no-cache), check-plugin. And a subclass
that changes ``forward`` without a step of its own is never silently wrong: cached generation
refuses it, naming the missing step, while --no-cache works."""

from __future__ import annotations

import json

import pytest
from _tiny import tiny, write_toml

from blt.cli.main import main
from blt.testing import fake_distribution

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on shared CPUs

PACKAGE = '''
"""A third party's plugin: blt's own pooling encoder and add decoder under new names."""
import blt
from blt.core.specs import DecoderSpec, EncoderSpec
from blt.plugins.decoders.add import AddDecoder, AddDecoderConfig
from blt.plugins.encoders.pooling import PoolingEncoder, PoolingEncoderConfig


class MyPoolConfig(PoolingEncoderConfig, tag="my_pool"):
    pass


class MyAddConfig(AddDecoderConfig, tag="my_add"):
    pass


class ShiftedPoolConfig(PoolingEncoderConfig, tag="shifted_pool"):
    pass


class ShiftedPoolingEncoder(PoolingEncoder):
    """Changes the maths (adds a constant) and keeps the parent's incremental_step: that step would be wrong."""

    def forward(self, tokens_BN, layout, attends):
        bytes_BND, patches_BPD = super().forward(tokens_BN, layout, attends)
        return bytes_BND + 0.25, patches_BPD + 0.25


@blt.hookimpl
def blt_register_encoders():
    return [EncoderSpec(name="my_pool", config_type=MyPoolConfig, build=PoolingEncoder),
            EncoderSpec(name="shifted_pool", config_type=ShiftedPoolConfig, build=ShiftedPoolingEncoder)]


@blt.hookimpl
def blt_register_decoders():
    return [DecoderSpec(name="my_add", config_type=MyAddConfig, build=AddDecoder)]
'''
ENCODER = {"layers": 1, "heads": 2, "ffn_dim": 64, "window": 32, "hash_sizes": [3, 4], "hash_buckets": 512, "mode": "mean"}
DECODER = {"layers": 1, "heads": 2, "ffn_dim": 64, "window": 32}
PROMPTS = ["--prompt", "In the beginning", "--prompt", "and God", "--max-bytes", "24", "--no-eos-stop", "--no-stream"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    fake_distribution(site, "blt-renamed-parts", "0.1.0", {"renamed": "blt_renamed_parts"},
                      modules={"blt_renamed_parts.py": PACKAGE})
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BLT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
        mp.delenv("BLT_BLOCK_PLUGINS", raising=False)
        mp.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.syspath_prepend(str(site))
        yield site


def _train(root, encoder_kind, decoder_kind, steps):
    config = write_toml(root / f"{encoder_kind}.toml", tiny(encoder={"kind": encoder_kind, **ENCODER},
                                                            decoder={"kind": decoder_kind, **DECODER},
                                                            train={"steps": steps, "eval_every": 0, "checkpoint_every": 0, "eval_bytes": 256}))
    assert main(["train", str(config), "--out", str(root / encoder_kind)]) == 0
    return root / encoder_kind


@pytest.fixture(scope="module")
def renamed_run(installed, tmp_path_factory):
    return _train(tmp_path_factory.mktemp("renamed"), "my_pool", "my_add", steps=6)


@pytest.fixture(scope="module")
def shifted_run(installed, tmp_path_factory):
    return _train(tmp_path_factory.mktemp("shifted"), "shifted_pool", "add", steps=1)


def test_trains_under_new_names(renamed_run):
    final = json.loads((renamed_run / "final.json").read_text())
    assert final["steps"] == 6 and 0 < final["eval_bpb"] < 9
    assert final["flops_by_component"]["local_encoder"] > 0 and final["flops_by_component"]["local_decoder"] > 0
    config = json.loads((renamed_run / "config.json").read_text())
    assert (config["encoder"]["kind"], config["decoder"]["kind"]) == ("my_pool", "my_add")


def test_generates_cached_identical_to_no_cache(renamed_run, capsysbinary):
    assert main(["generate", str(renamed_run), *PROMPTS]) == 0
    cached = capsysbinary.readouterr().out
    assert main(["generate", str(renamed_run), *PROMPTS, "--no-cache"]) == 0
    assert capsysbinary.readouterr().out == cached
    assert cached.startswith(b"In the beginning") and cached.count(b"\n") == 2


def test_ablates_and_matches_the_builtins_it_renames(installed, tmp_path):
    """Same builders, seed and data: the renamed pair trains to exactly the builtin pair's BPB."""
    base = tiny(encoder={"kind": "my_pool", **ENCODER}, decoder={"kind": "my_add", **DECODER})
    base["train"].pop("steps")
    base["train"].update({"eval_points": 1, "checkpoint_every": 0, "eval_bytes": 256})
    variants = {"renamed": {"encoder": {"kind": "my_pool", **ENCODER}},
                "builtin": {"encoder": {"kind": "pooling", **ENCODER}, "decoder": {"kind": "add", **DECODER}}}
    config = write_toml(tmp_path / "ablation.toml", {"base": base, "budget": {"train_flops": 3e8}, "variants": variants})
    assert main(["ablate", str(config), "--out", str(tmp_path / "out")]) == 0
    renamed, builtin = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (renamed["name"], builtin["name"]) == ("renamed", "builtin")
    assert renamed["steps"] == builtin["steps"] >= 1 and renamed["train_flops"] == builtin["train_flops"]
    assert renamed["bpb"] == pytest.approx(builtin["bpb"], rel=1e-6) and renamed["fingerprint"] != builtin["fingerprint"]


@pytest.mark.parametrize(("family", "kind"), [("encoder", "my_pool"), ("decoder", "my_add")])
def test_passes_check_plugin(installed, capsys, family, kind):
    code = main(["check-plugin", "--family", family, kind, "--max-examples", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "blt-renamed-parts" in out and "0 failed" in out


def test_changed_forward_without_a_step_is_refused_for_cached_generation(shifted_run, capsysbinary):
    from blt.core.errors import UnavailableError
    from blt.generate import generate, load_generator

    loaded = load_generator(shifted_run)
    with pytest.raises(UnavailableError, match=r"ShiftedPoolingEncoder overrides forward\(\) but inherits "
                                               r"incremental_step\(\).*--no-cache"):
        generate(loaded.model, loaded.patcher, ["ab"], max_new_bytes=4)
    assert main(["generate", str(shifted_run), "--prompt", "ab", "--max-bytes", "4"]) == 2
    err = capsysbinary.readouterr().err.decode()
    assert "error:" in err and "incremental_step" in err and "--no-cache" in err and "Traceback" not in err
    assert main(["generate", str(shifted_run), "--prompt", "ab", "--max-bytes", "4", "--no-cache", "--no-stream"]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b"ab") and 3 <= len(out) <= 2 + 4 * 4 + 1  # up to 4 new bytes (UTF-8 replacement aside)


def test_changed_forward_without_a_step_is_named_by_the_cached_step_contract(installed):
    import blt
    from blt.testing import run_encoder_contracts

    (result,) = run_encoder_contracts("shifted_pool", registry=blt.make_registry(), only=["cached_step"])
    assert result.name == "cached_step" and not result.passed and "ShiftedPoolingEncoder overrides forward() but inherits incremental_step()" in result.detail
