"""Where points run: local worker processes, or a Dask cluster (dask is imported only for that one).

A backend submits ``run_point`` calls, says which have finished, and hands back their rows. The runner
keeps at most ``num_slots`` points in flight when a point timeout is set, so a point's submission time is
about its start time; without one, ``num_slots x queue_depth``, so that a worker whose next point must
make a round trip through a scheduler (Dask) does not sit idle meanwhile.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver, resource_tracker
from typing import Any, Literal, Protocol

from simulator.config import Scenario
from simulator.engine.compiled import load_compiled_engine
from simulator.errors import ConfigError
from simulator.sweeps.worker import run_point

BackendName = Literal["local", "dask"]
BACKENDS = ("dask", "local")


class Backend(Protocol):
    """What the runner needs from a pool of workers."""

    num_slots: int
    queue_depth: int  # points per slot kept in flight when no point timeout is set
    enforces_timeout: bool  # True: a point past its timeout returns a 'timeout' row by itself

    def submit(self, point_id: str, scenario: Scenario, timeout_s: float | None) -> Any: ...
    def wait(self, handles: Sequence[Any], timeout_s: float) -> list[Any]: ...
    def result(self, handle: Any) -> dict[str, Any]: ...
    def cancel(self, handle: Any) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...  # stop now (Ctrl-C): points in flight are dropped


class LocalBackend:
    """A pool of worker processes on this machine (one per core by default).

    A worker that dies (killed, out of memory) fails the points then in flight; the pool is restarted.
    Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group): the sweep's process
    handles it and ``abort`` ends the workers, so no worker prints a traceback of its own.
    """

    enforces_timeout = True
    # Never fork a process that may hold threads (JAX, a notebook's kernel): forkserver starts workers
    # from a clean server process on Linux; spawn elsewhere. (Tests that patch the worker use fork.)
    start_method = "forkserver" if sys.platform.startswith("linux") else "spawn"

    def __init__(self, workers: int | None, preload_compiled: bool = False) -> None:
        self.num_slots = workers or os.cpu_count() or 1
        self.queue_depth = 1
        self._preload_compiled = preload_compiled
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            _start_forkserver(context)
        return ProcessPoolExecutor(
            max_workers=self.num_slots,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self._preload_compiled,),
        )

    def submit(self, point_id: str, scenario: Scenario, timeout_s: float | None) -> Future[dict[str, Any]]:
        # A submit may start a worker: a Ctrl-C waits until it is registered, so ``abort`` can end it.
        with _sigint_deferred():
            try:
                return self._pool.submit(run_point, point_id, scenario, timeout_s)
            except BrokenProcessPool:  # a worker died (killed, out of memory): its points failed, go on
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                return self._pool.submit(run_point, point_id, scenario, timeout_s)

    def wait(self, handles: Sequence[Any], timeout_s: float) -> list[Any]:
        done, _ = wait(handles, timeout=timeout_s, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        row: dict[str, Any] = handle.result()
        return row

    def cancel(self, handle: Any) -> None:
        handle.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        # The executor has no public way to stop a running call: end its worker processes.
        workers = getattr(self._pool, "_processes", None) or {}
        for process in list(workers.values()):
            process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(preload_compiled: bool) -> None:
    """A local worker ignores SIGINT (see ``LocalBackend``) and, for a sweep long enough to repay it,
    loads the compiled engine once, so that its points of any length use it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if preload_compiled:
        load_compiled_engine()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """A SIGINT during the block is acted on when it ends; processes started in it have SIGINT blocked.

    Both are needed: Python runs the handler in the main thread whichever thread the OS delivered the
    signal to, so only swapping the handler defers it here; only the mask reaches a child process.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt


def _start_forkserver(context: Any) -> None:
    """Start the fork server (once per process), importing the simulator there so that every worker
    forks with it loaded; SIGINT stays blocked in the server, which a Ctrl-C while it imports would
    otherwise end with a traceback."""
    context.set_forkserver_preload([run_point.__module__])
    resource_tracker.ensure_running()  # first: starting it unblocks SIGINT again
    with _sigint_deferred():
        forkserver.ensure_running()


class DaskBackend:
    """An existing dask.distributed cluster at ``address``, or a LocalCluster started for the sweep.

    Dask runs tasks in worker threads, where no timer can interrupt them: a point past its timeout is
    recorded as 'timeout' and its future cancelled, but its thread runs on until the point ends.
    """

    enforces_timeout = False

    def __init__(self, address: str | None, workers: int | None, preload_compiled: bool = False) -> None:
        try:
            self._dask: Any = importlib.import_module("dask.distributed")
        except ImportError:
            raise ConfigError(
                "--backend", "dask", "dask is not installed; pip install 'trilemma[dask]'"
            ) from None
        self._cluster: Any = None
        if address is None:
            n = workers or os.cpu_count() or 1
            self._cluster = self._dask.LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None)
            self._client = self._dask.Client(self._cluster)
        else:
            self._client = self._dask.Client(address)
        if preload_compiled:  # the workers there now load the compiled engine (see _init_worker)
            self._client.run(load_compiled_engine)
        self.num_slots = max(1, sum(self._client.nthreads().values()))
        if workers is not None and address is not None:
            self.num_slots = min(self.num_slots, workers)
        # a task's round trip (client -> scheduler -> worker -> back) is milliseconds: one queued point per
        # worker thread keeps it busy meanwhile (measured: 1.02x -> see README, Benchmark)
        self.queue_depth = 2

    def submit(self, point_id: str, scenario: Scenario, timeout_s: float | None) -> Any:
        return self._client.submit(run_point, point_id, scenario, None, pure=False)

    def wait(self, handles: Sequence[Any], timeout_s: float) -> list[Any]:
        with contextlib.suppress(TimeoutError):
            self._dask.wait(list(handles), timeout=timeout_s, return_when="FIRST_COMPLETED")
        return [h for h in handles if h.done()]

    def result(self, handle: Any) -> dict[str, Any]:
        row: dict[str, Any] = handle.result()
        return row

    def cancel(self, handle: Any) -> None:
        handle.cancel()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def abort(self) -> None:
        self.close()  # the cluster's own (or a LocalCluster's) workers drop the cancelled tasks


def check_backend(name: str, workers: int | None = None, address: str | None = None) -> None:
    """Raise ConfigError for an unknown backend, fewer than one worker, or an address for local."""
    if name not in BACKENDS:
        raise ConfigError("--backend", name, "known backends are " + ", ".join(BACKENDS))
    if workers is not None and workers < 1:
        raise ConfigError("--workers", workers, "give at least 1 worker")
    if name == "local" and address is not None:
        raise ConfigError("--address", address, "an address is for --backend dask only")


def make_backend(
    name: str, workers: int | None = None, address: str | None = None, preload_compiled: bool = False
) -> Backend:
    """The backend by name; ``address`` only for dask (default: a LocalCluster on this machine);
    ``preload_compiled``: every worker loads the compiled engine before its first point."""
    check_backend(name, workers, address)
    if name == "local":
        return LocalBackend(workers, preload_compiled)
    return DaskBackend(address, workers, preload_compiled)
