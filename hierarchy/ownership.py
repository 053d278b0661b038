"""A run folder is one writer's, and knows what it is (issue 14, item 3).

`claim_run` takes the folder's lock before anything is checked or written: `<run>/.lock`, held with an
exclusive `flock` for as long as the training runs, so a second `train-cascade --out <run>` started a moment
later is refused with the holder's pid instead of writing into the same folder. The kernel drops the lock
when its process dies (Ctrl-C, kill -9, a crash), so a lock file left behind never blocks `--resume`; the
next owner takes it over and rewrites the pid in it.

`run.json` is the run's start record, written before the first epoch: stages, the config (as TOML), the
data set's fingerprint (paths and labels), its content fingerprint (every image's sha256) and the split
hashes. `--resume` compares the config it is given and the data it loads with it and refuses, naming the
difference. `manifest.json` is still written only at the end: its presence means "finished".

    with claim_run(out, resume=False):
        ...
        write_json(out / RUN_RECORD, run_record(cfg, ds, stages))
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from neurocascade.config import Config
from neurocascade.errors import UserError

LOCK = ".lock"
RUN_RECORD = "run.json"
RECORD_VERSION = 1


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info.get('pid')} on {info.get('host')}"
    except (OSError, ValueError, AttributeError):
        return "another process"


def _acquire(path: Path) -> int:
    """An open, exclusively locked descriptor of `path` (created if missing), or a UserError if it is held."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise UserError(f"{path.parent}: another training is writing this run ({_holder(path)}); "
                                "wait for it to finish or choose another --out") from None
            raise
        # The previous holder unlinks the file as it releases it: make sure we locked the file that is there.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
    return fd


def _is_empty(out: Path) -> bool:
    return not any(p.name != LOCK for p in out.iterdir())


@contextmanager
def claim_run(out: Path, resume: bool) -> Iterator[None]:
    """Hold `out`'s lock for the block: create the folder for a new run, refuse one that is in use.

    A new run refuses a folder with anything but a stale lock in it; if the block fails before writing
    anything, the folder it created is removed again, so a typo leaves nothing half-made behind.
    """
    out = Path(out)
    if resume and not out.is_dir():
        raise UserError(f"{out}: nothing to resume (no config.toml); start the run without --resume")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{out}: exists and is not a directory; choose another --out") from None
    fd = _acquire(out / LOCK)
    try:
        if not resume and not _is_empty(out):
            raise UserError(f"{out}: run directory exists; pass --resume to continue it or choose another --out")
        yield
    finally:
        try:
            os.unlink(out / LOCK)
        except FileNotFoundError:
            pass
        os.close(fd)  # releases the flock
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def content_fingerprint(ds) -> str:
    """A short hash of every readable image's relative path, label and file sha256: the data's content."""
    h = hashlib.sha256()
    rows = sorted((Path(s.path).relative_to(ds.root).as_posix(), s.label, scan.sha256)
                  for s, scan in zip(ds.samples, ds.scans))
    for rel, label, sha in rows:
        h.update(f"{rel}\t{label}\t{sha}\n".encode())
    return h.hexdigest()[:16]


def run_record(cfg: Config, ds, stages: tuple[str, ...]) -> dict:
    """The start record: what this run is (its config, data and split), written before its first epoch."""
    from neurocascade.config import to_toml

    return {"version": RECORD_VERSION, "stages": list(stages), "config": to_toml(cfg),
            "dataset": {"root": ds.root, "fingerprint": ds.fingerprint, "content": content_fingerprint(ds),
                        "split_hashes": ds.split_hashes()},
            "started_by": {"pid": os.getpid(), "host": socket.gethostname()}}


def _flat(value, prefix: str = "") -> dict:
    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.compare}  # not `source`
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def config_difference(given: Config, saved: Config) -> str | None:
    """The first key where two configs differ, as `section.key = given (the run has saved)`; None if equal."""
    a, b = _flat(given), _flat(saved)
    for key in sorted(a.keys() | b.keys()):
        if a.get(key) != b.get(key):
            return f"{key} = {a.get(key)!r} (the run has {b.get(key)!r})"
    return None


def check_resume(out: Path, stages: tuple[str, ...], ds) -> None:
    """Refuse to resume `out` with other stages or on other data than it started with, naming the difference.

    Runs made before the start record existed carry none; a finished one's manifest.json is checked instead.
    """
    record_path = out / RUN_RECORD
    if record_path.is_file():
        record = json.loads(record_path.read_text())
    elif (out / "manifest.json").is_file():
        record = json.loads((out / "manifest.json").read_text())
    else:
        return
    if record.get("stages") and list(record["stages"]) != list(stages):
        raise UserError(f"{out}: --resume with stages {', '.join(stages)}, but the run trains "
                        f"{', '.join(record['stages'])}; use the command that started it")
    was = record.get("dataset", {})
    now = {"fingerprint": ds.fingerprint, "content": content_fingerprint(ds), "split_hashes": ds.split_hashes()}
    where = f"--data {ds.root}, the run started on {was.get('root')}"
    if was.get("fingerprint") != now["fingerprint"]:
        raise UserError(f"{out}: --resume on another data set (image paths or labels differ: fingerprint "
                        f"{now['fingerprint']}, the run has {was.get('fingerprint')}; {where})")
    if "content" in was and was["content"] != now["content"]:
        raise UserError(f"{out}: --resume on another data set (same paths, other image content: "
                        f"{now['content']}, the run has {was['content']}; {where})")
    for role, value in now["split_hashes"].items():
        if was.get("split_hashes", {}).get(role) != value:
            raise UserError(f"{out}: --resume with another split: the {role} images differ from the run's ({where})")
