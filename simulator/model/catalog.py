"""The model catalog: bundled specs by name, a user's YAML spec, or a Hugging Face ``config.json``.

``load_model`` accepts a catalog name (``llama-3.1-70b``), a path to a ``.yaml``/``.yml`` spec, a path
to a Hugging Face ``config.json`` or a folder holding one. Nothing is downloaded. Files come from
users, so they are parsed with ``yaml.safe_load`` / ``json.loads``, bounded in size, and every
problem is reported with the file and the key.

Hugging Face keys used (``transformers`` ``PretrainedConfig`` names):

=========================  ==============================================================
HF key                     ModelSpec field
=========================  ==============================================================
num_hidden_layers          num_layers (required)
hidden_size                hidden_size (required)
num_attention_heads        num_attention_heads (required)
num_key_value_heads        num_kv_heads (default: num_attention_heads, i.e. no GQA)
head_dim                   head_dim (default: hidden_size / num_attention_heads)
intermediate_size          intermediate_size (required)
vocab_size                 vocab_size (required)
max_position_embeddings    max_position_embeddings (required)
tie_word_embeddings        tie_word_embeddings (default: false, as Llama/Qwen/Mistral)
attention_bias             attention_bias (default: true for model_type qwen2, else false)
hidden_act, model_type     mlp_gated (see ``_is_gated_mlp``); model_type qwen3 -> qk_norm
=========================  ==============================================================

Mixture-of-Experts and multi-head latent attention (MLA) configs are refused in this version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.datafiles import read_text_bounded, read_yaml_mapping, validate_file_data
from simulator.errors import ConfigError, DataFileError, UnknownNameError, describe_validation_error
from simulator.model.spec import ModelSpec
from simulator.resources import model_catalog_dir

# A model config or spec is a few kB; refuse anything far larger before reading it.

_MOE = "Mixture-of-Experts (MoE)"
_MLA = "multi-head latent attention (MLA)"
# Keys whose presence marks an architecture this version cannot cost.
_UNSUPPORTED_KEYS = (
    ("num_local_experts", _MOE),
    ("num_experts", _MOE),
    ("n_routed_experts", _MOE),
    ("kv_lora_rank", _MLA),
)
_REQUIRED_KEYS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)
# Families whose MLP is up -> activation -> down (two matrices), and gated ones (SwiGLU or GeGLU).
_PLAIN_MLP_MODEL_TYPES = frozenset(
    {"gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "starcoder2", "mpt"}
)
_GATED_MLP_MODEL_TYPES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "granite"}
)
_GATED_ACTIVATIONS = frozenset({"silu", "swish", "swiglu"})
_QK_NORM_MODEL_TYPES = frozenset({"qwen3"})


def list_models() -> list[str]:
    """Names of the bundled model specs (``simulator/model/specs/*.yaml``)."""
    return sorted(p.stem for p in model_catalog_dir().glob("*.yaml"))


def load_model(name_or_path: str | Path) -> ModelSpec:
    """A model spec from a catalog name, a YAML spec path, a HF ``config.json`` path or its folder.

    A string equal to a catalog name means the catalog entry (even if a folder of that name exists).

    Raises UnknownNameError (listing the catalog) for an unknown name, ConfigError for a missing file
    or an unsupported (MoE/MLA) architecture, DataFileError for a malformed file.
    """
    known = list_models()
    if isinstance(name_or_path, str) and name_or_path in known:
        return _load_spec_file(model_catalog_dir() / f"{name_or_path}.yaml")
    path = Path(name_or_path)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise ConfigError("model", str(name_or_path), "this folder has no config.json")
        return _load_hf_config_file(config_path)
    if path.suffix in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise ConfigError("model", str(name_or_path), "no such file; give a catalog name or a file path")
        if path.suffix == ".json":
            return _load_hf_config_file(path)
        return _load_spec_file(path)
    raise UnknownNameError("model", str(name_or_path), known)


def model_from_hf_config(
    config: Mapping[str, Any], name: str, *, path: str | Path | None = None
) -> ModelSpec:
    """Map a Hugging Face ``config.json`` (already parsed) to a ModelSpec named ``name``.

    ``path`` only names the file in error messages. A multimodal wrapper whose language model sits
    under ``text_config`` is read from there.
    """
    where: str | Path = path if path is not None else f"Hugging Face config of {name!r}"
    _refuse_unsupported(config, where)
    text_config = config.get("text_config")
    if "num_hidden_layers" not in config and isinstance(text_config, Mapping):
        config = text_config
    values = {key: _required_int(config, key, where) for key in _REQUIRED_KEYS}
    num_heads = values["num_attention_heads"]
    head_dim = _optional_int(config, "head_dim", where)
    if head_dim is None:
        if values["hidden_size"] % num_heads:
            raise DataFileError(
                where,
                f"head_dim is missing and hidden_size={values['hidden_size']} is not a multiple of "
                f"num_attention_heads={num_heads}; add head_dim",
            )
        head_dim = values["hidden_size"] // num_heads
    num_kv_heads = _optional_int(config, "num_key_value_heads", where)
    if num_kv_heads is None:
        num_kv_heads = num_heads
    if num_heads % num_kv_heads:
        raise DataFileError(
            where,
            f"num_attention_heads={num_heads} must be a multiple of num_key_value_heads={num_kv_heads} "
            "(grouped-query attention)",
        )
    model_type = str(config.get("model_type", ""))
    fields: dict[str, Any] = {
        "name": name,
        "display_name": name,
        "hf_id": str(config.get("_name_or_path") or ""),
        "num_layers": values["num_hidden_layers"],
        "hidden_size": values["hidden_size"],
        "num_attention_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "head_dim": head_dim,
        "intermediate_size": values["intermediate_size"],
        "vocab_size": values["vocab_size"],
        "max_position_embeddings": values["max_position_embeddings"],
        "mlp_gated": _is_gated_mlp(model_type, config.get("hidden_act")),
        "tie_word_embeddings": _optional_bool(config, "tie_word_embeddings", False, where),
        "attention_bias": _optional_bool(config, "attention_bias", model_type == "qwen2", where),
        "qk_norm": model_type in _QK_NORM_MODEL_TYPES,
        "source": f"Hugging Face config.json {path}" if path is not None else "Hugging Face config",
    }
    try:
        return ModelSpec.model_validate(fields)
    except ValidationError as exc:
        raise DataFileError(where, describe_validation_error(exc)) from None


def _refuse_unsupported(config: Mapping[str, Any], where: str | Path) -> None:
    """ConfigError naming the first MoE or MLA key found (also under ``text_config``)."""
    scopes: list[tuple[str, Mapping[str, Any]]] = [("", config)]
    text_config = config.get("text_config")
    if isinstance(text_config, Mapping):
        scopes.append(("text_config.", text_config))
    for prefix, scope in scopes:
        for key, what in _UNSUPPORTED_KEYS:
            value = scope.get(key)
            if value is not None and value != 0:
                raise ConfigError(
                    f"{where}: {prefix}{key}",
                    value,
                    f"{what} configs are not supported by this version of trilemma (a later release "
                    "adds them); only dense decoder-only models can be loaded",
                )


def _is_gated_mlp(model_type: str, hidden_act: object) -> bool:
    """Gated (gate, up, down: SwiGLU/GeGLU) or plain (up, down) MLP.

    Known families decide by ``model_type``; otherwise a SiLU/Swish activation (or none given, the
    Llama default) means gated, anything else plain.
    """
    if model_type in _PLAIN_MLP_MODEL_TYPES:
        return False
    if model_type in _GATED_MLP_MODEL_TYPES:
        return True
    return hidden_act is None or str(hidden_act) in _GATED_ACTIVATIONS


def _required_int(config: Mapping[str, Any], key: str, where: str | Path) -> int:
    value = _optional_int(config, key, where)
    if value is None:
        raise DataFileError(where, f"required key {key!r} is missing (every dense HF config.json has it)")
    return value


def _optional_int(config: Mapping[str, Any], key: str, where: str | Path) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataFileError(where, f"{key} = {value!r} must be a positive integer")
    return value


def _optional_bool(config: Mapping[str, Any], key: str, default: bool, where: str | Path) -> bool:
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise DataFileError(where, f"{key} = {value!r} must be true or false")
    return value


def _load_hf_config_file(path: Path) -> ModelSpec:
    try:
        data = json.loads(read_text_bounded(path))
    except json.JSONDecodeError as exc:
        raise DataFileError(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataFileError(path, "a Hugging Face config.json must be a JSON object")
    return model_from_hf_config(data, _name_from_config_path(path), path=path)


def _name_from_config_path(path: Path) -> str:
    """``org--model_config.json`` -> ``org--model``; ``<folder>/config.json`` -> the folder's name.

    In a Hugging Face cache (``models--org--model/snapshots/<hash>/config.json``) the repository's
    folder names the model.
    """
    if path.name != "config.json":
        return path.stem.removesuffix("_config").removesuffix("-config") or path.stem
    resolved = path.resolve()
    for parent in resolved.parents:
        if parent.name.startswith("models--"):
            return parent.name.removeprefix("models--")
    return resolved.parent.name or "model"


def _load_spec_file(path: Path) -> ModelSpec:
    return validate_file_data(ModelSpec, read_yaml_mapping(path, "a model spec"), path)
