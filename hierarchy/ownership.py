"""A run folder is one writer's, and knows what it is (issue 14, item 3).

`claim_run` takes the folder's lock before anything is checked or written: `<run>/.lock`, held with an
exclusive `flock` for as long as the training runs, so a second `train-cascade --out <run>` started a moment
later is refused with the holder's pid instead of writing into the same folder. The kernel drops the lock
when its process dies (Ctrl-C, kill -9, a crash), so a lock file left behind never blocks `--resume`; the
next owner takes it over and rewrites the pid in it.

`run.json` is the run's start record, written before the first epoch: stages, the config (as TOML), the
data set's fingerprint (paths and labels), its content fingerprint (every image's sha256) and the split
hashes; `dataset.root` is what was loaded (the folder, or the CSV manifest itself), so eval and export can
load it again. `images.csv` beside it lists every image's path, label and sha256, so a refusal can say how
many images changed (`image_difference`), eval's and export's (`check_files_unchanged`) as well as
`--resume`'s. `--resume` compares the config it is given and the data it loads with it and refuses, naming
the difference. `manifest.json` is still written only at the end: its presence means "finished".

    with claim_run(out, resume=False):
        ...
        run_record(cfg, ds, stages).write(out / RUN_RECORD)
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import io
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from neurocascade.hierarchy.artifacts import RunManifest, RunRecord
from neurocascade.config import Config
from neurocascade.errors import UserError
from neurocascade.io import atomic_write_text

LOCK = ".lock"
RUN_RECORD = "run.json"
IMAGE_LIST = "images.csv"
IMAGE_COLUMNS = ("path", "label", "sha256")


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
                raise UserError(
                    f"{path.parent}: another training is writing this run ({_holder(path)}); "
                    "wait for it to finish or choose another --out"
                ) from None
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


def image_rows(ds) -> list[tuple[str, str, str]]:
    """(relative path, label, file sha256) of every readable image, sorted: the data's content, per image.

    The sha256 is the one the loader computed while decoding (`FileScan.sha256`): no second pass over the files.
    """
    return sorted(
        (Path(s.path).relative_to(ds.root).as_posix(), s.label, scan.sha256) for s, scan in zip(ds.samples, ds.scans)
    )


def content_fingerprint(ds) -> str:
    """A short hash of every readable image's relative path, label and file sha256: the data's content."""
    h = hashlib.sha256()
    for rel, label, sha in image_rows(ds):
        h.update(f"{rel}\t{label}\t{sha}\n".encode())
    return h.hexdigest()[:16]


def dataset_record(ds) -> dict:
    """What run.json and manifest.json say about the data: where to reload it (`root`: the folder or the CSV
    manifest given), its paths and labels, its content and its split."""
    return {
        "root": ds.source,
        "fingerprint": ds.fingerprint,
        "content": content_fingerprint(ds),
        "split_hashes": ds.split_hashes(),
    }


def write_image_list(out: Path, ds) -> None:
    """`<run>/images.csv` (path,label,sha256): lets eval, export and resume say how many images changed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(IMAGE_COLUMNS)
    writer.writerows(image_rows(ds))
    atomic_write_text(out / IMAGE_LIST, buf.getvalue())


def read_image_list(run: Path) -> list[tuple[str, str, str]] | None:
    """The run's `images.csv` rows; None for a run made before runs recorded them."""
    path = run / IMAGE_LIST
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        if tuple(next(reader, ())) != IMAGE_COLUMNS:
            raise UserError(f"{path}: not a run's image list (expected the columns {','.join(IMAGE_COLUMNS)})")
        return [(row[0], row[1], row[2]) for row in reader if len(row) == 3]


def _count(n: int, what: str) -> str:
    return f"{n} image{'s' if n != 1 else ''} {what}"


