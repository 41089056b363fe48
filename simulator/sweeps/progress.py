"""A rich progress bar for a sweep: points done of total, those that did not end ok, rate and ETA."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class SweepProgress:
    """Counts finished points by status; shows a bar on stderr when ``enabled``."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.counts: dict[str, int] = {}
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[not_ok]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._progress.add_task("sweep", total=total, not_ok="", rate="")

    def __enter__(self) -> SweepProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def num_done(self) -> int:
        return sum(self.counts.values())

    def not_ok_text(self) -> str:
        """``"2 invalid, 1 failed"``: the points that did not end ok, by status."""
        return ", ".join(f"{n} {s}" for s, n in self.counts.items() if s != "ok" and n)

    def advance(self, status: str) -> None:
        """One more point finished with ``status``."""
        self.counts[status] = self.counts.get(status, 0) + 1
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[self._task]
            elapsed_s = task.elapsed or 0.0
            rate = f"{self.num_done / elapsed_s:.2f} points/s" if elapsed_s > 0 else ""
            self._progress.update(self._task, advance=1, not_ok=self.not_ok_text(), rate=rate)
