"""Rich progress for training: one bar per model and phase, with loss, validation macro-F1 and an ETA."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from neurocascade.hierarchy.checkpoint import PhaseState
from neurocascade.hierarchy.train import Reporter
from neurocascade.console import err


class RichReporter(Reporter):
    """Draws `Reporter` callbacks on stderr; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
        )
        self.tasks: dict[tuple[str, str], int] = {}

    def __enter__(self) -> "RichReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def phase_start(self, stage: str, phase: str, total: int, done: int) -> None:
        self.tasks[stage, phase] = self.progress.add_task(f"{stage} {phase}", total=total, completed=done, metrics="")

    def epoch_end(self, stage: str, phase: str, record: dict) -> None:
        mark = " *" if record["best"] else ""
        metrics = f"loss {record['loss']:.3f}  val F1 {record['val_macro_f1']:.3f}{mark}"
        self.progress.update(self.tasks[stage, phase], advance=1, metrics=metrics)
        if self.progress.disable:  # a log file: one plain line per epoch instead of a bar
            err.print(
                f"{stage} {phase} epoch {record['epoch']}: {metrics} ({record['seconds']:.1f} s)", highlight=False
            )

    def phase_end(self, stage: str, phase: str, state: PhaseState) -> None:
        task = self.tasks[stage, phase]
        self.progress.update(
            task,
            total=state.epochs_done,
            completed=state.epochs_done,
            metrics=f"best val F1 {state.best_score:.3f} (epoch {state.best_epoch + 1})",
        )
