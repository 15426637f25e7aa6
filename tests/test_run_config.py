"""``[run]``: the run environment lives in its own table, and a run's fingerprint is everything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tiny import tiny

from blt.core.errors import ConfigError
from blt.experiment import load_experiment
from blt.train.config import MOVED_TO_RUN
from blt.train.setup import config_fingerprint


def test_run_table_decodes(registry):
    config, _ = load_experiment(tiny(run={"out_dir": "x", "device": "cpu", "parallel": "none", "log_every": 3}), registry)
    assert (config.run.out_dir, config.run.device, config.run.parallel, config.run.log_every) == ("x", "cpu", "none", 3)
    assert not config.run.progress
    with pytest.raises(ConfigError, match=r"\$\.run"):
        load_experiment(tiny(run={"parallel": "mpi"}), registry)


@pytest.mark.parametrize("field", MOVED_TO_RUN)
def test_run_fields_under_train_are_refused_with_the_new_place(registry, field):
    data = tiny()
    data["train"][field] = data["run"].get(field, "cpu")
    with pytest.raises(ConfigError, match=rf"\$\.train\.{field}.*\[run\].*run\.{field}"):
        load_experiment(data, registry)


def test_fingerprint_is_everything_but_run(registry):
    base, _ = load_experiment(tiny(), registry)
    moved, _ = load_experiment(tiny(run={"out_dir": "elsewhere", "device": "cpu", "parallel": "ddp", "progress": True,
                                         "log_every": 7}, data={"cache_dir": "/tmp/other-cache"}), registry)
    assert config_fingerprint(moved) == config_fingerprint(base)
    other, _ = load_experiment(tiny(train={"lr": 1e-4}), registry)
    assert config_fingerprint(other) != config_fingerprint(base)


def test_shipped_configs_use_run(registry):
    from blt.cli.train import load_with_overrides

    path = Path(__file__).resolve().parents[1] / "blt" / "configs" / "experiments" / "tiny.toml"
    config, _ = load_with_overrides(str(path), ["run.device=cpu"])
    assert config.run.out_dir == "runs/tiny" and config.run.device == "cpu"


def test_configs_recorded_before_run_existed_still_load(tmp_path, registry):
    import json

    import msgspec

    from blt.train.weights import _read_config

    config, _ = load_experiment(tiny(run={"out_dir": "old-run", "log_every": 5}), registry)
    data = msgspec.to_builtins(config)
    data["train"].update(data.pop("run"))  # how a run directory's config.json looked before [run]
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded, _ = _read_config(tmp_path / "config.json")
    assert loaded.run.out_dir == "old-run" and loaded.run.log_every == 5
    assert config_fingerprint(loaded) == config_fingerprint(config)
