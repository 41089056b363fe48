"""Request traces and length tables from CSV files (untrusted input: validated row by row).

Two trace formats are read, told apart by the header (extra columns are ignored):

* Azure LLM inference traces: ``TIMESTAMP,ContextTokens,GeneratedTokens`` with date-times such as
  ``2023-11-16 18:15:46.6805900`` (ISO 8601; a time zone, if given, is honoured) or plain seconds;
* our own: ``arrival_s,input_tokens,output_tokens`` with arrival times in seconds (any finite
  numbers; like Azure times they are shifted so the first request is at 0).

``load_trace`` returns a DataFrame with columns ``arrival_s`` (float64 seconds, the first request at
0.0), ``input_tokens`` and ``output_tokens`` (int64). Files may be gzipped (``.csv.gz``). Rules:

* a field that is not a number -> ``DataFileError`` naming the file, the row (1-based, the header is
  row 1), the column and the value; blank lines are skipped but still counted; a row with more
  fields than the header is an error (a missing field reads as empty);
* a token count < 0 or > MAX_TOKENS_PER_REQUEST -> ``DataFileError``; a count of 0 is raised to 1
  (a request generates at least one token), with a warning and the number of such rows in
  ``frame.attrs["num_zero_tokens_clipped"]``;
* more than MAX_NUM_REQUESTS rows -> ``DataFileError``; the file is read in chunks and at most
  MAX_NUM_REQUESTS + 1 rows are ever parsed, so a huge file fails fast instead of filling memory;
* timestamps out of order -> the rows are sorted by time (stable), with a warning and the number of
  out-of-order rows in ``frame.attrs["num_rows_out_of_order"]``.

The bundled traces (``list_traces()``) are the Azure 2023 code and conversation traces (CC-BY 4.0,
Patel et al., "Splitwise: Efficient Generative LLM Inference Using Phase Splitting", ISCA 2024).
Both are in time order and have no zero token counts, so they load without warnings.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.config import MAX_NUM_REQUESTS, MAX_TOKENS_PER_REQUEST
from simulator.errors import ConfigError, DataFileError, UnknownNameError
from simulator.resources import traces_dir

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
OWN_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")
_CHUNK_ROWS = 1_000_000
_SUFFIXES = (".csv.gz", ".csv")
_READ_ERRORS = (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error)


def list_traces() -> list[str]:
    """Names of the bundled traces (e.g. ``azure-code-2023``, ``azure-conv-2023``)."""
    folder = traces_dir()
    if not folder.is_dir():
        return []
    names = {p.name.removesuffix(s) for p in folder.iterdir() for s in _SUFFIXES if p.name.endswith(s)}
    return sorted(names)


def resolve_trace(name_or_path: str | Path) -> Path:
    """The file of a bundled trace name, or the given CSV path (checked to exist).

    A ``Path``, or a string with a slash or ending in ``.csv``/``.gz``, is a path; any other string
    is a bundled name.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith((".csv", ".gz")):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError("workload.trace", text, "no such file; give a bundled trace name or a CSV path")
        return path
    for suffix in _SUFFIXES:
        path = traces_dir() / f"{text}{suffix}"
        if path.is_file():
            return path
    raise UnknownNameError("workload.trace", text, list_traces())


def load_trace(name_or_path: str | Path, max_rows: int | None = None) -> pd.DataFrame:
    """A trace's first ``max_rows`` requests (all when None): arrival_s (from 0), input/output_tokens."""
    if max_rows is not None and max_rows < 1:
        raise ConfigError("max_rows", max_rows, "must be >= 1 or None (all rows)")
    path = resolve_trace(name_or_path)
    header = _read_header(path)
    if set(OWN_COLUMNS) <= set(header):
        time_col, in_col, out_col = OWN_COLUMNS
    elif set(AZURE_COLUMNS) <= set(header):
        time_col, in_col, out_col = AZURE_COLUMNS
    else:
        raise DataFileError(
            path,
            f"expected the columns {','.join(AZURE_COLUMNS)} (Azure trace) or {','.join(OWN_COLUMNS)}; "
            f"found {','.join(header) or '(none)'}",
        )
    times: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    origin_ns: list[int] = []  # Azure: the first timestamp, so float seconds keep sub-microsecond precision
    for chunk in _read_chunks(
        path, [time_col, in_col, out_col], max_rows, row_offset=2, dtype={time_col: str}
    ):
        if time_col == "TIMESTAMP":
            times.append(_datetime_s(path, chunk[time_col], origin_ns))
        else:
            times.append(_seconds(path, chunk[time_col]))
        inputs.append(_int_column(path, chunk[in_col], row_offset=2, min_value=0))
        outputs.append(_int_column(path, chunk[out_col], row_offset=2, min_value=0))
    if not times:
        raise DataFileError(path, "has no requests (only a header)")
    return _assemble(path, np.concatenate(times), np.concatenate(inputs), np.concatenate(outputs))


