"""The sweep spec: a base scenario plus axes (grid, zip, random, seeds), and its expansion into points.

A spec is YAML or a mapping; axes are keyed by dotted scenario keys (``layout.tp``). The points are the
cartesian product of the grid, the zip rows (paired lists), the random samples and the seeds, in that
order, so the same spec always expands to the same points. A point whose scenario does not validate is
kept, marked invalid with its reason; only a malformed spec (an unknown key, zip lists of unequal
lengths) is an error.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.config import Scenario, _resolve_paths
from simulator.datafiles import read_yaml_mapping
from simulator.errors import ConfigError, SimulatorError, describe_validation_error

_FROZEN = ConfigDict(frozen=True, extra="forbid")
MAX_NUM_POINTS = 1_000_000
SEED_KEY = "seed"


class RangeAxis(BaseModel):
    """A random axis drawn uniformly from [low, high] (log-uniformly with ``log: true``).

    Integers when both bounds are integers (rounded after a log-uniform draw).
    """

    model_config = _FROZEN
    low: int | float
    high: int | float
    log: bool = False


class RandomAxes(BaseModel):
    """``samples`` points with every axis drawn independently from one seeded generator."""

    model_config = _FROZEN
    samples: int = Field(ge=1, le=MAX_NUM_POINTS)
    seed: int = Field(0, ge=0)
    axes: dict[str, RangeAxis | list[Any]]


class SweepSpec(BaseModel):
    """A base scenario (a mapping, or a scenario YAML path) and the axes to vary over it."""

    model_config = _FROZEN
    base: dict[str, Any] | str = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    random: RandomAxes | None = None
    seeds: list[int] | None = None
    num_seeds: int | None = Field(None, ge=1, le=100_000)


class SweepPoint(BaseModel):
    """One scenario of a sweep: its axis values, and the scenario or the reason it is invalid."""

    model_config = _FROZEN
    index: int
    point_id: str
    values: dict[str, Any]
    scenario: Scenario | None
    error: str | None = None


def load_spec(source: SweepSpec | Mapping[str, Any] | str | Path) -> tuple[SweepSpec, Path]:
    """A validated spec and the folder its relative paths resolve against (a file's, else the cwd)."""
    if isinstance(source, SweepSpec):
        return source, Path.cwd()
    base_dir = Path.cwd()
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ConfigError("sweep", str(path), "no such file; give the path of a sweep YAML")
        data: Mapping[str, Any] = read_yaml_mapping(path, "a sweep spec")
        base_dir = path.resolve().parent
    else:
        data = source
    try:
        spec = SweepSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError("sweep spec", str(source), describe_validation_error(exc)) from None
    check_axes(spec)
    return spec, base_dir


def base_mapping(spec: SweepSpec, base_dir: Path) -> dict[str, Any]:
    """The base scenario as a mapping with absolute file paths (a YAML path is read first)."""
    if isinstance(spec.base, str):
        path = Path(spec.base).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise ConfigError("base", spec.base, f"no such scenario file ({path})")
        return _resolve_paths(read_yaml_mapping(path, "a scenario"), path.resolve().parent)
    return _resolve_paths(spec.base, base_dir)


def check_axes(spec: SweepSpec) -> None:
    """Every axis key is a scenario key, named once; zip lists have equal lengths; seeds given once."""
    groups: list[tuple[str, list[str]]] = [("grid", list(spec.grid)), ("zip", list(spec.zip))]
    if spec.random is not None:
        groups.append(("random.axes", list(spec.random.axes)))
    seen: dict[str, str] = {}
    for group, keys in groups:
        for key in keys:
            _check_key(group, key)
            if key in seen:
                raise ConfigError(f"{group}.{key}", key, f"the key is already an axis in {seen[key]}")
            seen[key] = group
    for group, lists in (("grid", spec.grid), ("random.axes", _choice_axes(spec))):
        for key, values in lists.items():
            if not values:
                raise ConfigError(f"{group}.{key}", values, "give at least one value")
    lengths = {key: len(values) for key, values in spec.zip.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError("zip", lengths, "zip lists pair up element by element: give them equal lengths")
    if spec.seeds is not None and spec.num_seeds is not None:
        raise ConfigError("seeds", spec.seeds, "give seeds or num_seeds, not both")
    if (spec.seeds is not None or spec.num_seeds is not None) and SEED_KEY in seen:
        raise ConfigError("seeds", spec.seeds or spec.num_seeds, f"seed is already an axis in {seen['seed']}")
    if spec.random is not None:
        for key, axis in spec.random.axes.items():
            if isinstance(axis, RangeAxis) and (axis.high < axis.low or (axis.log and axis.low <= 0)):
                raise ConfigError(
                    f"random.axes.{key}", axis.model_dump(), "need low <= high (low > 0 for log)"
                )


def _choice_axes(spec: SweepSpec) -> dict[str, list[Any]]:
    axes = spec.random.axes if spec.random is not None else {}
    return {k: v for k, v in axes.items() if isinstance(v, list)}


def _check_key(group: str, key: str) -> None:
    """A dotted key must name scenario fields down to the first field that is not a group of keys."""
    model: type[BaseModel] = Scenario
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:depth]) or "the top level"
            known = ", ".join(fields)
            raise ConfigError(f"{group}.{key}", key, f"not a scenario key (valid keys at {where}: {known})")
        annotation = fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return
        if depth == len(parts) - 1:
            raise ConfigError(f"{group}.{key}", key, f"{key} is a group; name one of its keys")
        model = annotation


