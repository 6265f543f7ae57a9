"""Bad input is named in one line with the valid choices, before anything runs."""

from __future__ import annotations

import pytest

from vgx.errors import ConfigError
from vgx.models import ACTIVATIONS, MODELS
from vgx.validate import check_config, check_overrides, choices


def error_of(*overrides: str) -> str:
    with pytest.raises(ConfigError) as caught:
        check_overrides(list(overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unknown_activation_names_the_value_and_every_valid_choice():
    message = error_of("act=sigmod")
    assert "act=sigmod" in message and all(name in message for name in ACTIVATIONS)


def test_unknown_value_inside_a_sweep_list_is_found():
    assert "act=sigmod" in error_of("act=relu,sigmod")


def test_unknown_value_inside_choice_sweep_is_found():
    assert "model=resnet" in error_of("model=choice(mlp,resnet)")


def test_unknown_key_is_named_with_the_valid_keys():
    message = error_of("dept=3")
    assert "'dept'" in message and "depth" in message


@pytest.mark.parametrize("key", ["depth", "width", "steps", "batch_size", "seq_len"])
def test_non_positive_sizes_are_out_of_range(key):
    assert f"{key}=0 is out of range" in error_of(f"{key}=0")


def test_non_positive_learning_rate_is_out_of_range():
    assert "lr=0 is out of range; valid: > 0" in error_of("lr=0")


def test_range_sweep_is_expanded_and_every_value_checked():
    assert "depth=0" in error_of("depth=range(0,3)")


def test_text_where_a_number_belongs_is_rejected():
    assert "depth=ten is not an integer" in error_of("depth=ten")


def test_broken_sweep_syntax_is_one_line():
    assert "cannot parse overrides" in error_of("depth=[1")


def test_valid_sweeps_and_hydra_overrides_pass():
    check_overrides(["depth=10,20,50", "act=sigmoid,relu", "lr=1e-3", "hydra/launcher=joblib"])


def test_glob_over_models_expands_to_registered_names():
    check_overrides(["model=glob(*)"])


def test_choices_cover_every_registry_and_the_config_group_files():
    from importlib import resources

    groups = resources.files("vgx.configs")
    for group in ("model", "data"):
        files = sorted(p.name[:-5] for p in (groups / group).iterdir() if p.name.endswith(".yaml"))
        assert files == sorted(choices()[group])
    assert list(choices()["model"]) == list(MODELS)


def test_composed_default_config_is_valid(make_cfg):
    check_config(make_cfg())


def test_registry_membership_of_an_unknown_or_missing_name_is_false():
    assert "sigmod" not in ACTIVATIONS and None not in ACTIVATIONS
    assert ACTIVATIONS.get("sigmod") is None
