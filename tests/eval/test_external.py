"""`eval --external` on tiny trained runs: planted exact, mirrored and DICOM copies of training images show in
the copy audit, the no-copy metrics leave them out, the run's own reports are untouched, mistakes are one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from neurocascade import cli
from neurocascade.data.dataset import load_dataset
from neurocascade.data.phantoms import CLASS_DIRS, write_phantom_dataset
from neurocascade.eval.external import evaluate_external
from neurocascade.config import load_config


def _asymmetry(scan) -> int:
    return int(np.bitwise_count(scan.dhash ^ scan.dhash_mirror).sum())


@pytest.fixture(scope="module")
def planted(tiny_runs, tmp_path_factory) -> dict:
    """Fresh phantoms in class folders (another seed), plus an exact copy and a mirrored copy of training images
    and a twin of a fresh image (a copy within the external set)."""
    cfg = load_config(tiny_runs["cascade"] / "config.toml")
    base = tmp_path_factory.mktemp("external")
    write_phantom_dataset(base / "fresh", 6, 64, seed=7, test_fraction=0.5, copies_fraction=0.0)
    root = base / "fresh" / "Testing"
    ds = load_dataset(cfg, str(tiny_runs["data"]), pixels=False)
    twins = {k for pair in ds.pairs if pair.kind != "none" for k in (pair.i, pair.j)}
    train = [k for k in ds.indices("train") if k not in twins]  # sources with a single training image to match
    # The most left-right asymmetric training image, so that mirrored it is a copy only once mirrored back.
    mirrored = max(train, key=lambda k: _asymmetry(ds.scans[k]))
    assert _asymmetry(ds.scans[mirrored]) > cfg.audit.near_threshold, "phantoms too symmetric for this test"
    exact = next(k for k in train if k != mirrored)

    def rel(k: int) -> str:
        return Path(ds.samples[k].path).relative_to(ds.root).as_posix()

    exact_dst = root / CLASS_DIRS[ds.samples[exact].label] / "copied.png"
    shutil.copy(ds.samples[exact].path, exact_dst)
    mirror_dst = root / CLASS_DIRS[ds.samples[mirrored].label] / "mirrored.png"
    ImageOps.mirror(Image.open(ds.samples[mirrored].path)).save(mirror_dst)
    fresh = sorted((root / "meningioma").glob("*.png"))[0]
    shutil.copy(fresh, fresh.with_name("twin.png"))
    return {
        "root": root,
        "cfg": cfg,
        "dataset": ds,
        "rel": rel,
        "sources": train,
        "exact": (exact_dst.relative_to(root).as_posix(), rel(exact)),
        "mirror": (mirror_dst.relative_to(root).as_posix(), rel(mirrored)),
    }


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _accuracy(rows: list[dict], model: str) -> float:
    return round(sum(r[f"{model}_label"] == r["true_label"] for r in rows) / len(rows), 4)


def _eval_snapshot(run: Path) -> dict[str, int]:
    """Every file of the run's reports outside external-*/, with its modification time."""
    folder = run / "eval"
    return (
        {
            str(p): p.stat().st_mtime_ns
            for p in folder.rglob("*")
            if p.is_file() and not p.relative_to(folder).parts[0].startswith("external-")
        }
        if folder.is_dir()
        else {}
    )


