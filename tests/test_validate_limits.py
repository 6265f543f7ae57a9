"""Values too large to run are refused from the config's numbers, before anything is built."""

from __future__ import annotations

import time

import pytest
import torch

from tests.helpers import run_vgx
from vgx.data import load_dataset
from vgx.errors import ConfigError
from vgx.footprint import footprint, free_memory
from vgx.models import build_model, fit_data
from vgx.validate import check_config, check_overrides, known_keys

FLOAT_KEYS = [key for key, kind in known_keys().items() if str(kind) in ("float", "float | None")]


@pytest.mark.parametrize("value", ["inf", "-inf"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_infinity_is_refused_like_nan_for_every_float_key(key, value):
    with pytest.raises(ConfigError, match=f"{key}={value} is not a finite number"):
        check_overrides([f"{key}={value}"])


@pytest.mark.parametrize("key", ["depth", "width", "seq_len", "steps", "data.n_train"])
def test_an_absurd_integer_is_refused_at_once(key):
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=f"{key}=99999999999999999999999 is out of range"):
        check_overrides([f"{key}=99999999999999999999999"])
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "overrides",
    [
        ("depth=50000", "width=1024"),
        ("width=1000000000",),
        ("model=lstm", "act=tanh", "data=copy", "seq_len=100000000"),
    ],
)
def test_a_run_larger_than_free_memory_is_refused_with_the_numbers_without_building(
    make_cfg, overrides
):
    cfg = make_cfg(*overrides)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    assert time.perf_counter() - started < 1  # building a million blocks took 60 s
    message = str(caught.value)
    assert "\n" not in message
    assert "parameters" in message and "is free (MemAvailable)" in message


def test_the_same_run_passes_when_the_memory_is_there(make_cfg, monkeypatch):
    cfg = make_cfg("width=4096", "depth=8")
    needed = footprint(cfg).total_bytes
    monkeypatch.setattr("vgx.validate.free_memory", lambda device: (needed, "test"))
    check_config(cfg)
    monkeypatch.setattr("vgx.validate.free_memory", lambda device: (needed - 1, "test"))
    with pytest.raises(ConfigError, match="is free"):
        check_config(cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        ("depth=3", "width=16"),
        ("depth=3", "width=16", "norm=batch", "skip=residual"),
        ("data=synthetic", "data.n_features=49", "data.n_classes=3", "norm=layer"),
        ("model=cnn", "depth=3", "width=8", "model.kernel_size=5", "norm=batch"),
        ("model=cnn", "depth=2", "width=8", "norm=layer"),
        ("model=cnn", "depth=2", "width=4", "norm=batch", "skip=residual", "model.stages=2"),
        ("model=cnn", "depth=1", "width=4", "norm=layer", "skip=preact"),
        ("depth=3", "width=16", "norm=layer", "skip=preact"),
        ("model=rnn", "act=tanh", "depth=2", "width=8", "data=adding", "seq_len=7"),
        ("model=lstm", "act=tanh", "depth=3", "width=8", "data=copy", "norm=layer"),
        ("model=gru", "act=tanh", "depth=2", "width=8"),
        ("model=transformer", "act=gelu", "depth=2", "width=16", "data=copy"),
        ("model=transformer", "depth=3", "width=8", "heads=2", "norm_position=post"),
    ],
)
def test_the_parameter_count_is_the_built_models(make_cfg, overrides):
    cfg = make_cfg(*overrides)
    data = fit_data(cfg.model.name, load_dataset(cfg.data, cfg.seq_len))
    with torch.device("meta"):
        model = build_model(cfg, data.n_features, data.n_outputs, data.image_shape)
    assert footprint(cfg).parameters == sum(p.numel() for p in model.parameters())


def test_the_free_memory_of_a_gpu_is_what_cuda_reports(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (3 * 2**30, 16 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Test GPU")
    assert free_memory(torch.device("cuda", 0)) == (3 * 2**30, "free on Test GPU")


def test_a_depth_of_a_million_is_out_of_range_before_a_block_is_built():
    with pytest.raises(ConfigError, match="depth=1000000 is out of range; valid: ≤ 100000"):
        check_overrides(["depth=1000000"])


def test_vgx_run_of_a_huge_model_fails_in_one_line_and_writes_nothing(tmp_path):
    result = run_vgx("run", "depth=50000", "width=1024", "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("vgx: error: run too large")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()
