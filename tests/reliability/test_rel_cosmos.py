"""cosmos-rl TOML overrides that must be refused before a file is written or a GPU is asked for."""

from __future__ import annotations

import pytest

from recipe_utils.cosmos_rl import CosmosConfigError, write_config

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def cosmos_config():
    """cosmos-rl's Config class, imported once for the module (the import takes ~8 s)."""
    return pytest.importorskip("cosmos_rl.policy.config").Config


def test_unknown_key_is_refused_before_cosmos_is_imported(tmp_path):
    target = tmp_path / "sft.toml"
    with pytest.raises(CosmosConfigError) as info:
        write_config("sft", target, {"train.epochs": 3})
    message = str(info.value)
    assert message.startswith("override 'train.epochs': configs/cosmos_rl/sft.toml has no such key")
    assert "'epoch'" in message  # the known keys point at the typo
    assert not target.exists()


def test_unknown_table_is_refused(tmp_path):
    with pytest.raises(CosmosConfigError, match="has no table 'polcy'"):
        write_config("grpo", tmp_path / "grpo.toml", {"polcy.model_name_or_path": "/ckpt"})


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, overrides, field",
    [
        ("sft", {"train.train_batch_per_replica": "many"}, "train_batch_per_replica"),
        ("sft", {"policy.parallelism.tp_size": -5}, "tp_size must be greater than 0"),
    ],
    ids=["string_for_int", "negative_tp"],
)
def test_value_cosmos_rl_rejects_is_refused_and_nothing_written(
    cosmos_config, tmp_path, kind, overrides, field
):
    target = tmp_path / f"{kind}.toml"
    with pytest.raises(CosmosConfigError) as info:
        write_config(kind, target, overrides)
    message = str(info.value)
    assert message.startswith(
        f"configs/cosmos_rl/{kind}.toml: cosmos-rl rejects this configuration"
    )
    assert field in message
    assert not target.exists()
