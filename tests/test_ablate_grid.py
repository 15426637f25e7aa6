"""``blt ablate`` grids: sizes x budgets x an lr sweep on tiny runs (best lr per seed, frontier and
slope), bad ablation files as one-line errors, and the shipped ablation files resolving."""

from __future__ import annotations

import pytest
from _tiny import run_env, write_toml
from test_ablate import _ablate, _ablation_file, _base

from blt.ablation.spec import resolve_ablation

pytestmark = pytest.mark.slow


def test_grid_with_an_lr_sweep_picks_the_best_and_fits_the_frontier(tmp_path, monkeypatch, one_thread):
    from blt.ablation import run_ablation
    from blt.ablation.stats import frontier, loglog_slope

    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    grid = {"grid": {"train_flops": [3e8, 6e8], "lr": [3e-4, 3e-3],
                     "sizes": {"narrow": {"model": {"d_global": 32, "global_heads": 2}}, "wide": {"model": {"d_global": 64}}}}}
    variants = {"strided4": {"patcher": {"kind": "strided", "patch_size": 4}}}
    data = {"base": _base(), "budget": {"seeds": [0]}, "variants": variants, **grid}
    config = write_toml(tmp_path / "grid.toml", data)
    results = run_ablation(config, tmp_path / "out", jobs=1)
    (entry,) = results
    assert len(entry["cells"]) == 4
    for cell in entry["cells"]:
        (seed,) = cell["seeds"]
        tried = {t["lr"]: t["bpb"] for t in seed["tried"]}
        assert set(tried) == {3e-4, 3e-3}
        assert seed["lr"] == min(tried, key=tried.get) and seed["bpb"] == min(tried.values())
        assert (tmp_path / "out" / seed["dir"]).name == f"{cell['size']}-flops{cell['budget']:.3g}-lr{seed['lr']:g}"
    points = frontier([(c["budget"], c["train_flops"], c["bpb"], c["size"]) for c in entry["cells"]])
    assert [(p["train_flops"], p["bpb"], p["size"]) for p in entry["frontier"]["points"]] == points
    assert entry["frontier"]["slope"] == pytest.approx(loglog_slope([(f, b) for f, b, _ in points])["slope"])
    assert entry["budget"] == 6e8 and entry["bpb"] == min(c["bpb"] for c in entry["cells"] if c["budget"] == 6e8)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Compute-optimal frontier" in md and "narrow" in md and "wide" in md
    assert (tmp_path / "out" / "bpb_vs_flops.png").read_bytes()[:4] == b"\x89PNG"


def _one_line_error(argv, capsys):
    from blt.cli.main import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return " ".join(err.split())


def test_bad_ablation_files(tmp_path, registry, capsys, monkeypatch):
    from blt.core.errors import ConfigError

    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    bad = _ablation_file(tmp_path / "bad.toml", typo={"patcher": {"kind": "spaec"}})
    with pytest.raises(ConfigError, match="variant 'typo'.*did you mean 'space'"):
        resolve_ablation(bad)
    out = str(tmp_path / "o")
    cases = {
        "ref": ({"budget": {"train_flops": 1e9, "reference": "strided5"}}, "reference: no variant 'strided5'"),
        "dup": ({"budget": {"train_flops": 1e9, "seeds": [0, 0]}}, "a seed is repeated"),
        "both": ({"budget": {"train_flops": 1e9}, "grid": {"train_flops": [1e9]}}, "remove one of the two"),
        "suite": ({"budget": {"train_flops": 1e9}, "eval": {"suites": ["nosie"]}}, "eval.suites"),
        "field": ({"budget": {"train_flops": 1e9, "seed": [0]}}, "$.budget"),
        "size": ({"budget": {"train_flops": 1e9}, "grid": {"sizes": {"s": {"model": {"d_glob": 3}}}}}, "size 's'"),
    }
    for name, (extra, message) in cases.items():
        data = {"base": _base(), "variants": {"a": {}}, **extra}
        path = write_toml(tmp_path / f"{name}.toml", data)
        assert message in _one_line_error(["ablate", str(path), "--out", out], capsys), name
    good = _ablation_file(tmp_path / "good.toml")
    assert "--seeds" in _one_line_error(["ablate", str(good), "--out", out, "--seeds", "0,x"], capsys)
    assert "--jobs" in _one_line_error(["ablate", str(good), "--out", out, "--jobs", "0"], capsys)
    assert not (tmp_path / "o").exists()  # every error came before anything was written
    tiny_budget = _ablation_file(tmp_path / "small.toml", budget=10.0, seeds=None)
    proc = _ablate(tiny_budget, tmp_path / "o2", run_env(tmp_path / "cache"))
    assert proc.returncode != 0 and "less than one training step" in " ".join(proc.stderr.split())


def test_default_ablation_resolves(registry):
    from blt.ablation import default_ablation_path

    ab = resolve_ablation(default_ablation_path())
    assert ab.variants == ["strided4", "space", "entropy", "cnn_entropy", "bpe", "byte_transformer", "bpe_transformer"]
    assert len(ab.runs) == len(ab.variants) * len(ab.seeds) and ab.reference == "strided4"
    for run in ab.runs:
        assert run.config.train.seed == run.seed and run.config.data.seed == run.seed


@pytest.mark.parametrize("name,runs", [("scaling", 18), ("scaling_gpu", 27)])
def test_scaling_ablations_resolve(registry, name, runs):
    from blt.ablation import default_ablation_path

    ab = resolve_ablation(default_ablation_path().with_name(f"{name}.toml"))
    assert len(ab.runs) == runs and len(ab.sizes) == 3 and len(ab.budgets) == 3
    widths = {run.size: run.config.model.d_global for run in ab.runs}
    assert sorted(widths.values()) == sorted(set(widths.values())) and len(widths) == 3
