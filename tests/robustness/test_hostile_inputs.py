"""The lower cases of issue 14 (item 7): each a one-line error or a warning, with nothing left half-made.

Before: a read-only output folder was a PermissionError traceback (edge-bench's only after the whole
benchmark); `audit-data --force --out <a run>` overwrote the run's config; a 160 KB PNG of 13000² px cost
1.75 GB in predict; `data.clahe_clip=nan` was accepted; `batch_size=99999999999999999999` overflowed after
the run folder was made; a bad weights file left a half-made run folder that blocked the re-run; `--threads
999` on 2 cores ran 30× slower without a word; `predict --threads 0` blamed the model file; `make-phantoms
--seed -1` and `edge-bench --max-images 0` were tracebacks; dropped images were only a count in manifest.json.
"""

from __future__ import annotations

import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from neurocascade import cli
from neurocascade.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = str(REPO / "configs" / "test.toml")


class Reached(Exception):
    """Raised by a stand-in for the long step a check must come before."""


def _reached(*args, **kwargs):
    raise Reached


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit status 2, exactly one line on the output, no traceback, and every fragment in it."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("data.clahe_clip=nan", "data.clahe_clip = nan: expected a finite number"),
        ("train.phase1_lr=inf", "train.phase1_lr = inf: expected a finite number"),
        ("data.clahe_clip=-inf", "expected a finite number"),
        ("train.batch_size=99999999999999999999", "train.batch_size = 99999999999999999999: too large"),
        ("train.batch_size=100000", "train.batch_size: must be in [1, 4096]"),
        ("train.seed=-1", "train.seed: must be in [0, 4294967295]"),
        ("data.split_seed=-2", "data.split_seed: must be in [0, 4294967295]"),
        ("eval.seed=4294967296", "eval.seed = 4294967296: too large"),
    ],
)
def test_a_bad_number_in_the_config_is_refused_before_the_run_folder_exists(tmp_path, setting, fragment):
    run = tmp_path / "run"
    result = invoke("train-flat", "--config", TEST_CONFIG, "--data", str(tmp_path), "--out", str(run), "--set", setting)
    assert_one_line_error(result, fragment)
    assert not run.exists()


def test_make_phantoms_with_a_negative_seed_is_one_line(tmp_path):
    out = tmp_path / "phantoms"
    result = invoke("make-phantoms", "--out", str(out), "--seed", "-1", "--config", TEST_CONFIG)
    assert_one_line_error(result, "phantoms.seed: must be in [0, 4294967295]")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ threads


def test_predict_with_zero_threads_blames_the_threads(tmp_path):
    image = tmp_path / "scan.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(image)
    for threads in ("0", "-3"):
        result = invoke("predict", "--models", str(tmp_path), "--threads", threads, str(image))
        assert_one_line_error(result, f"--threads {threads}: the number of LiteRT threads must be at least 1")
        assert "model" not in result.output


def test_the_runtime_refuses_zero_threads_before_litert_sees_the_model(tmp_path):
    from neurocascade.edge.runtime import load_model

    model = tmp_path / "gate.int8.tflite"
    model.write_bytes(b"not a model")
    with pytest.raises(UserError, match="--threads 0: the number of LiteRT threads"):
        load_model(model, num_threads=0)


def test_more_threads_than_cores_is_a_warning_naming_the_cores():
    from neurocascade.edge.runtime import check_threads

    assert check_threads(None) is None and check_threads(2, cores=2) is None
    message = check_threads(999, cores=2)
    assert message.startswith("--threads 999 on 2 core(s)") and "use at most 2" in message


def test_edge_bench_warns_about_threads_beyond_the_cores_before_benchmarking(tmp_path, monkeypatch):
    import neurocascade.edge.bench
    from neurocascade.edge.cpuinfo import available_cpus

    monkeypatch.setattr(neurocascade.edge.bench, "run_bench", _reached)
    cores = len(available_cpus())
    result = CliRunner().invoke(
        cli.main,
        ["edge-bench", "--run", str(tmp_path), "--threads", f"1,{cores + 997}", "--json", str(tmp_path / "bench.json")],
    )
    assert isinstance(result.exception, Reached)
    assert f"warning: --threads {cores + 997} on {cores} core(s)" in result.output


def test_edge_bench_with_zero_max_images_is_one_line(tmp_path):
    result = invoke("edge-bench", "--run", str(tmp_path), "--max-images", "0", "--images", str(tmp_path))
    assert_one_line_error(result, "--max-images 0: must be at least 1")


# ------------------------------------------------------------------------------------- outputs that exist


