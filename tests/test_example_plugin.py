"""The worked plugin in examples/ and broken third-party plugins, exposed through generated
``.dist-info`` directories (no network install): listing, building, contracts, errors, blocking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import blt
from blt.core.errors import ConfigError, PluginError
from blt.testing import check_patcher, fake_distribution

EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "examples" / "blt-vowel-patcher" / "src"

DUPLICATE = '''
import blt
from blt.core.config import PatcherConfig
from blt.core.specs import PatcherSpec

class SpaceConfig(PatcherConfig, tag="space"):
    pass

@blt.hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="space", config_type=SpaceConfig, build=lambda c: None, incremental=True)]
'''
RAISING = '''
import blt

@blt.hookimpl
def blt_register_patchers():
    raise RuntimeError("hook exploded")
'''


@pytest.fixture
def vowel(tmp_path, monkeypatch):
    """The example plugin 'installed': its sources and a dist-info on sys.path."""
    monkeypatch.delenv("BLT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("BLT_BLOCK_PLUGINS", raising=False)
    fake_distribution(tmp_path / "site", "blt-vowel-patcher", "0.1.0", {"vowel": "blt_vowel_patcher.plugin"})
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return tmp_path / "site"


def test_example_is_listed_with_its_distribution(vowel, capsys):
    reg = blt.make_registry()
    assert "after_vowel" in reg.patchers
    prov = reg.provider("patchers", "after_vowel")
    assert (prov.plugin, prov.distribution, prov.version) == ("vowel", "blt-vowel-patcher", "0.1.0")
    from blt.cli.main import main

    assert main(["plugins", "--json"]) == 0
    rows = {r["kind"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["after_vowel"]["distribution"] == "blt-vowel-patcher" and rows["after_vowel"]["incremental"] is True


def test_example_builds_from_a_config_and_patches(vowel):
    reg = blt.make_registry()
    patcher = reg.build_patcher({"kind": "after_vowel", "vowels": "a"})
    assert patcher.patch(blt.tokens.encode("banana")).lengths.tolist() == [1, 2, 2, 2, 1]
    with pytest.raises(ConfigError, match=r"\$\.patcher\.vowels"):
        reg.build_patcher({"kind": "after_vowel", "vowels": ""})


def test_example_passes_the_contract_suite(vowel):
    check_patcher("after_vowel", registry=blt.make_registry(), max_examples=20)


def test_example_can_be_blocked(vowel, monkeypatch):
    assert "after_vowel" not in blt.make_registry(block=["vowel"]).patchers
    monkeypatch.setenv("BLT_BLOCK_PLUGINS", "vowel")
    assert "after_vowel" not in blt.make_registry().patchers


@pytest.mark.parametrize(("name", "modules", "target", "message"), [
    ("blt-broken-import", {"blt_broken_import.py": "import blt_missing_dependency\n"}, "blt_broken_import",
     r"plugin 'broken' from distribution 'blt-broken-import 0\.0\.1' failed to import: ModuleNotFoundError: "
     r".*blt_missing_dependency.*BLT_BLOCK_PLUGINS=broken"),
    ("blt-dup-space", {"blt_dup_space.py": DUPLICATE}, "blt_dup_space",
     r"duplicate patcher kind 'space': provided by (?=.*plugin 'blt\.plugins\.patchers\.space' from distribution "
     r"'blt-lab [^']+')(?=.*plugin 'broken' from distribution 'blt-dup-space 0\.0\.1')"),
    ("blt-raising-hook", {"blt_raising_hook.py": RAISING}, "blt_raising_hook",
     r"plugin 'broken' from distribution 'blt-raising-hook 0\.0\.1': hook blt_register_patchers raised "
     r"RuntimeError: hook exploded"),
])
def test_broken_plugin_names_its_distribution_and_blocking_it_restores_the_rest(vowel, monkeypatch, capsys,
                                                                                  name, modules, target, message):
    fake_distribution(vowel, name, "0.0.1", {"broken": target}, modules=modules)
    with pytest.raises(PluginError, match=message):
        blt.make_registry()
    from blt.cli.main import main

    assert main(["plugins"]) == 2  # the CLI: one line, no traceback
    err = capsys.readouterr().err
    assert "error:" in err and name in err and "Traceback" not in err
    reg = blt.make_registry(block=["broken"])
    assert {"after_vowel", "space", "bpe"} <= set(reg.patchers)
    monkeypatch.setenv("BLT_BLOCK_PLUGINS", "broken")
    assert "after_vowel" in blt.make_registry().patchers
