"""The model catalog and the Hugging Face config loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.errors import ConfigError, DataFileError, UnknownNameError
from simulator.model import ModelSpec, list_models, load_model, model_from_hf_config
from simulator.resources import model_catalog_dir

CONFIGS = Path(__file__).parent / "data" / "model_configs"

CATALOG = ["llama-2-70b", "llama-3.1-405b", "llama-3.1-70b", "llama-3.1-8b", "qwen3-32b", "qwen3-8b"]

# Published parameter counts (model cards; tests/data/model_configs/README.md).
PUBLISHED = {
    "llama-3.1-8b": 8.03e9,
    "llama-3.1-70b": 70.6e9,
    "llama-3.1-405b": 405.9e9,
    "llama-2-70b": 69.0e9,
    "qwen3-32b": 32.8e9,
    "qwen3-8b": 8.2e9,
}

# Catalog entry -> the HF config it was written from.
HF_SOURCES = {
    "llama-3.1-8b": "meta-llama--Meta-Llama-3.1-8B_config.json",
    "llama-3.1-70b": "meta-llama--Meta-Llama-3.1-70B_config.json",
    "llama-3.1-405b": "meta-llama--Meta-Llama-3.1-405B_config.json",
    "qwen3-8b": "Qwen--Qwen3-8B_config.json",
    "qwen3-32b": "Qwen--Qwen3-32B_config.json",
}

ARCHITECTURE_FIELDS = (
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "mlp_gated",
    "tie_word_embeddings",
    "attention_bias",
    "qk_norm",
)


def _hf(file_name: str) -> dict[str, Any]:
    data = json.loads((CONFIGS / file_name).read_text())
    assert isinstance(data, dict)
    return data


def test_catalog_lists_the_dense_models() -> None:
    assert [m for m in list_models() if not load_model(m).is_moe] == CATALOG


@pytest.mark.parametrize("name", CATALOG)
def test_catalog_entry_loads_with_its_own_name_and_sources(name: str) -> None:
    spec = load_model(name)
    assert spec.name == name
    assert spec.hf_id and spec.source and spec.display_name
    assert spec.published_params == PUBLISHED[name]


@pytest.mark.parametrize("name", CATALOG)
def test_parameter_count_within_one_percent_of_published(name: str) -> None:
    assert load_model(name).num_params == pytest.approx(PUBLISHED[name], rel=0.01)


def test_llama_3_1_8b_parameter_count_by_hand() -> None:
    """32 x (attn 4096*(4096+2*1024+4096) + MLP 3*4096*14336 + norms 2*4096) + 2*128256*4096 + 4096."""
    per_layer = 4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096
    assert load_model("llama-3.1-8b").num_params == 32 * per_layer + 2 * 128256 * 4096 + 4096 == 8_030_261_248


@pytest.mark.parametrize("name", sorted(HF_SOURCES))
def test_catalog_yaml_agrees_with_its_hf_config(name: str) -> None:
    catalog = load_model(name)
    from_hf = model_from_hf_config(_hf(HF_SOURCES[name]), name)
    for field in ARCHITECTURE_FIELDS:
        assert getattr(catalog, field) == getattr(from_hf, field), field
    assert catalog.num_params == from_hf.num_params


def test_qwen3_has_qk_norm_and_llama_has_not() -> None:
    assert model_from_hf_config(_hf("Qwen--Qwen3-8B_config.json"), "q").qk_norm
    assert not model_from_hf_config(_hf("meta-llama--Meta-Llama-3.1-8B_config.json"), "l").qk_norm


def test_hf_defaults_for_kv_heads_head_dim_and_flags() -> None:
    config = _hf("meta-llama--Meta-Llama-3.1-8B_config.json")
    for key in ("num_key_value_heads", "tie_word_embeddings", "attention_bias", "hidden_act", "model_type"):
        del config[key]
    spec = model_from_hf_config(config, "plain")
    assert spec.num_kv_heads == 32  # no GQA
    assert spec.head_dim == 128  # 4096 / 32
    assert spec.mlp_gated
    assert not spec.tie_word_embeddings
    assert not spec.attention_bias
    assert spec.name == "plain"


def test_hf_flags_mapped() -> None:
    config = _hf("meta-llama--Meta-Llama-3.1-8B_config.json")
    config.update(tie_word_embeddings=True, attention_bias=True, head_dim=64)
    spec = model_from_hf_config(config, "x")
    assert spec.tie_word_embeddings and spec.attention_bias and spec.head_dim == 64
    assert spec.lm_head_params == 0
    config.update(model_type="gpt_neox")
    assert not model_from_hf_config(config, "x").mlp_gated
    config.update(model_type="unknown-family", hidden_act="gelu")
    assert not model_from_hf_config(config, "x").mlp_gated


def test_qwen2_has_qkv_bias_by_default() -> None:
    config = _hf("Qwen--Qwen3-8B_config.json")
    del config["attention_bias"]
    config["model_type"] = "qwen2"
    assert model_from_hf_config(config, "q2").attention_bias


def test_load_hf_config_by_file_and_by_folder(tmp_path: Path) -> None:
    by_file = load_model(CONFIGS / "Qwen--Qwen3-32B_config.json")
    assert by_file.name == "Qwen--Qwen3-32B"
    folder = tmp_path / "Qwen3-32B"
    folder.mkdir()
    shutil.copy(CONFIGS / "Qwen--Qwen3-32B_config.json", folder / "config.json")
    by_folder = load_model(folder)
    assert by_folder.name == "Qwen3-32B"
    for field in ARCHITECTURE_FIELDS:
        assert getattr(by_folder, field) == getattr(by_file, field), field
    assert by_folder == load_model(str(folder / "config.json"))
    assert by_folder.num_params == load_model("qwen3-32b").num_params


def test_catalog_name_beats_a_folder_of_that_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qwen3-8b").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_model("qwen3-8b").num_layers == 36
    with pytest.raises(ConfigError, match=r"no config\.json"):
        load_model(Path("qwen3-8b"))


def test_hf_cache_layout_names_the_repository(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--Qwen--Qwen3-8B" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    shutil.copy(CONFIGS / "Qwen--Qwen3-8B_config.json", snapshot / "config.json")
    assert load_model(snapshot).name == "Qwen--Qwen3-8B"


def test_load_yaml_spec_by_path(tmp_path: Path) -> None:
    data = yaml.safe_load((model_catalog_dir() / "llama-3.1-8b.yaml").read_text())
    data.update(name="my-llama", num_layers=16)
    path = tmp_path / "my-llama.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_model(path)
    assert isinstance(spec, ModelSpec)
    assert (spec.name, spec.num_layers) == ("my-llama", 16)


def test_moe_config_is_refused_naming_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"num_local_experts = 8.*Mixture-of-Experts \(MoE\).*not supported"
    ):
        load_model(CONFIGS / "mistralai--Mixtral-8x7B-v0.1_config.json")
    with pytest.raises(ConfigError, match=r"Mixtral-8x7B-v0\.1_config\.json: num_local_experts"):
        load_model(CONFIGS / "mistralai--Mixtral-8x7B-v0.1_config.json")


@pytest.mark.parametrize(
    ("key", "what"),
    [("num_experts", "MoE"), ("n_routed_experts", "MoE"), ("kv_lora_rank", "MLA")],
)
def test_other_moe_and_mla_keys_are_refused(key: str, what: str) -> None:
    config = _hf("Qwen--Qwen3-8B_config.json")
    config[key] = 128
    with pytest.raises(ConfigError, match=rf"{key} = 128 .*\({what}\) configs are not supported"):
        model_from_hf_config(config, "x")


def test_moe_under_text_config_is_refused() -> None:
    config = {
        "model_type": "llama4",
        "text_config": {**_hf("Qwen--Qwen3-8B_config.json"), "num_local_experts": 16},
    }
    with pytest.raises(ConfigError, match=r"text_config\.num_local_experts = 16"):
        model_from_hf_config(config, "scout")


def test_dense_text_config_is_read() -> None:
    config = {"model_type": "wrapper", "text_config": _hf("Qwen--Qwen3-8B_config.json")}
    assert model_from_hf_config(config, "x").num_layers == 36


def test_a_zero_expert_count_is_dense() -> None:
    config = _hf("Qwen--Qwen3-8B_config.json")
    config["num_experts"] = 0
    assert model_from_hf_config(config, "x").num_layers == 36


def test_missing_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = _hf("meta-llama--Meta-Llama-3.1-8B_config.json")
    del config["intermediate_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(DataFileError, match="'intermediate_size' is missing") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_wrong_types_and_values_are_named(tmp_path: Path) -> None:
    config = _hf("meta-llama--Meta-Llama-3.1-8B_config.json")
    with pytest.raises(DataFileError, match=r"hidden_size = '4096' must be a positive integer"):
        model_from_hf_config({**config, "hidden_size": "4096"}, "x")
    with pytest.raises(DataFileError, match=r"tie_word_embeddings = 'no' must be true or false"):
        model_from_hf_config({**config, "tie_word_embeddings": "no"}, "x")
    with pytest.raises(DataFileError, match=r"num_hidden_layers = 0 must be a positive integer"):
        model_from_hf_config({**config, "num_hidden_layers": 0}, "x")
    with pytest.raises(DataFileError, match=r"num_key_value_heads = 0 must be a positive integer"):
        model_from_hf_config({**config, "num_key_value_heads": 0}, "x")
    with pytest.raises(DataFileError, match=r"max_position_embeddings = 2\.5 must be a positive integer"):
        model_from_hf_config({**config, "max_position_embeddings": 2.5}, "x")
    with pytest.raises(DataFileError, match=r"=32 must be a multiple of num_key_value_heads=5"):
        model_from_hf_config({**config, "num_key_value_heads": 5}, "x")
    with pytest.raises(DataFileError, match=r"head_dim is missing"):
        model_from_hf_config({**config, "num_attention_heads": 3, "num_key_value_heads": 3}, "x")


def test_bad_json_is_a_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 4096,')
    with pytest.raises(DataFileError, match="not valid JSON") as info:
        load_model(tmp_path)
    assert str(path) in str(info.value)
    path.write_text("[1, 2]")
    with pytest.raises(DataFileError, match="must be a JSON object"):
        load_model(path)


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge_config.json"
    path.write_text('{"pad": "' + "x" * (5 * 2**20) + '"}')
    with pytest.raises(DataFileError, match="must be under"):
        load_model(path)


def test_bad_yaml_spec_errors(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(DataFileError, match="not valid YAML"):
        load_model(path)
    path.write_text("name: x\nnum_layers: 2\n")
    with pytest.raises(DataFileError, match="hidden_size"):
        load_model(path)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(
        UnknownNameError, match=r"model = 'llama-9' .*known names are deepseek-v3, .*llama-2-70b, "
    ) as info:
        load_model("llama-9")
    assert info.value.known == list_models() and set(CATALOG) < set(info.value.known)


def test_missing_file_and_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_model(tmp_path / "absent.json")
    with pytest.raises(ConfigError, match=r"no config\.json"):
        load_model(tmp_path)
