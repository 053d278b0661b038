"""Every registered backbone builds into one flat classifier at a tiny input; preprocessing matches Keras'.

Nothing here downloads: weights are None, or a random-weights file written to tmp_path in the backbone's
Keras layout (standing in for the ImageNet file, whose preprocessing path is what is checked).
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocascade.models.build import backbone_blocks, build_classifier, set_trainable_top_blocks
from neurocascade.models.registry import BACKBONES, block_name, get_backbone
from neurocascade.models.weights import WeightsSource
from neurocascade.config import ModelConfig
from neurocascade.tf import keras

get_backbone("EfficientNetB2")  # imports models.backbones, which registers every backbone
N_CLASSES, UNITS, SIZE = 3, 8, 32
NONE = WeightsSource("none")

# Feature-extractor parameters of the Keras applications (include_top=False); the preprocessing added here
# has no weights, so a classifier has exactly these plus its head's.
KERAS_PARAMS = {
    "EfficientNetB0": 4_049_571,
    "EfficientNetB2": 7_768_569,
    "EfficientNetV2S": 20_331_360,
    "ResNet50": 23_587_712,
    "DenseNet121": 7_037_504,
}


def images(size: int, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def run(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """One eager inference call: much faster than `predict`, which traces a tf.function per model."""
    return model(x, training=False).numpy()


def classifier(name: str, size: int = SIZE) -> keras.Model:
    return build_classifier(ModelConfig(backbone=name, head_units=UNITS), N_CLASSES, size, NONE)


@pytest.fixture(scope="module", params=sorted(BACKBONES))
def built(request):
    return request.param, classifier(request.param)


def test_builds_flat_softmax_classifier(built):
    name, model = built
    probs = run(model, images(SIZE))
    assert probs.shape == (2, N_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert model.output.dtype == "float32"


def test_parameter_count(built):
    name, model = built
    if name not in KERAS_PARAMS:
        pytest.skip(f"{name} is not a Keras application")
    channels = model.get_layer("head_gap").input_shape[-1]
    head = 4 * channels + (channels * UNITS + UNITS) + (UNITS * N_CLASSES + N_CLASSES)  # BN, dense, out
    assert model.count_params() == KERAS_PARAMS[name] + head


def test_config_round_trip(built):
    name, model = built
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    x = images(SIZE, seed=1)
    for a, b in zip(_stem_and_output(clone, x), _stem_and_output(model, x)):  # the stem: preprocessing shows
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def _stem_and_output(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    probe = keras.Model(model.input, [layer.output for layer in model.layers[1:6]] + [model.output])
    return [a.numpy() for a in probe(x, training=False)]


def test_two_input_sizes(built):
    name, small = built
    large = classifier(name, 2 * SIZE)
    assert run(large, images(2 * SIZE)).shape == (2, N_CLASSES)
    (_, h, w, c), (_, h2, w2, c2) = small.get_layer("head_gap").input_shape, large.get_layer("head_gap").input_shape
    assert (h2, w2, c2) == (2 * h, 2 * w, c)  # stride-32 feature maps, same width


def test_default_size_and_blocks_registered(built):
    name, model = built
    spec = BACKBONES[name]
    assert spec.default_size >= 224
    blocks = backbone_blocks(model, spec)
    assert len(blocks) >= 10 and len(set(blocks)) == len(blocks)


# --- preprocessing and weight loading: the same function as Keras' own graph ----------------------------


def _save_random_weights(app, path):
    ref = app(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    # non-trivial BN statistics, so that an input-side mistake cannot hide behind them
    for layer in ref.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, var.shape)])
    ref.save_weights(str(path))
    return ref


def _ours(name: str, weights: str) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, BACKBONES[name].build(inputs, weights))


def _outputs(model: keras.Model, early: str, x: np.ndarray) -> list[np.ndarray]:
    """Activations of layer `early` and of the output. Random-weight signals fade with depth (the output is
    then mostly BN offsets), so a preprocessing mistake shows plainly only in the early layer."""
    probe = keras.Model(model.input, [model.get_layer(early).output, model.output])
    return [a.numpy() for a in probe(x, training=False)]


def _assert_close(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=1e-4 * np.abs(e).max())  # float32 rounding through ~100 layers


def test_efficientnet_matches_keras_imagenet_graph(tmp_path, monkeypatch):
    """Keras adds x / sqrt(stddev) only for weights="imagenet"; ours folds it in, from a path or the cache."""
    spec, early, x = BACKBONES["EfficientNetB0"], "block1a_project_bn", images(SIZE)
    path = tmp_path / spec.imagenet_file
    src = _save_random_weights(keras.applications.EfficientNetB0, path)
    norm = next(layer for layer in src.layers if isinstance(layer, keras.layers.Normalization))
    mean, _, count = norm.get_weights()  # the ImageNet file's convention: variance holds the stddev
    norm.set_weights([mean + [0.485, 0.456, 0.406], np.float32([0.229, 0.224, 0.225]), count])
    src.save_weights(str(path))

    fetched = []

    def fake_get_file(fname, origin, cache_subdir="datasets", file_hash=None, **_):
        fetched.append((fname, origin, cache_subdir, file_hash))
        return str(path)

    # Keras' application fetches through its data_utils module; ours through keras.utils
    monkeypatch.setattr("tf_keras.src.utils.data_utils.get_file", fake_get_file)
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    ref = keras.applications.EfficientNetB0(include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3))
    assert "tf.math.multiply" in [layer.name for layer in ref.layers]  # Keras' extra op
    expected = _outputs(ref, early, x)
    # `src` is the graph Keras builds when the same file is given by path: the extra op is missing
    assert np.abs(_outputs(src, early, x)[0] - expected[0]).max() > 0.1 * np.abs(expected[0]).max()

    from_path = _ours("EfficientNetB0", str(path))
    assert not [layer.name for layer in from_path.layers if layer.name.startswith("tf.")]  # no op layers
    _assert_close(_outputs(from_path, early, x), expected)
    _assert_close(_outputs(_ours("EfficientNetB0", "imagenet"), early, x), expected)
    assert fetched == 2 * [
        (
            spec.imagenet_file,
            "https://storage.googleapis.com/keras-applications/" + spec.imagenet_file,
            "models",
            spec.imagenet_md5,
        )
    ]


def test_resnet50_takes_rgb_and_subtracts_the_caffe_mean(tmp_path):
    """Our model on raw 0..255 RGB == Keras' on `preprocess_input(x)` (BGR, mean-free), same weights file."""
    path, early, x = tmp_path / "resnet50.h5", "conv2_block1_out", images(SIZE)
    ref = _save_random_weights(keras.applications.ResNet50, path)
    expected = _outputs(ref, early, keras.applications.resnet50.preprocess_input(x.copy()))
    _assert_close(_outputs(_ours("ResNet50", str(path)), early, x), expected)


