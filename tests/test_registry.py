"""The registry: validation, provenance, blocking, autoload, frozen mappings and config errors."""

from __future__ import annotations

import types

import pytest

import blt
from blt.core.config import PatcherConfig
from blt.core.errors import ConfigError, PluginError
from blt.core.specs import PatcherSpec
from blt.plugins.patchers.strided import StridedPatcher


def plugin_module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, blt.hookimpl(fn))
    return module


class SpaceAgainConfig(PatcherConfig, tag="space"):
    pass


def test_builtins_are_registered_with_provenance(registry):
    assert {"strided", "byte", "space", "bpe"} <= set(registry.patchers)
    prov = registry.provider("patchers", "space")
    assert prov.plugin == "blt.plugins.patchers.space" and prov.distribution == "blt-lab"
    assert registry.patchers["bpe"].incremental is False and registry.patchers["space"].incremental is True


def test_mappings_are_frozen(registry):
    with pytest.raises(TypeError):
        registry.patchers["x"] = registry.patchers["byte"]
    with pytest.raises(AttributeError):
        registry.patchers = {}


def test_duplicate_kind_names_both_providers():
    dup = plugin_module("my_dup", blt_register_patchers=lambda: [
        PatcherSpec(name="space", config_type=SpaceAgainConfig, build=StridedPatcher, incremental=True)])
    with pytest.raises(PluginError) as info:
        blt.make_registry(autoload=False, plugins=[dup])
    message = str(info.value)
    assert "duplicate patcher kind 'space'" in message
    assert "blt.plugins.patchers.space" in message and "blt-lab" in message and "my_dup" in message


def test_misspelt_hook_fails_check_pending_naming_the_plugin():
    typo = plugin_module("typo_plugin", blt_register_patcher=lambda: [])
    with pytest.raises(PluginError, match="typo_plugin.*blt_register_patcher"):
        blt.make_registry(autoload=False, plugins=[typo])


def test_hook_that_raises_is_reported_with_its_plugin():
    def boom():
        raise RuntimeError("kaput")

    with pytest.raises(PluginError, match=r"boom_plugin.*blt_register_patchers raised RuntimeError: kaput"):
        blt.make_registry(autoload=False, plugins=[plugin_module("boom_plugin", blt_register_patchers=boom)])


def test_blocking_builtins_by_module_or_short_name(monkeypatch):
    assert "bpe" not in blt.make_registry(autoload=False, block=["blt.plugins.patchers.bpe"]).patchers
    monkeypatch.setenv("BLT_BLOCK_PLUGINS", "space, byte")
    reg = blt.make_registry(autoload=False)
    assert "space" not in reg.patchers and "byte" not in reg.patchers and "strided" in reg.patchers


def test_autoload_off_skips_entry_points(monkeypatch):
    import importlib.metadata as md

    def fail(**kwargs):
        raise AssertionError("entry points must not be read with autoload off")

    monkeypatch.setattr(md, "entry_points", fail)
    blt.make_registry(autoload=False)
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    blt.make_registry()


@pytest.mark.parametrize(("config", "pattern"), [
    ({"kind": "spaec"}, r"\$\.patcher\.kind: unknown patcher kind 'spaec'; registered: .*bpe.*strided.*; did you mean 'space'\?"),
    ({"kind": "zzz"}, r"unknown patcher kind 'zzz'; registered: bpe, byte"),
    ({"kind": "strided", "patch_sise": 4}, r"\$\.patcher: Object contains unknown field `patch_sise`"),
    ({"kind": "strided", "patch_size": 0}, r"\$\.patcher\.patch_size: Expected `int` >= 1"),
    ({"kind": "strided", "patch_size": -3}, r"\$\.patcher\.patch_size: Expected `int` >= 1"),
    ({"kind": "strided", "patch_size": "four"}, r"\$\.patcher\.patch_size: Expected `int`, got `str`"),
    ({"kind": "space", "max_patch_length": 0}, r"\$\.patcher\.max_patch_length: Expected `int` >= 1"),
    ({}, r"\$\.patcher\.kind: missing"),
    (42, r"\$\.patcher: expected a table with a 'kind' field"),
])
def test_config_errors_name_the_field_path(registry, config, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        registry.build_patcher(config)
    assert "\n" not in str(info.value)


def test_configs_from_dicts_strings_and_structs(registry):
    from blt.plugins.patchers.strided import StridedConfig

    assert registry.build_patcher("byte").patch(blt.tokens.encode("a")).lengths.tolist() == [1, 1, 1]
    assert registry.build_patcher(StridedConfig(patch_size=2)).config.patch_size == 2
    with pytest.raises(ConfigError, match="does not belong"):
        registry.config("patchers", SpaceAgainConfig())


def test_experiment_file_block_and_unknown_kind(tmp_path):
    from blt.experiment import load_experiment

    path = tmp_path / "exp.toml"
    path.write_text('[plugins]\nblock = ["blt.plugins.patchers.bpe"]\n\n[patcher]\nkind = "bpe"\n')
    with pytest.raises(ConfigError, match=r"\$\.patcher\.kind: unknown patcher kind 'bpe'"):
        load_experiment(path)
    path.write_text('[patcher]\nkind = "strided"\npatch_size = 0\n')
    with pytest.raises(ConfigError, match=r"\$\.patcher\.patch_size"):
        load_experiment(path)
