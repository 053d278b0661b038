"""Hide LiteRT's start-up notice ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") and nothing else.

LiteRT's C++ logger writes it straight to file descriptor 2 on the first interpreter of a process; no environment
variable or Python call turns it off (TF_CPP_MIN_LOG_LEVEL does not reach it). So stderr is caught around the call
into a temporary file and every other line is written back, so a real error or warning is never swallowed.

    with quiet_litert():
        interpreter = Interpreter(model_path=path); interpreter.allocate_tensors()
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NOTICES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextmanager
def quiet_litert() -> Iterator[None]:
    """Run the body with fd 2 caught; on exit write back every caught line that is not a known LiteRT notice."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreter, closed fd): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [
                line
                for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                if line.strip() not in NOTICES
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