def test_densenet121_preprocessing_is_keras_preprocess_input(monkeypatch):
    class Stub:  # stands in for the DenseNet itself, so only the preprocessing layers are built
        def __init__(self, include_top, weights, input_tensor):
            self.output = input_tensor

    monkeypatch.setattr(keras.applications, "DenseNet121", Stub)
    x = images(SIZE)
    np.testing.assert_allclose(
        run(_ours("DenseNet121", None), x), keras.applications.densenet.preprocess_input(x.copy()), atol=1e-5
    )


# --- unfreezing the top blocks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b0():
    return classifier("EfficientNetB0")


def _trainable(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers if layer.trainable}


HEAD = {"head_gap", "head_bn", "head_dense", "head_dropout", "head_out"}


def test_n0_trains_only_the_head(b0):
    set_trainable_top_blocks(b0, BACKBONES["EfficientNetB0"], 0)
    assert _trainable(b0) == HEAD
    head_weights = sum(len(b0.get_layer(n).trainable_weights) for n in HEAD)
    assert len(b0.trainable_weights) == head_weights == 6  # bn gamma/beta, two kernels, two biases


@pytest.mark.parametrize("name", ["EfficientNetB0", "ResNet50"])
def test_n2_unfreezes_the_last_two_blocks_without_bn(name, b0):
    model = b0 if name == "EfficientNetB0" else classifier(name)
    spec = BACKBONES[name]
    last_two = backbone_blocks(model, spec)[-2:]
    set_trainable_top_blocks(model, spec, 2)
    expected = {
        layer.name
        for layer in model.layers
        if block_name(spec, layer.name) in last_two and not isinstance(layer, keras.layers.BatchNormalization)
    }
    assert expected and _trainable(model) == expected | HEAD
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [layer.name for layer in bns if layer.trainable] == ["head_bn"]
    n_weights = sum(len(model.get_layer(n).trainable_weights) for n in expected | HEAD)
    assert len(model.trainable_weights) == n_weights > 6

    set_trainable_top_blocks(model, spec, 0)  # and back: nothing of the backbone stays unfrozen
    assert _trainable(model) == HEAD


def test_more_blocks_than_exist_unfreezes_all_blocks(b0):
    spec = BACKBONES["EfficientNetB0"]
    set_trainable_top_blocks(b0, spec, 1000)
    in_blocks = {
        layer.name
        for layer in b0.layers
        if block_name(spec, layer.name) and not isinstance(layer, keras.layers.BatchNormalization)
    }
    assert _trainable(b0) == in_blocks | HEAD
    assert not b0.get_layer("stem_conv").trainable  # outside every block
    with pytest.raises(ValueError):
        set_trainable_top_blocks(b0, spec, -1)
