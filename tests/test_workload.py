"""Synthetic workloads: RequestTable checks, arrival processes against their theory, length samplers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.config import (
    MAX_TOKENS_PER_REQUEST,
    EmpiricalLengths,
    LognormalLengths,
    UniformLengths,
    WorkloadConfig,
)
from simulator.errors import ConfigError, DataFileError
from simulator.workload import (
    RequestTable,
    build_workload,
    gamma_arrivals,
    poisson_arrivals,
    rescale_to_rate,
    sample_lengths,
)

DATA = Path(__file__).parent / "data" / "traces"


def _workload(**fields: Any) -> WorkloadConfig:
    return WorkloadConfig.model_validate(fields)


def _gaps_cv(arrival_s: np.ndarray) -> float:
    gaps = np.diff(np.concatenate([[0.0], arrival_s]))
    return float(gaps.std() / gaps.mean())


# --- RequestTable -------------------------------------------------------------------------------


def _table(arrival: list[float], inputs: list[int], outputs: list[int]) -> RequestTable:
    return RequestTable(
        np.array(arrival, dtype=np.float64),
        np.array(inputs, dtype=np.int64),
        np.array(outputs, dtype=np.int64),
    )


def test_request_table_accepts_valid_columns_and_freezes_them() -> None:
    table = _table([0.0, 0.5, 0.5], [1, 2, 3], [4, 5, 6])
    assert len(table) == 3
    assert table.closed_loop_clients is None
    with pytest.raises(ValueError, match="read-only"):
        table.input_tokens[0] = 7
    assert list(table.to_frame().columns) == ["arrival_s", "input_tokens", "output_tokens"]


@pytest.mark.parametrize(
    ("arrival", "inputs", "outputs", "message"),
    [
        ([1.0, 0.5], [1, 1], [1, 1], "non-decreasing; entry 1 is 0.5 after 1.0"),
        ([0.0], [1, 2], [1], "input_tokens has 2 entries but arrival_s has 1"),
        ([0.0], [0], [1], r"input_tokens must lie in \[1, "),
        ([0.0], [1], [MAX_TOKENS_PER_REQUEST + 1], "output_tokens must lie in"),
        ([float("nan")], [1], [1], "finite"),
        ([-1.0], [1], [1], ">= 0"),
    ],
)
def test_request_table_rejects_bad_columns(
    arrival: list[float], inputs: list[int], outputs: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _table(arrival, inputs, outputs)


def test_request_table_rejects_wrong_dtype_and_clients() -> None:
    with pytest.raises(ValueError, match="input_tokens must be a 1-D numpy array of int64"):
        RequestTable(np.zeros(2), np.ones(2, dtype=np.int32), np.ones(2, dtype=np.int64))
    with pytest.raises(ValueError, match="closed_loop_clients = 0"):
        RequestTable(
            np.zeros(1), np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64), closed_loop_clients=0
        )


# --- build_workload -------------------------------------------------------------------------------


@pytest.mark.parametrize("arrival", ["poisson", "gamma", "burst", "concurrency"])
def test_counts_dtypes_and_shapes(arrival: str) -> None:
    table = build_workload(_workload(arrival=arrival, num_requests=500, concurrency=8), seed=3)
    assert len(table) == 500
    assert table.arrival_s.dtype == np.float64
    assert table.input_tokens.dtype == np.int64 and table.output_tokens.dtype == np.int64
    assert np.all(np.diff(table.arrival_s) >= 0)
    assert np.all(table.input_tokens == 512) and np.all(table.output_tokens == 128)
    if arrival in ("burst", "concurrency"):
        assert np.all(table.arrival_s == 0.0)
    else:
        assert table.arrival_s[0] > 0.0  # the first request comes at the first gap, not at t = 0
    assert table.closed_loop_clients == (8 if arrival == "concurrency" else None)


def test_same_config_and_seed_give_identical_arrays_and_other_seeds_do_not() -> None:
    workload = _workload(
        arrival="gamma",
        cv=3.0,
        num_requests=2000,
        input_tokens={"dist": "lognormal", "mean": 800, "sigma": 1.0},
        output_tokens={"dist": "uniform", "low": 10, "high": 300},
    )
    a, b, c = build_workload(workload, 7), build_workload(workload, 7), build_workload(workload, 8)
    for name in ("arrival_s", "input_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))


def test_changing_the_output_distribution_leaves_arrivals_and_inputs_alone() -> None:
    base = {
        "arrival": "poisson",
        "num_requests": 1000,
        "input_tokens": {"dist": "uniform", "low": 1, "high": 99},
    }
    a = build_workload(_workload(**base, output_tokens=64), seed=1)
    b = build_workload(
        _workload(**base, output_tokens={"dist": "lognormal", "mean": 300, "sigma": 0.5}), seed=1
    )
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.input_tokens, b.input_tokens)
    assert not np.array_equal(a.output_tokens, b.output_tokens)


def test_poisson_mean_rate_and_cv_match_theory() -> None:
    table = build_workload(_workload(arrival="poisson", rate_per_s=25.0, num_requests=20_000), seed=0)
    # 20k exponential gaps: the rate's standard error is ~0.7 %, the CV's ~1 %; tolerances are 4 sigma.
    assert len(table) / table.arrival_s[-1] == pytest.approx(25.0, rel=0.03)
    assert _gaps_cv(table.arrival_s) == pytest.approx(1.0, abs=0.04)


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0, 4.0])
def test_gamma_gaps_have_the_requested_rate_and_cv(cv: float) -> None:
    times = gamma_arrivals(rate_per_s=10.0, cv=cv, num=200_000, rng=np.random.default_rng(11))
    assert len(times) / times[-1] == pytest.approx(10.0, rel=0.04)
    assert _gaps_cv(times) == pytest.approx(cv, rel=0.06)


def test_poisson_arrivals_function_is_cumulative_exponential_gaps() -> None:
    times = poisson_arrivals(2.0, 5, np.random.default_rng(5))
    gaps = np.random.default_rng(5).exponential(0.5, size=5)
    np.testing.assert_allclose(times, np.cumsum(gaps))


def test_rescale_to_rate_keeps_shape_and_sets_the_mean_rate() -> None:
    times = np.array([0.0, 1.0, 3.0, 4.0])  # 3 gaps over 4 s: 0.75 requests/s
    scaled = rescale_to_rate(times, 3.0)
    np.testing.assert_allclose(scaled, times / 4.0)
    assert (len(scaled) - 1) / scaled[-1] == pytest.approx(3.0)
    np.testing.assert_array_equal(rescale_to_rate(np.array([0.0]), 9.0), [0.0])
    with pytest.raises(ConfigError, match="all arrive at the same time"):
        rescale_to_rate(np.zeros(3), 1.0)


def test_a_million_requests_take_well_under_a_second() -> None:
    workload = _workload(
        arrival="gamma",
        num_requests=1_000_000,
        input_tokens={"dist": "lognormal", "mean": 1000, "sigma": 1.0},
        output_tokens={"dist": "empirical", "values": [10, 100, 1000]},
    )
    start = time.perf_counter()
    table = build_workload(workload, seed=0)
    elapsed_s = time.perf_counter() - start
    assert len(table) == 1_000_000
    assert elapsed_s < 1.0, f"took {elapsed_s:.2f} s"  # ~0.1 s measured; loose for busy CI machines


# --- lengths --------------------------------------------------------------------------------------


def test_constant_lengths() -> None:
    lengths = sample_lengths(37, 4, np.random.default_rng(0))
    assert lengths.dtype == np.int64
    np.testing.assert_array_equal(lengths, [37, 37, 37, 37])


def test_uniform_lengths_cover_both_ends_and_nothing_else() -> None:
    spec = UniformLengths(dist="uniform", low=3, high=7)
    lengths = sample_lengths(spec, 10_000, np.random.default_rng(0))
    assert set(np.unique(lengths).tolist()) == {3, 4, 5, 6, 7}
    assert lengths.mean() == pytest.approx(5.0, abs=0.05)


@pytest.mark.parametrize(("mean", "sigma"), [(1000.0, 0.5), (1000.0, 1.0), (200.0, 1.5)])
def test_lognormal_lengths_have_the_requested_mean(mean: float, sigma: float) -> None:
    spec = LognormalLengths(dist="lognormal", mean=mean, sigma=sigma)
    lengths = sample_lengths(spec, 400_000, np.random.default_rng(2))
    assert lengths.mean() == pytest.approx(mean, rel=0.03)
    # the median of a log-normal is exp(mu) = mean * exp(-sigma^2 / 2)
    assert np.median(lengths) == pytest.approx(mean * np.exp(-(sigma**2) / 2), rel=0.03)


def test_lognormal_lengths_are_clipped_to_bounds() -> None:
    spec = LognormalLengths(dist="lognormal", mean=100, sigma=2.0, low=20, high=400)
    lengths = sample_lengths(spec, 50_000, np.random.default_rng(0))
    assert lengths.min() == 20 and lengths.max() == 400
    with pytest.raises(ValueError, match="high=10 must be >= low=50"):
        LognormalLengths(dist="lognormal", mean=100, sigma=1, low=50, high=10)


def test_empirical_lengths_from_values_resample_with_their_frequencies() -> None:
    spec = EmpiricalLengths(dist="empirical", values=(5, 5, 5, 50))
    lengths = sample_lengths(spec, 40_000, np.random.default_rng(0))
    assert set(np.unique(lengths).tolist()) == {5, 50}
    assert np.mean(lengths == 50) == pytest.approx(0.25, abs=0.01)


def test_empirical_lengths_from_a_text_file_and_a_csv_column() -> None:
    rng = np.random.default_rng(0)
    from_text = sample_lengths(EmpiricalLengths(dist="empirical", file=str(DATA / "lengths.txt")), 3000, rng)
    assert set(np.unique(from_text).tolist()) == {10, 20, 30}
    first = sample_lengths(EmpiricalLengths(dist="empirical", file=str(DATA / "lengths.csv")), 3000, rng)
    assert set(np.unique(first).tolist()) == {74, 290, 1402}
    decode = EmpiricalLengths(dist="empirical", file=str(DATA / "lengths.csv"), column="num_decode_tokens")
    assert set(np.unique(sample_lengths(decode, 3000, rng)).tolist()) == {918, 905, 711}


def test_empirical_length_file_errors_name_the_row_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("10\n20\n\nabc\n")
    with pytest.raises(DataFileError, match=r"bad.txt, row 4: column value is 'abc', expected an integer"):
        sample_lengths(EmpiricalLengths(dist="empirical", file=str(bad)), 3, np.random.default_rng())
    zero = tmp_path / "zero.csv"
    zero.write_text("tokens\n4\n0\n")
    with pytest.raises(DataFileError, match=r"row 3: column tokens is 0, expected a token count >= 1"):
        sample_lengths(EmpiricalLengths(dist="empirical", file=str(zero)), 3, np.random.default_rng())
    with pytest.raises(DataFileError, match=r"expected a column 'nope'; found num_prefill_tokens,num_decode"):
        spec = EmpiricalLengths(dist="empirical", file=str(DATA / "lengths.csv"), column="nope")
        sample_lengths(spec, 3, np.random.default_rng())
    with pytest.raises(ConfigError, match="no such file"):
        sample_lengths(
            EmpiricalLengths(dist="empirical", file=str(tmp_path / "x")), 3, np.random.default_rng()
        )