def load_length_values(path: str | Path, column: str | None = None) -> np.ndarray:
    """Token counts (int64, each in [1, MAX_TOKENS_PER_REQUEST]) from a length table.

    The file is either plain text, one integer per line and no header, or a CSV with a header whose
    ``column`` (default: the first) holds the counts. A count below 1 is an error here.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            "empirical.file", str(path), "no such file; give a CSV or text file of token counts"
        )
    header = _read_header(path)
    first = header[0] if header else ""
    if column is None and _is_int_text(first):
        chunks = _read_chunks(path, None, None, row_offset=1, header=None, names=["value"])
        column, row_offset = "value", 1
    else:
        column = column if column is not None else first
        if column not in header:
            raise DataFileError(path, f"expected a column {column!r}; found {','.join(header) or '(none)'}")
        chunks = _read_chunks(path, [column], None, row_offset=2)
        row_offset = 2
    parts = [_int_column(path, chunk[column], row_offset=row_offset, min_value=1) for chunk in chunks]
    if not parts:
        raise DataFileError(path, "has no token counts")
    return np.concatenate(parts)


def _is_int_text(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


def _read_header(path: Path) -> list[str]:
    try:
        frame = pd.read_csv(path, nrows=0)
    except pd.errors.EmptyDataError:
        raise DataFileError(path, "is empty") from None
    except _READ_ERRORS as exc:
        raise DataFileError(path, f"is not a readable CSV file ({exc})") from None
    return [str(c) for c in frame.columns]


def _read_chunks(
    path: Path,
    usecols: list[str] | None,
    max_rows: int | None,
    row_offset: int,
    dtype: dict[str, type] | None = None,
    header: int | None = 0,
    names: list[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Non-blank rows of ``usecols`` in chunks; the index is the 0-based data line (file row = index +
    row_offset). Every column is parsed, so a row with too many or too few fields is an error.

    Parses at most MAX_NUM_REQUESTS + 1 lines and raises if the file has more than MAX_NUM_REQUESTS
    rows (unless ``max_rows`` asks for fewer).
    """
    limit = MAX_NUM_REQUESTS + 1 if max_rows is None else min(max_rows, MAX_NUM_REQUESTS + 1)
    num_rows = 0
    try:
        reader = pd.read_csv(
            path,
            dtype=dtype,
            header=header,
            names=names,
            skip_blank_lines=False,
            nrows=limit,
            chunksize=min(_CHUNK_ROWS, limit),
        )
        with reader:
            for whole in reader:
                chunk = whole if usecols is None else whole[usecols]
                chunk = chunk[chunk.notna().any(axis=1)]
                num_rows += len(chunk)
                if num_rows > MAX_NUM_REQUESTS:
                    raise DataFileError(
                        path,
                        f"has more than {MAX_NUM_REQUESTS:,} rows (the limit, MAX_NUM_REQUESTS); "
                        "read fewer with workload.num_requests or split the file",
                        row=int(chunk.index[-1]) + row_offset,
                    )
                if len(chunk):
                    yield chunk
    except _READ_ERRORS as exc:
        raise DataFileError(path, f"is not a readable CSV file ({exc})") from None


def _first_bad(path: Path, series: pd.Series, bad: np.ndarray, row_offset: int, expected: str) -> None:
    """Raise for the first True in ``bad``: the file row, the column and the offending value."""
    if not bad.any():
        return
    i = int(np.argmax(bad))
    value = series.iloc[i]
    if pd.isna(value):
        shown = "empty"
    elif isinstance(value, np.integer | np.floating):
        shown = repr(value.item())
    else:
        shown = repr(value)
    raise DataFileError(
        path, f"column {series.name} is {shown}, expected {expected}", row=int(series.index[i]) + row_offset
    )


def _int_column(path: Path, series: pd.Series, row_offset: int, min_value: int) -> np.ndarray:
    """A column of token counts as int64, each in [min_value, MAX_TOKENS_PER_REQUEST]."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        _first_bad(
            path, series, ~np.isfinite(values) | (values != np.floor(values)), row_offset, "an integer"
        )
    _first_bad(path, series, values < min_value, row_offset, f"a token count >= {min_value}")
    _first_bad(
        path,
        series,
        values > MAX_TOKENS_PER_REQUEST,
        row_offset,
        f"at most MAX_TOKENS_PER_REQUEST = {MAX_TOKENS_PER_REQUEST:,} tokens",
    )
    return values.astype(np.int64)


def _seconds(path: Path, series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    _first_bad(path, series, ~np.isfinite(values), 2, "a number of seconds")
    return values


def _datetime_s(path: Path, series: pd.Series, origin_ns: list[int]) -> np.ndarray:
    """Seconds since the file's first timestamp (``origin_ns`` holds it once the first chunk is read).

    A TIMESTAMP column of plain numbers is read as seconds (as in ``arrival_s`` files)."""
    numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isfinite(numeric).all():
        return numeric
    stamps = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
    _first_bad(path, series, stamps.isna().to_numpy(), 2, "a date-time such as 2023-11-16 18:15:46.6805900")
    ns = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
    if not origin_ns:
        origin_ns.append(int(ns[0]))
    return (ns - origin_ns[0]).astype(np.float64) / 1e9


def _assemble(path: Path, time_s: np.ndarray, inputs: np.ndarray, outputs: np.ndarray) -> pd.DataFrame:
    """Sort by time if needed, start the clock at 0 and raise zero token counts to 1 (with warnings)."""
    num_out_of_order = int(np.count_nonzero(np.diff(time_s) < 0))
    if num_out_of_order:
        order = np.argsort(time_s, kind="stable")
        time_s, inputs, outputs = time_s[order], inputs[order], outputs[order]
        warnings.warn(
            f"{path}: {num_out_of_order} rows have a timestamp earlier than the row before; "
            "the requests were sorted by time",
            UserWarning,
            stacklevel=3,
        )
    zero = (inputs == 0) | (outputs == 0)
    num_zero = int(np.count_nonzero(zero))
    if num_zero:
        inputs, outputs = np.maximum(inputs, 1), np.maximum(outputs, 1)
        warnings.warn(
            f"{path}: {num_zero} requests have 0 input or output tokens; counted as 1 token",
            UserWarning,
            stacklevel=3,
        )
    frame = pd.DataFrame({"arrival_s": time_s - time_s[0], "input_tokens": inputs, "output_tokens": outputs})
    frame.attrs.update(
        source=str(path), num_zero_tokens_clipped=num_zero, num_rows_out_of_order=num_out_of_order
    )
    return frame