def test_edge_bench_checks_it_can_write_its_report_before_benchmarking(tmp_path, monkeypatch):
    import neurocascade.edge.bench

    monkeypatch.setattr(neurocascade.edge.bench, "run_bench", _reached)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the report's folder should be")
    result = invoke("edge-bench", "--run", str(tmp_path), "--json", str(blocker / "bench.json"))
    assert_one_line_error(result, f"{blocker / 'bench.json'}: cannot write in {blocker}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch):
    import neurocascade.edge.bench

    monkeypatch.setattr(neurocascade.edge.bench, "run_bench", _reached)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = invoke("edge-bench", "--run", str(tmp_path), "--json", str(locked / "bench.json"))
    assert_one_line_error(result, "cannot write in")


def test_a_permission_error_anywhere_is_one_line(tmp_path, phantom_folder, monkeypatch):
    """Where no command checks first (root cannot be kept out of a folder here, so the error is injected)."""

    def denied(path, force=False):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cli, "fresh_dir", denied)
    result = invoke("audit-data", str(phantom_folder), "--out", str(tmp_path / "report"), "--config", TEST_CONFIG)
    assert_one_line_error(result, f"{tmp_path / 'report'}: Permission denied")


def test_audit_data_force_never_overwrites_a_training_run(tmp_path, phantom_folder, finished_run):
    run = finished_run(tmp_path / "run", phantom_folder)
    config = (run / "config.toml").read_text()
    result = invoke("audit-data", str(phantom_folder), "--force", "--out", str(run), "--config", TEST_CONFIG)
    assert_one_line_error(result, f"{run}: is a training run")
    assert (run / "config.toml").read_text() == config and not (run / "audit.json").exists()


# -------------------------------------------------------------------------------------------- huge images


def _png_header_and_zeros(path: Path, side: int) -> Path:
    """A grey PNG of side² black pixels, compressed as it is written (the test never holds side² bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", body)
        + chunk(b"IEND", b"")
    )
    return path


def test_predict_refuses_a_huge_png_from_its_header(tmp_path):
    from neurocascade.edge.preprocess import BadImage, MAX_PIXELS, load_image

    path = _png_header_and_zeros(tmp_path / "bomb.png", 13000)
    assert path.stat().st_size < 1_000_000 and 13000**2 > MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even Pillow's DecompressionBombWarning on the console
        with pytest.raises(BadImage, match=r"bomb.png: too large \(13000x13000 px; at most") as exc:
            load_image(path, 32)
    assert "\n" not in str(exc.value)


def test_predict_decodes_a_huge_jpeg_at_a_reduced_scale(tmp_path, monkeypatch):
    from neurocascade.edge import preprocess

    gray = np.zeros((1600, 2000), np.uint8)
    gray[400:1200, 500:1500] = 200
    path = tmp_path / "big.jpg"
    Image.fromarray(gray).save(path, quality=95)
    monkeypatch.setattr(preprocess, "MAX_PIXELS", 1_000_000)
    decoded = preprocess.read_gray(path)
    assert decoded.shape == (800, 1000)  # libjpeg decoded it at 1/2 scale: the full size never existed
    x = preprocess.load_image(path, 32)
    assert x.shape == (32, 32, 3) and x.max() > 150


def test_the_row_blocked_resize_equals_the_one_product(monkeypatch):
    from neurocascade.edge import preprocess

    rng = np.random.default_rng(0)
    square = rng.integers(0, 256, (700, 700), dtype=np.uint8)
    whole = preprocess.resize_square(square, 64)
    monkeypatch.setattr(preprocess, "RESIZE_ROWS", 128)
    assert np.abs(preprocess.resize_square(square, 64).astype(int) - whole).max() <= 1


# -------------------------------------------------------------------------------------- runs and their data


def test_a_bad_weights_file_leaves_no_run_folder(tmp_path, phantom_folder, small_cfg):
    from neurocascade.hierarchy.run import train_models
    from neurocascade.config import load_config

    weights = tmp_path / "weights.h5"
    weights.write_bytes(os.urandom(4096))
    cfg = load_config(TEST_CONFIG, [f'model.weights="{weights}"'])
    run = tmp_path / "run"
    with pytest.raises(UserError, match=f"{weights}: not usable as EfficientNetB0 weights") as exc:
        train_models(cfg, ("flat",), run, data=str(phantom_folder), cache_root=tmp_path / "cache")
    assert "\n" not in str(exc.value)
    assert not run.exists()  # nothing blocks the re-run with a good file


def test_unreadable_images_are_named_on_the_console(tmp_path, phantom_folder, small_cfg, capsys):
    from neurocascade.data.dataset import load_dataset

    data = tmp_path / "data"
    shutil.copytree(phantom_folder, data)
    bad = sorted((data / "Training" / "glioma").glob("*.png"))[:4]
    for path in bad:
        path.write_bytes(b"\x89PNG\r\n\x1a\nthen nothing")
    messages: list[str] = []
    ds = load_dataset(small_cfg, str(data), pixels=False, warn=messages.append)
    assert len(ds.skipped) == 4 and len(messages) == 1
    message = messages[0]
    assert "skipped 4 of" in message and "and 1 more" in message and "\n" not in message
    for path in bad[:3]:
        assert str(path.relative_to(data)) in message
    load_dataset(small_cfg, str(data), pixels=False)  # the default: a warning line on stderr
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and str(bad[0].relative_to(data)) in err
