"""A sweep's results on disk: a parquet dataset of part files, appended to as points finish.

Layout of the output folder::

    DIR/sweep.yaml                  the spec, with the base scenario inlined (re-runnable as is)
    DIR/results/part-00000.parquet  one file per batch of finished points (any status)
    DIR/results/part-00001.parquet  ...

A part is written whole to a temporary name and then renamed, so an interrupted sweep leaves only
complete parts; ``--resume`` reads the point ids they hold and skips those points.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulator.errors import ConfigError, DataFileError

RESULTS_DIR = "results"
SPEC_FILE = "sweep.yaml"


class ResultStore:
    """Append-only parquet parts under ``out_dir/results``."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.parts_dir = self.out_dir / RESULTS_DIR

    def parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet")) if self.parts_dir.is_dir() else []

    def prepare(self, resume: bool, spec: Mapping[str, Any]) -> None:
        """Create the folder and write the spec; refuse to mix with old results unless resuming."""
        if self.parts() and not resume:
            raise ConfigError(
                "--out", str(self.out_dir), "it already holds sweep results; pass --resume or another folder"
            )
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(json.loads(json.dumps(dict(spec), default=str)), sort_keys=False)
        (self.out_dir / SPEC_FILE).write_text(text)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> Path | None:
        """Write the rows as the next part file (atomically); nothing for no rows."""
        if not rows:
            return None
        parts = self.parts()
        number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        path = self.parts_dir / f"part-{number:05d}.parquet"
        tmp = path.with_suffix(".tmp")
        pd.DataFrame(list(rows)).to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    def read(self) -> pd.DataFrame:
        """Every row of every part (an empty frame when there is none)."""
        frames = []
        for path in self.parts():
            try:
                frames.append(pd.read_parquet(path))
            except Exception as exc:  # a damaged part is named, not silently dropped
                raise DataFileError(
                    path, f"not a readable parquet part ({exc}); delete it to re-run"
                ) from None
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def done_ids(self) -> set[str]:
        frame = self.read()
        return set(frame["point_id"]) if "point_id" in frame else set()


def _plain(values: list[Any]) -> bool:
    """Values parquet stores in one typed column: all numbers, all strings or all booleans (or None)."""
    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int | float):
            kinds.add("number")
        elif isinstance(v, str):
            kinds.add("str")
        else:
            return False
    return len(kinds) <= 1


def axis_columns(values: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Axis values as columns: kept as they are when an axis is plain, else as JSON text."""
    keys = list(dict.fromkeys(k for row in values for k in row))
    as_json = {k for k in keys if not _plain([row.get(k) for row in values])}
    return [
        {k: (json.dumps(v, sort_keys=True) if k in as_json else v) for k, v in row.items()} for row in values
    ]
