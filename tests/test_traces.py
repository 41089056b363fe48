"""Trace loading: both CSV formats, the bundled Azure traces, rescaling, and errors on bad files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.config import MAX_TOKENS_PER_REQUEST, WorkloadConfig
from simulator.errors import ConfigError, DataFileError, UnknownNameError
from simulator.workload import build_workload, list_traces, load_trace
from simulator.workload import traces as traces_module

DATA = Path(__file__).parent / "data" / "traces"
AZURE_HEAD = DATA / "azure_conv_head.csv"


def _write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _trace_workload(trace: str, **fields: Any) -> WorkloadConfig:
    return WorkloadConfig.model_validate({"arrival": "trace", "trace": trace, **fields})


# --- formats --------------------------------------------------------------------------------------


def test_azure_format_times_start_at_zero_and_keep_sub_millisecond_precision() -> None:
    frame = load_trace(AZURE_HEAD)
    assert list(frame.columns) == ["arrival_s", "input_tokens", "output_tokens"]
    assert len(frame) == 20
    assert frame["arrival_s"].dtype == np.float64 and frame["input_tokens"].dtype == np.int64
    assert frame["arrival_s"].iloc[0] == 0.0
    # 18:15:50.9951690 - 18:15:46.6805900 and 18:15:59.7056780 - 18:15:46.6805900
    assert frame["arrival_s"].iloc[1] == pytest.approx(4.314579, abs=1e-9)
    assert frame["arrival_s"].iloc[-1] == pytest.approx(13.025088, abs=1e-9)
    assert (frame["input_tokens"].sum(), frame["output_tokens"].sum()) == (11540, 1674)
    assert frame.attrs["num_zero_tokens_clipped"] == 0 and frame.attrs["num_rows_out_of_order"] == 0


def test_own_format_ignores_extra_columns_and_blank_lines_and_starts_at_zero() -> None:
    frame = load_trace(str(DATA / "own_format.csv"))
    np.testing.assert_allclose(frame["arrival_s"], [0.0, 0.5, 1.0, 3.0])
    np.testing.assert_array_equal(frame["input_tokens"], [100, 200, 300, 400])
    np.testing.assert_array_equal(frame["output_tokens"], [10, 20, 30, 40])


def test_gzipped_file_and_max_rows(tmp_path: Path) -> None:
    gz = tmp_path / "head.csv.gz"
    with AZURE_HEAD.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    frame = load_trace(gz, max_rows=5)
    np.testing.assert_array_equal(frame["input_tokens"], [374, 396, 879, 91, 91])
    with pytest.raises(ConfigError, match="max_rows"):
        load_trace(gz, max_rows=0)


def test_out_of_order_rows_are_sorted_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, "arrival_s,input_tokens,output_tokens\n2.0,1,1\n1.0,2,2\n3.0,3,3\n")
    with pytest.warns(UserWarning, match="1 rows have a timestamp earlier"):
        frame = load_trace(path)
    np.testing.assert_array_equal(frame["input_tokens"], [2, 1, 3])
    np.testing.assert_allclose(frame["arrival_s"], [0.0, 1.0, 2.0])
    assert frame.attrs["num_rows_out_of_order"] == 1


def test_zero_token_counts_are_raised_to_one_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, "arrival_s,input_tokens,output_tokens\n0,5,0\n1,0,3\n2,4,4\n")
    with pytest.warns(UserWarning, match="2 requests have 0 input or output tokens"):
        frame = load_trace(path)
    np.testing.assert_array_equal(frame["input_tokens"], [5, 1, 4])
    np.testing.assert_array_equal(frame["output_tokens"], [1, 3, 4])
    assert frame.attrs["num_zero_tokens_clipped"] == 2


# --- bundled traces -------------------------------------------------------------------------------


def test_list_traces_names_both_bundled_azure_traces() -> None:
    assert {"azure-code-2023", "azure-conv-2023"} <= set(list_traces())


@pytest.mark.parametrize(
    ("name", "num_rows", "mean_input", "mean_output", "span_s"),
    [
        # Figures from the upstream files (groundtruth README): conv 1,155 / 211, code 2,048 / 28.
        ("azure-conv-2023", 19_366, 1154.697, 211.126, 3501.721937),
        ("azure-code-2023", 8_819, 2047.848, 27.883, 3435.948056),
    ],
)
def test_bundled_azure_traces(
    name: str, num_rows: int, mean_input: float, mean_output: float, span_s: float
) -> None:
    frame = load_trace(name)
    assert len(frame) == num_rows
    assert frame["input_tokens"].mean() == pytest.approx(mean_input, abs=1e-3)
    assert frame["output_tokens"].mean() == pytest.approx(mean_output, abs=1e-3)
    assert frame["arrival_s"].iloc[-1] == pytest.approx(span_s, abs=1e-6)
    assert np.all(np.diff(frame["arrival_s"].to_numpy()) >= 0)


def test_trace_workload_takes_first_rows_and_its_own_lengths() -> None:
    workload = _trace_workload("azure-conv-2023", num_requests=100, rate_per_s=None, input_tokens=7)
    table = build_workload(workload, seed=0)
    frame = load_trace("azure-conv-2023", max_rows=100)
    assert len(table) == 100 and table.closed_loop_clients is None
    np.testing.assert_array_equal(table.input_tokens, frame["input_tokens"])  # input_tokens=7 is ignored
    np.testing.assert_array_equal(table.arrival_s, frame["arrival_s"])


def test_trace_rescaled_to_a_target_rate_keeps_relative_spacing() -> None:
    original = build_workload(_trace_workload("azure-code-2023", num_requests=None, rate_per_s=None), seed=0)
    scaled = build_workload(_trace_workload("azure-code-2023", num_requests=None, rate_per_s=20.0), seed=0)
    assert (len(scaled) - 1) / scaled.arrival_s[-1] == pytest.approx(20.0)
    observed_rate = (len(original) - 1) / original.arrival_s[-1]
    np.testing.assert_allclose(scaled.arrival_s, original.arrival_s * observed_rate / 20.0)
    np.testing.assert_array_equal(scaled.output_tokens, original.output_tokens)


def test_asking_for_more_rows_than_the_trace_has_replays_it_after_its_end() -> None:
    once = build_workload(_trace_workload(str(AZURE_HEAD), num_requests=None, rate_per_s=None), seed=0)
    table = build_workload(_trace_workload(str(AZURE_HEAD), num_requests=50, rate_per_s=None), seed=0)
    assert len(once) == 20 and len(table) == 50
    np.testing.assert_array_equal(table.input_tokens[20:40], once.input_tokens)
    period_s = once.arrival_s[-1] * (1 + 1 / 19)  # span plus one mean gap
    np.testing.assert_allclose(table.arrival_s[20:40], once.arrival_s + period_s)
    assert np.all(np.diff(table.arrival_s) >= 0)


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_bundled_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="known names are azure-code-2023, azure-conv-2023"):
        load_trace("azure-chat-2099")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_trace(tmp_path / "nope.csv")


def test_missing_columns_name_expected_and_found(tmp_path: Path) -> None:
    path = _write(tmp_path, "TIMESTAMP,ContextTokens,Output\n2023-11-16 18:15:46,1,1\n")
    with pytest.raises(
        DataFileError,
        match=r"expected the columns TIMESTAMP,ContextTokens,GeneratedTokens .*"
        r"found TIMESTAMP,ContextTokens,Output",
    ):
        load_trace(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("0,1,1\n1,abc,1\n", r"row 3: column input_tokens is 'abc', expected an integer"),
        ("0,1,1\n\n1,2,\n", r"row 4: column output_tokens is empty, expected an integer"),
        ("0,1,1\n1,2.5,1\n", r"row 3: column input_tokens is 2.5, expected an integer"),
        ("0,1,1\n1,1,1\n2,-3,1\n", r"row 4: column input_tokens is -3, expected a token count >= 0"),
        (f"0,{MAX_TOKENS_PER_REQUEST + 1},1\n", r"row 2: column input_tokens is 2000001, expected at most"),
        ("0,1,1\nsoon,1,1\n", r"row 3: column arrival_s is 'soon', expected a number of seconds"),
        ("0,1,1\ninf,1,1\n", r"row 3: column arrival_s is 'inf', expected a number of seconds"),
    ],
)
def test_bad_rows_are_reported_with_file_row_column_and_value(
    tmp_path: Path, body: str, message: str
) -> None:
    path = _write(tmp_path, "arrival_s,input_tokens,output_tokens\n" + body)
    with pytest.raises(DataFileError, match=message) as info:
        load_trace(path)
    assert info.value.path == path


def test_bad_azure_timestamp_names_the_row(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,1,1\nyesterday,1,1\n"
    )
    with pytest.raises(DataFileError, match=r"row 3: column TIMESTAMP is 'yesterday', expected a date-time"):
        load_trace(path)


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="is empty"):
        load_trace(_write(tmp_path, "", "empty.csv"))
    with pytest.raises(DataFileError, match="has no requests"):
        load_trace(_write(tmp_path, "arrival_s,input_tokens,output_tokens\n", "header.csv"))


def test_ragged_row_is_a_data_file_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "arrival_s,input_tokens,output_tokens\n0,1,1\n1,1,1,1,1\n")
    with pytest.raises(DataFileError, match="not a readable CSV"):
        load_trace(path)


def test_too_many_rows_fails_without_reading_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traces_module, "MAX_NUM_REQUESTS", 5)
    monkeypatch.setattr(traces_module, "_CHUNK_ROWS", 2)
    rows = "".join(f"{i},1,1\n" for i in range(6)) + "x,not,read\n"  # the bad last row is never parsed
    path = _write(tmp_path, "arrival_s,input_tokens,output_tokens\n" + rows)
    with pytest.raises(DataFileError, match="has more than 5 rows"):
        load_trace(path)
    assert len(load_trace(path, max_rows=5)) == 5  # asking for few enough rows is fine
