"""Rich progress for the runner: run i of n, epoch, batch, ETA, and the last epoch's scores."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from suite.records import Record
from suite.safetext import terminal
from suite.specs import RunSpec
from suite.train import Progress as RunnerProgress


class RichProgress(RunnerProgress):
    """Two bars: runs overall, and batches of the current run across all its epochs (so the ETA covers the run)."""

    def __init__(self, console: Console, n_runs: int) -> None:
        self.console = console
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)
        self.runs = self.bars.add_task("runs", total=n_runs, visible=n_runs > 0)
        self.current: Any = None
        self.label = ""
        self.done = 0
        self.n_runs = n_runs
        self.epochs = 0
        self.batches = 0

    def __enter__(self) -> RichProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bars.__exit__(exc_type, exc, tb)

    def run_started(self, spec: RunSpec, epochs: int, batches: int, start_epoch: int) -> None:
        self.bars.update(self.runs, description=f"run {self.done + 1}/{self.n_runs}")
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.epochs, self.batches = epochs, batches
        self.label = terminal(spec.label + (f" (resumed at epoch {start_epoch})" if start_epoch else ""))
        self.current = self.bars.add_task(self.label, total=epochs * batches, completed=start_epoch * batches)

    def batch_done(self, epoch: int, batch: int, loss: float) -> None:
        self.bars.update(self.current, advance=1)

    def epoch_done(self, epoch: int, row: dict[str, Any]) -> None:
        self.bars.update(self.current, description=f"{self.label}  {epoch + 1}/{self.epochs} epochs done, "
                                                   f"loss {row['train_loss']:.3f} valid {100 * row['valid_acc']:.1f}%")

    def run_done(self, record: Record) -> None:
        m = record["metrics"]
        self.console.print(terminal(f"{record['label']}: test {100 * m['test_acc_at_best_valid']:.2f}% at best valid "
                                    f"(epoch {m['best_epoch']}, 0-based as in the record), valid "
                                    f"{100 * m['best_valid_acc']:.2f}%"), soft_wrap=True)  # one line per run in logs
        self.done += 1
        self.bars.update(self.runs, advance=1)
