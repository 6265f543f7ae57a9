"""Shared fixtures: configs composed by Hydra exactly as the command line composes them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import vgx.cli  # noqa: F401  (registers the schema and the run-directory resolver)


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """make_cfg("depth=3", "act=tanh") -> the composed run config."""

    def compose_cfg(*overrides: str) -> DictConfig:
        with initialize_config_module("vgx.configs", version_base="1.3"):
            return compose("config", overrides=["progress=false", *overrides])

    return compose_cfg