def test_copies_are_audited_and_left_out_of_the_no_copy_metrics(tiny_runs, planted):
    cascade, flat = tiny_runs["cascade"], tiny_runs["flat"]
    before = _eval_snapshot(cascade)
    result = CliRunner().invoke(
        cli.main,
        ["eval", "--run", str(cascade), "--flat", str(flat), "--external", str(planted["root"])],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = cascade / "eval" / "external-Testing-keras"
    for name in (
        "report.json",
        "report-no-copy.json",
        "copy-audit.json",
        "report.md",
        "report.html",
        "predictions.csv",
        "confusion.png",
        "reliability.png",
    ):
        assert (out / name).is_file(), name
    assert _eval_snapshot(cascade) == before  # the run's own reports are not touched

    rows = _rows(out / "predictions.csv")
    by_path = {r["path"]: r for r in rows}
    for kind in ("exact", "mirror"):
        external, training = planted[kind]
        assert by_path[external]["copy_in_training"] == kind
        assert by_path[external]["training_copy"] == training

    report = json.loads((out / "report.json").read_text())
    audit = json.loads((out / "copy-audit.json").read_text())
    free = [r for r in rows if r["copy_in_training"] == "none"]
    copied = {r["path"] for r in rows} - {r["path"] for r in free}
    assert {planted["exact"][0], planted["mirror"][0]} <= copied
    assert {c["path"] for c in audit["copies"]} == copied
    totals = audit["external_with_copy_in_train"]["all"]
    assert totals["images"] == len(rows) == report["meta"]["images"]
    assert totals["exact"] >= 1 and totals["mirror"] >= 1 and totals["none"] == len(free) > 0
    assert audit["training_images"] == len(planted["dataset"].indices("train"))
    assert by_path["meningioma/twin.png"]["copy_in_training"] == "none"
    assert audit["copy_pairs_within_external"]["exact"] >= 1

    no_copy = json.loads((out / "report-no-copy.json").read_text())
    for model in ("cascade", "flat"):  # each set of metrics is computed on exactly its images
        assert no_copy["models"][model]["n"] == len(free)
        assert no_copy["models"][model]["metrics"]["accuracy"] == _accuracy(free, model)
        assert report["models"][model]["n"] == len(rows)
        assert report["models"][model]["metrics"]["accuracy"] == _accuracy(rows, model)
    assert no_copy["comparison"] is not None and report["comparison"] is not None

    markdown = (out / "report.md").read_text()
    assert "## Copy audit against the training images" in markdown
    assert f"cascade · no copy (n = {len(free)})" in markdown and f"flat · all images (n = {len(rows)})" in markdown
    assert f"`{planted['mirror'][0]}`" in markdown and "pairs of external images are copies of each other" in markdown
    assert "External images with a copy in training" in result.output and "no copy" in result.output


def test_a_manifest_with_some_classes_and_a_dicom_copy(tiny_runs, planted, tmp_path):
    """A CSV manifest need not hold every class; a DICOM of a training image's pixels is a near copy (0 bits)."""
    from synthetic import write_dicom

    ds, rel = planted["dataset"], planted["rel"]
    source = next(k for k in planted["sources"] if ds.samples[k].label == "glioma")
    write_dicom(tmp_path / "scans" / "a.dcm", np.asarray(Image.open(ds.samples[source].path).convert("L")))
    fresh = sorted((planted["root"] / "notumor").glob("no_tumor_*.png"))[:3]
    for k, png in enumerate(fresh):
        shutil.copy(png, tmp_path / "scans" / f"n{k}.png")
    lines = ["path,label", "scans/a.dcm,glioma", *(f"scans/n{k}.png,no_tumor" for k in range(len(fresh)))]
    (tmp_path / "site-b.csv").write_text("\n".join(lines) + "\n")

    report, out = evaluate_external(tiny_runs["cascade"], tmp_path / "site-b.csv")
    assert out == tiny_runs["cascade"] / "eval" / "external-site-b-keras"
    rows = {r["path"]: r for r in _rows(out / "predictions.csv")}
    assert (
        rows["scans/a.dcm"]["copy_in_training"],
        rows["scans/a.dcm"]["training_copy"],
        rows["scans/a.dcm"]["copy_distance_bits"],
    ) == ("near", rel(source), "0")
    assert report["copy_audit"]["external_with_copy_in_train"]["meningioma"]["images"] == 0
    assert report["no_copy"]["models"]["cascade"]["metrics"]["support_glioma"] == 0


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown-class", "unknown class 'astrocytoma'"),
        ("empty-class", "class folder has no .jpg/.jpeg/.png/.dcm images"),
        ("no-class-folders", "no class folders"),
        ("unknown-label", "unknown class 'astrocytoma'"),
        ("missing", "external data set does not exist"),
    ],
)
def test_mistakes_in_the_external_set_are_one_line(tiny_runs, tmp_path, case, message):
    some_png = next((tiny_runs["data"] / "Testing" / "glioma").glob("*.png"))
    target = tmp_path / "ext"
    if case in ("unknown-class", "empty-class"):
        (target / "glioma").mkdir(parents=True)
        shutil.copy(some_png, target / "glioma")
        (target / ("astrocytoma" if case == "unknown-class" else "notumor")).mkdir()
        if case == "unknown-class":
            shutil.copy(some_png, target / "astrocytoma")
    elif case == "no-class-folders":
        target.mkdir()
        shutil.copy(some_png, target)
    elif case == "unknown-label":
        shutil.copy(some_png, tmp_path / "a.png")
        target = tmp_path / "labels.csv"
        target.write_text("path,label\na.png,astrocytoma\n")
    result = CliRunner().invoke(cli.main, ["eval", "--run", str(tiny_runs["cascade"]), "--external", str(target)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "val"], "--split chooses a split of the run's own data"),
        (["--data", "no/such/data"], "its training data no/such/data is not there"),
    ],
)
def test_options_that_do_not_fit_are_one_line(tiny_runs, planted, args, message):
    result = CliRunner().invoke(
        cli.main,
        [
            "eval",
            "--run",
            str(tiny_runs["cascade"]),
            "--external",
            str(planted["root"]),
            "--external-name",
            "refused",
            *args,
        ],
    )
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tiny_runs["cascade"] / "eval" / "external-refused-keras").exists()


def test_another_set_of_the_same_name_is_not_overwritten(tiny_runs, planted):
    out = tiny_runs["cascade"] / "eval" / "external-clash-keras"
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps({"meta": {"dataset": "/elsewhere/clash"}}))
    result = CliRunner().invoke(
        cli.main,
        ["eval", "--run", str(tiny_runs["cascade"]), "--external", str(planted["root"]), "--external-name", "clash"],
    )
    assert result.exit_code == 2, result.output
    assert "holds the report of /elsewhere/clash" in result.output and "--external-name" in result.output
    shutil.rmtree(out)
