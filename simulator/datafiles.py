"""Reading the small YAML/JSON files users hand us (scenarios, profiles, model specs), safely (L0).

Untrusted input: sizes are bounded before reading, YAML goes through ``safe_load``, and every failure
is a DataFileError that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.errors import DataFileError, describe_validation_error
from simulator.units import MiB

MAX_CONFIG_FILE_BYTES = 4 * MiB

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_text_bounded(path: Path, max_bytes: int = MAX_CONFIG_FILE_BYTES) -> str:
    """The file's UTF-8 text, refusing files larger than ``max_bytes``."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DataFileError(path, f"file is {size} bytes; a configuration file must be under {max_bytes}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"not UTF-8 text: {exc}") from None


SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader, in C (libyaml) where the wheel has it: the same documents, parsed ~10x faster
(a sweep point reads its hardware profile and model spec; in Python that was most of a short point)."""

SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""And its safe dumper: the same text (a sweep hashes each point's scenario YAML: 3.8 -> 0.8 ms)."""


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is an empty mapping)."""
    try:
        data = yaml.load(read_text_bounded(path), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise DataFileError(path, f"not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataFileError(path, f"{what} must be a YAML mapping of keys to values")
    return data


def validate_file_data(model: type[ModelT], data: Any, path: Path) -> ModelT:
    """``model.model_validate(data)``, a failure reported against the file it came from."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DataFileError(path, describe_validation_error(exc)) from None
