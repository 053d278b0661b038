"""Terminal output: results to stdout, progress to stderr (silent when stderr is not a terminal)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

out = Console()
err = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """Yield `(advance, set_total)` callbacks driving one rich progress bar on stderr."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield (lambda n=1: bar.advance(task, n)), (lambda t: bar.update(task, total=t))