def image_difference(recorded: list[tuple[str, str, str]], now: list[tuple[str, str, str]]) -> str | None:
    """How `now` differs from `recorded` ((path, label, sha256) rows), counted per kind; None when the same.

    Images swapped across classes keep their paths and labels: only their content tells, and then the same
    pixels carry another label than they were trained with.
    """
    was = {path: (label, sha) for path, label, sha in recorded}
    labels_of: dict[str, set[str]] = {}
    for _, label, sha in recorded:
        labels_of.setdefault(sha, set()).add(label)
    is_ = {path: (label, sha) for path, label, sha in now}
    common = was.keys() & is_.keys()
    counts = [
        (sum(was[p][1] != is_[p][1] for p in common), "with other content under the same path"),
        (sum(was[p][0] != is_[p][0] for p in common), "with another label under the same path"),
        (
            sum(sha in labels_of and label not in labels_of[sha] for _, label, sha in now),
            "holding pixels the run was trained on under another label",
        ),
        (len(was.keys() - is_.keys()), "of the run missing"),
        (len(is_.keys() - was.keys()), "not in the run"),
    ]
    parts = [_count(n, what) for n, what in counts if n]
    return ", ".join(parts) if parts else None


def run_record(cfg: Config, ds, stages: tuple[str, ...]) -> RunRecord:
    """The start record: what this run is (its config, data and split), written before its first epoch."""
    from neurocascade.config import to_toml

    return RunRecord(
        tuple(stages), to_toml(cfg), dataset_record(ds), {"pid": os.getpid(), "host": socket.gethostname()}
    )


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
    record = RunRecord.read_if_exists(out / RUN_RECORD) or RunManifest.read_if_exists(out / "manifest.json")
    if record is None:
        return
    if list(record.stages) != list(stages):
        raise UserError(
            f"{out}: --resume with stages {', '.join(stages)}, but the run trains "
            f"{', '.join(record.stages)}; use the command that started it"
        )
    if diff := data_difference(out, record.dataset, ds):
        raise UserError(f"{out}: --resume {diff}")


def data_difference(run: Path, was: dict, ds) -> str | None:
    """How `ds` differs from the data and split run `run` recorded (`was`: its dataset record), None if it does not:
    "on another data set (...)" or "with another split: ..."."""
    now = {"fingerprint": ds.fingerprint, "content": content_fingerprint(ds), "split_hashes": ds.split_hashes()}
    where = f"--data {ds.source}, the run started on {was.get('root')}"
    recorded = read_image_list(run)
    if recorded is not None and (diff := image_difference(recorded, image_rows(ds))):
        where = f"{diff}; {where}"
    if was.get("fingerprint") != now["fingerprint"]:
        return (
            f"on another data set (image paths or labels differ: fingerprint "
            f"{now['fingerprint']}, the run has {was.get('fingerprint')}; {where})"
        )
    if "content" in was and was["content"] != now["content"]:
        return (
            f"on another data set (same paths, other image content: "
            f"{now['content']}, the run has {was['content']}; {where})"
        )
    for role, value in now["split_hashes"].items():
        if was.get("split_hashes", {}).get(role) != value:
            return f"with another split: the {role} images differ from the run's ({where})"
    return None


def check_files_unchanged(run: Path, data: str | None = None, warn: Callable[[str], None] | None = None) -> None:
    """Before an export: refuse data whose files hold other bytes, or other labels, than the run recorded.

    The export itself checks paths, labels and the split but not the pixels it calibrates and checks on; this
    hashes the recorded files' bytes (no decoding), where the export will look for them: `data`, else the
    config's `data.manifest`, else the run's recorded dataset, as `neurocascade.edge.export` does. A run made before runs
    recorded their images cannot be checked: `warn` is told so.
    """
    from neurocascade.data.dicom import content_sha256
    from neurocascade.data.layout import discover
    from neurocascade.config import load_config

    if not (run / "manifest.json").is_file() or not (run / "config.toml").is_file():
        return  # not a finished run: the export says so
    recorded = read_image_list(run)
    if recorded is None:
        if warn is not None:
            warn(
                f"{run}: the run records no per-image hashes (made before runs did): the export cannot check "
                "that the images are the ones it was trained on"
            )
        return
    manifest = RunManifest.read(run / "manifest.json")
    source = Path(data or load_config(run / "config.toml").data.manifest or manifest.dataset["root"])
    base = source.parent if source.is_file() else source
    listed = {path for path, _, _ in recorded}
    now = []
    for sample in discover(source):
        rel = Path(sample.path).relative_to(base).as_posix()
        if rel in listed:  # files the run skipped as unreadable are the export's to skip again
            now.append((rel, sample.label, content_sha256(sample.path)))
    if diff := image_difference(recorded, now):
        raise UserError(f"{run}: {source} is not the data the run was trained on ({diff}); pass --data with that data")
