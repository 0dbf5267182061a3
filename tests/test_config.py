import pytest

from tf_sparse_gen import config as config_lib
from tf_sparse_gen.config import Config, ConfigError, get_config


@pytest.mark.parametrize("preset", config_lib.PRESETS)
def test_andor_presets_validate_and_round_trip(preset):
    c = get_config("andor", preset)
    again = Config.from_json(c.to_json())
    assert again == c
    assert config_lib.diff(c, again) == {}


def test_paper_preset_is_table_1():
    a = get_config("andor", "paper").andor
    assert (a.z_dim, a.fc_channels, a.fc_k) == (100, 3200, 8)
    assert a.block_widths == (512, 256, 128, 64) and a.block_ks == (16, 64, 256, 0)
    assert get_config("andor", "paper").data.image_size == 64


def test_overrides_coerce_types_and_diff_reports_them():
    c = get_config("andor", "tiny", {"andor.block_widths": [4, 4], "train.batch_size": "6",
                                     "andor.sparsity": "off"})
    assert c.andor.block_widths == (4, 4) and c.train.batch_size == 6 and c.andor.sparsity is False
    d = config_lib.diff(get_config("andor", "tiny"), c)
    assert set(d) == {"andor.block_widths", "train.batch_size", "andor.sparsity"}


@pytest.mark.parametrize("overrides,message", [
    ({"train.mixed_precision": "fp8"}, "train.mixed_precision"),
    ({"data.image_size": 32}, "image_size"),
    ({"andor.block_ks": [100, 0]}, "block_ks"),
    ({"andor.block_ks": [0.5]}, "one k per block"),
    ({"andor.fc_k": 1.5}, "fc_k"),
    ({"andor.upsample": "cubic"}, "andor.upsample"),
    ({"train.batch_size": 0}, "batch_size"),
    ({"andor.sigma": float("nan")}, "finite"),
    ({"nope.field": 1}, "unknown field"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        get_config("andor", "tiny", overrides)


def test_unknown_json_field_is_refused():
    d = get_config("andor", "tiny").to_dict()
    d["train"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        Config.from_dict(d)
