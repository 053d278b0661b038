"""Terminal output: results to stdout, progress to stderr (silent when stderr is not a terminal)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Piped to a file or log, rich would assume 80 columns and squeeze the wide metric tables; use 120 there.
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


@contextmanager
def progress_bar(
    description: str, total: int | None = None
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """Yield `(advance, set_total)` callbacks driving one rich progress bar on stderr."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=not err.is_terminal, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield (lambda n=1: bar.advance(task, n)), (lambda t: bar.update(task, total=t))


def warn(message: str) -> None:
    """One warning line on stderr: something the user should know that does not stop the command.

    The message is printed as given, never read as rich markup (paths may hold brackets).
    """
    from rich.text import Text

    err.print(Text.assemble(("warning", "bold yellow"), f": {message}"), soft_wrap=True)
