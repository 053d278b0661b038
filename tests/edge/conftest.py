"""A tiny trained cascade and flat run, exported once per session.

The real registered backbones have ~200-240 layers and each TFLite conversion of them takes 30-60 s on this
machine even at 32-64 px, so the end-to-end run uses `EdgeTinyNet`, a ~30-layer test-only backbone built from
the same kinds of layers as the real ones (Rescaling stem, Conv/Depthwise + BatchNorm + ReLU6, a
squeeze-excitation Multiply, an Add, `block*`/`top_*` names so two top blocks can be unfrozen). It is
registered only while `train_models` builds it and removed afterwards, so tests that loop over the registry
never see it. The real backbones' quantization is tested in test_qat.py without conversion.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from neurocascade.data.phantoms import write_phantom_dataset
from neurocascade.config import load_config

TINY = "EdgeTinyNet"
TINY_EXTRA = "EdgeTinyNet48"  # the same layers at a native 48 px: an extra backbone the image is resized for
EXPORT_SETTINGS = ["export.qat_epochs=1", "export.qat_warmup_batches=4", "export.representative_samples=16"]
TRAIN_SETTINGS = [f"model.backbone={TINY!r}".replace("'", '"'), "train.phase1_epochs=2", "train.phase2_epochs=1"]


def tiny_backbone(inputs, weights):
    from neurocascade.tf import keras

    L = keras.layers
    x = L.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="stem_rescaling")(inputs)
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_activation")(x)
    # block1a: depthwise + squeeze-excitation (GAP, Reshape, two 1x1 convs, Multiply) + project + residual
    skip = x
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="block1a_dwconv")(x)
    x = L.BatchNormalization(name="block1a_bn")(x)
    x = L.ReLU(6.0, name="block1a_activation")(x)
    se = L.GlobalAveragePooling2D(name="block1a_se_squeeze")(x)
    se = L.Reshape((1, 1, 8), name="block1a_se_reshape")(se)
    se = L.Conv2D(4, 1, activation="relu", name="block1a_se_reduce")(se)
    se = L.Conv2D(8, 1, activation="sigmoid", name="block1a_se_expand")(se)
    x = L.Multiply(name="block1a_se_excite")([x, se])
    x = L.Conv2D(8, 1, use_bias=False, name="block1a_project_conv")(x)
    x = L.BatchNormalization(name="block1a_project_bn")(x)
    x = L.Add(name="block1a_add")([x, skip])
    # block2a: strided expansion
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="block2a_conv")(x)
    x = L.BatchNormalization(name="block2a_bn")(x)
    x = L.ReLU(6.0, name="block2a_activation")(x)
    x = L.Conv2D(24, 1, use_bias=False, name="top_conv")(x)
    x = L.BatchNormalization(name="top_bn")(x)
    return L.ReLU(6.0, name="top_activation")(x)


def tiny_classifier(n_classes: int = 3, size: int = 32):
    """The tiny backbone with the real head (`neurocascade.models.head.add_head`), like `build_classifier` builds."""
    from neurocascade.models.head import add_head
    from neurocascade.tf import keras

    inputs = keras.Input((size, size, 3), name="image")
    return keras.Model(inputs, add_head(tiny_backbone(inputs, None), n_classes, 8, 0.3))


@pytest.fixture
def make_tiny_classifier():
    return tiny_classifier


@contextlib.contextmanager
def tiny_registered():
    from neurocascade.models.registry import BACKBONES, get_backbone, register_backbone

    get_backbone("EfficientNetB0")  # the built-in backbones first
    register_backbone(TINY, default_size=32)(tiny_backbone)
    register_backbone(TINY_EXTRA, default_size=48)(tiny_backbone)
    try:
        yield
    finally:
        BACKBONES.pop(TINY, None)
        BACKBONES.pop(TINY_EXTRA, None)


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edge-phantoms") / "ds"
    write_phantom_dataset(root, 12, 64, 0, 0.25, 0.2)
    return root


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, test_config_path, phantom_root) -> dict[str, Path]:
    """{"cascade": run dir, "flat": run dir}, trained on the phantoms with the tiny backbone (shared cache)."""
    from neurocascade.hierarchy.run import train_models

    cfg = load_config(test_config_path, TRAIN_SETTINGS + EXPORT_SETTINGS)
    base = tmp_path_factory.mktemp("edge-runs")
    runs = {"cascade": base / "cascade", "flat": base / "flat"}
    with tiny_registered():
        train_models(cfg, ("gate", "subtype"), runs["cascade"], data=str(phantom_root), cache_root=base / "cache")
        train_models(cfg, ("flat",), runs["flat"], data=str(phantom_root), cache_root=base / "cache")
    return runs


@pytest.fixture
def train_tiny_flat(test_config_path):
    """`train_tiny_flat(run, data, *settings)`: a flat model on the tiny backbone, with extra --set settings."""
    from neurocascade.hierarchy.run import train_models

    def train(run: Path, data: Path, *settings: str) -> None:
        cfg = load_config(test_config_path, TRAIN_SETTINGS + EXPORT_SETTINGS + list(settings))
        with tiny_registered():
            train_models(cfg, ("flat",), run, data=str(data), cache_root=run.parent / "cache")

    return train


def reseal_export(folder: Path) -> None:
    """Make an edited export folder self-consistent again, as only a deliberate forger would: every readable
    sidecar's model sha256s set to the files' and the manifest rewritten (so tests reach the checks behind them)."""
    import json

    from neurocascade.edge.manifest import read_manifest, write_manifest
    from neurocascade.io import sha256_file

    manifest = read_manifest(folder)
    for stage in manifest.stages:
        path = folder / f"{stage}.json"
        try:
            sidecar = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for entry in sidecar.get("models", {}).values():
            if isinstance(entry, dict) and "sha256" in entry and (folder / str(entry.get("file"))).is_file():
                entry["sha256"] = sha256_file(folder / entry["file"])
        path.write_text(json.dumps(sidecar))
    write_manifest(folder, manifest.run, manifest.kind, manifest.stages, manifest.created)


@pytest.fixture
def reseal():
    """`reseal(export_folder)`: see `reseal_export`."""
    return reseal_export


@pytest.fixture(scope="session")
def exported(trained_runs) -> dict[str, tuple[Path, dict]]:
    """{"cascade"/"flat": (run dir, agreement report)}: the cascade exported with QAT, the flat model post-training."""
    from neurocascade.edge.export import export_run

    return {
        "cascade": (trained_runs["cascade"], export_run(trained_runs["cascade"])),
        "flat": (trained_runs["flat"], export_run(trained_runs["flat"], overrides=["export.qat=false"])),
    }
