"""Models as data: the ModelSpec schema, the bundled catalog, and the Hugging Face config loader."""

from __future__ import annotations

from simulator.model.catalog import list_models, load_model, model_from_hf_config
from simulator.model.spec import ModelSpec

__all__ = ["ModelSpec", "list_models", "load_model", "model_from_hf_config"]