def _random_rows(random: RandomAxes | None) -> list[dict[str, Any]]:
    if random is None:
        return [{}]
    rng = np.random.default_rng(random.seed)
    rows: list[dict[str, Any]] = [{} for _ in range(random.samples)]
    for key, axis in random.axes.items():
        if isinstance(axis, list):
            picks = rng.integers(0, len(axis), size=random.samples)
            values: list[Any] = [copy.deepcopy(axis[int(i)]) for i in picks]
        else:
            values = _draw_range(rng, axis, random.samples)
        for row, value in zip(rows, values, strict=True):
            row[key] = value
    return rows


def _draw_range(rng: np.random.Generator, axis: RangeAxis, size: int) -> list[Any]:
    if axis.log:
        draws = np.exp(rng.uniform(math.log(axis.low), math.log(axis.high), size=size))
    else:
        draws = rng.uniform(axis.low, axis.high, size=size)
    if isinstance(axis.low, int) and isinstance(axis.high, int):
        return [int(min(max(round(x), axis.low), axis.high)) for x in draws]
    return [float(x) for x in draws]


def _seed_rows(spec: SweepSpec, base: Mapping[str, Any]) -> list[dict[str, Any]]:
    if spec.seeds is not None:
        return [{SEED_KEY: s} for s in spec.seeds]
    if spec.num_seeds is not None:
        first = int(base.get(SEED_KEY, 0))
        return [{SEED_KEY: first + i} for i in range(spec.num_seeds)]
    return [{}]


def axis_rows(spec: SweepSpec, base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The axis values of every point, in expansion order (grid x zip x random x seeds)."""
    zip_len = len(next(iter(spec.zip.values()))) if spec.zip else 1
    num_random = spec.random.samples if spec.random is not None else 1
    num_seeds = len(spec.seeds) if spec.seeds is not None else (spec.num_seeds or 1)
    total = math.prod(len(v) for v in spec.grid.values()) * zip_len * num_random * num_seeds
    if total > MAX_NUM_POINTS:  # checked before anything is built
        raise ConfigError("sweep", f"{total:,} points", f"a sweep holds at most {MAX_NUM_POINTS:,} points")
    grid = [dict(zip(spec.grid, combo, strict=True)) for combo in itertools.product(*spec.grid.values())]
    zipped = [{k: v[i] for k, v in spec.zip.items()} for i in range(zip_len)]
    randoms, seeds = _random_rows(spec.random), _seed_rows(spec, base)
    return [
        {**g, **z, **r, **s}
        for g, z, r, s in itertools.product(grid, zipped, randoms, seeds)  # seeds vary fastest
    ]


def expand(spec: SweepSpec, base_dir: Path) -> list[SweepPoint]:
    """Every point of the sweep with its scenario (or why it is invalid) and its id."""
    base = base_mapping(spec, base_dir)
    points = []
    for index, values in enumerate(axis_rows(spec, base)):
        try:
            valid = Scenario.from_dict(base, values)
            scenario, error, text = valid, None, valid.to_yaml()
        except SimulatorError as exc:
            scenario, error = None, str(exc)  # kept: the point is recorded as invalid
            text = json.dumps({"base": base, "values": values}, sort_keys=True, default=str)
        point_id = hashlib.sha256(text.encode()).hexdigest()[:16]
        points.append(
            SweepPoint(index=index, point_id=point_id, values=values, scenario=scenario, error=error)
        )
    return points
