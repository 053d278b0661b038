"""Typed, frozen configuration loaded from TOML: a file, or a built-in config by name (`configs/`, neurocascade.paths).

Precedence, written down once: dataclass defaults → the TOML file → `--set section.key=value` overrides.
Unknown sections or keys, wrong types and out-of-range values raise `ConfigError` with one line naming the
file, the key and what is allowed. Every run saves the effective config with `to_toml`.

    cfg = load_config("configs/demo.toml", overrides=["train.batch_size=16"])
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from neurocascade.errors import ConfigError
from neurocascade.paths import resolve_config


MAX_SEED = 2**32 - 1  # numpy's legacy seeding (keras.utils.set_random_seed) takes [0, 2**32)
MAX_INT = MAX_SEED  # any integer setting: no size, count or seed needs more, and numpy overflows past 64 bits
MAX_BATCH = 4096  # far above what a CPU or a single GPU trains 260 px images with


def _seed_error(name: str, value: int) -> list[str]:
    return [] if 0 <= value <= MAX_SEED else [f"{name}: must be in [0, {MAX_SEED}]"]


# [data] keys that decide which images go where (or where they are read from, and how fast), not what an image's
# model input is: what the per-image activation cache may ignore.
SPLIT_ONLY_DATA_KEYS = (
    "root",
    "manifest",
    "protocol",
    "dedupe",
    "val_fraction",
    "test_fraction",
    "split_seed",
    "workers",
    "scan_cache",
)
# What an exported model outputs (export.output; edge/outputs.py)
EXPORT_OUTPUTS = ("probabilities", "logits")
# Which training images calibrate the quantized ranges (export.calibration; edge/calibration.py): a draw, or
# "auto" (each model quantized with every draw, the one that agrees best with Keras on validation kept)
CALIBRATION_DRAWS = ("random", "balanced")
EXPORT_CALIBRATIONS = (*CALIBRATION_DRAWS, "auto")
# What `<stage>.int8.tflite` computes in (edge/precision.py): 8-bit activations, or 16-bit activations with 8-bit
# weights; export.quantization is one of them or "auto" (int8 unless it misses export.min_agreement on validation
# and int16x8 agrees better without being slower than float32)
QUANTIZED_MODES = ("int8", "int16x8")
EXPORT_QUANTIZATIONS = (*QUANTIZED_MODES, "auto")


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are split and preprocessed."""

    root: str = "../shared/data/sartaj-brain-mri"  # Kaggle-style folder dataset
    manifest: str = ""  # CSV `path,label[,split][,patient_id]`; used instead of `root` when set
    image_size: int = 260  # square model input; images are padded to square, then resized
    protocol: Literal["official", "grouped"] = "official"  # official Testing split, or grouped re-split
    dedupe: bool = True  # drop training images that copy a test image (exact, near or mirrored)
    val_fraction: float = 0.15  # of the training part, split by copy group (and patient)
    test_fraction: float = 0.15  # grouped protocol only: share of all images held out as test
    split_seed: int = 0
    clahe: bool = False  # contrast normalisation, applied identically to every split
    clahe_clip: float = 2.0
    min_side: int = 32  # images smaller than this are reported and skipped
    workers: int = 2  # processes for decoding and hashing
    scan_cache: bool = True  # keep decoded images in <cache>/scans by content (neurocascade.data.decoded_cache)

    def validate(self) -> list[str]:
        errs = []
        if not 32 <= self.image_size <= 1024:
            errs.append("image_size: must be between 32 and 1024")
        if not 0.0 < self.val_fraction < 0.5:
            errs.append("val_fraction: must be in (0, 0.5)")
        if not 0.0 < self.test_fraction < 0.5:
            errs.append("test_fraction: must be in (0, 0.5)")
        if self.clahe_clip <= 0:
            errs.append("clahe_clip: must be > 0")
        if self.min_side < 1:
            errs.append("min_side: must be >= 1")
        if self.workers < 1:
            errs.append("workers: must be >= 1")
        return errs + _seed_error("split_seed", self.split_seed)


@dataclass(frozen=True)
class AuditConfig:
    """Copy detection: a 256-bit gradient hash, compared directly and left-right mirrored.

    A 64-bit hash is too coarse for MRI (different patients came out 4-6 bits apart); with 256 bits true
    copies were seen up to ~36 bits apart and different scans from ~42 (shared/notes/near-duplicates.md).
    """

    hash_size: int = 16  # hash has hash_size**2 bits
    near_threshold: int = 38  # Hamming distance at or below which two images are copies
    mirror: bool = True  # also compare against the left-right mirrored hash
    sheet_pairs: int = 24  # pairs on the contact sheet, those closest to the threshold

    def validate(self) -> list[str]:
        errs = []
        if self.hash_size not in (8, 16, 32):
            errs.append("hash_size: must be one of 8, 16, 32")
        if not 0 <= self.near_threshold < self.hash_size**2 // 2:
            errs.append(f"near_threshold: must be in [0, {self.hash_size**2 // 2})")
        if self.sheet_pairs < 1:
            errs.append("sheet_pairs: must be >= 1")
        return errs


@dataclass(frozen=True)
class AugmentConfig:
    """Medical-safe training augmentation (albumentations); never applied to validation or test."""

    enabled: bool = True
    rotate_deg: float = 10.0
    shift: float = 0.10  # fraction of the side
    zoom: float = 0.10  # scale in [1 - zoom, 1 + zoom]
    hflip: float = 0.5  # probability
    brightness: float = 0.10
    contrast: float = 0.10

    def validate(self) -> list[str]:
        errs = []
        if not 0 <= self.rotate_deg <= 30:
            errs.append("rotate_deg: must be in [0, 30] (larger rotations are not medical-safe here)")
        for name in ("shift", "zoom", "brightness", "contrast"):
            if not 0 <= getattr(self, name) <= 0.3:
                errs.append(f"{name}: must be in [0, 0.3]")
        if not 0 <= self.hflip <= 1:
            errs.append("hflip: must be a probability in [0, 1]")
        return errs


@dataclass(frozen=True)
class PhantomConfig:
    """The synthetic MRI phantom dataset (`cli.py make-phantoms`)."""

    n_per_class: int = 150
    size: int = 128
    seed: int = 0
    test_fraction: float = 0.2
    copies_fraction: float = 0.05  # test images planted as altered copies of training images
    lesion_scale: float = 1.0  # radius multiplier of the lesions that are not hard cases (data.phantoms.Lesions)
    lesion_contrast: float = 1.0  # contrast multiplier of the same lesions
    hard_fraction: float = 0.18  # share of tumours drawn small and faint (and of normal heads with a big gland)

    def validate(self) -> list[str]:
        errs = []
        for name in ("lesion_scale", "lesion_contrast"):
            if not 0.25 <= getattr(self, name) <= 4:
                errs.append(f"{name}: must be in [0.25, 4]")
        if not 0 <= self.hard_fraction <= 1:
            errs.append("hard_fraction: must be in [0, 1]")
        if self.n_per_class < 2:
            errs.append("n_per_class: must be >= 2")
        if self.size < 32:
            errs.append("size: must be >= 32")
        if not 0 < self.test_fraction < 1:
            errs.append("test_fraction: must be in (0, 1)")
        if not 0 <= self.copies_fraction < 1:
            errs.append("copies_fraction: must be in [0, 1)")
        return errs + _seed_error("seed", self.seed)


MODEL_STAGES = ("gate", "subtype", "flat")  # the models a run trains (neurocascade.hierarchy.stages.STAGES)


@dataclass(frozen=True)
class ModelConfig:
    """Backbone and classification head shared by the gate, the subtype and the flat model."""

    backbone: str = "EfficientNetB2"
    weights: str = "imagenet"  # "imagenet" | "none" | path to a weights file
    weights_dir: str = ""  # looked in first for ImageNet files, then ../shared/weights/, ~/.keras/models/
    allow_download: bool = False  # let Keras download ImageNet weights (online machines only)
    weights_fallback: Literal["error", "none"] = "error"  # "none": random init, loudly, if weights are missing
    head_units: int = 256
    dropout: float = 0.3
    # Gaussian noise of this standard deviation added to the head's normalized features in training (after its
    # BatchNormalization, so in units of each feature's spread); none at inference. The INT8 backbone's pooled
    # features differ from the float ones by about 0.3 of their spread (issue 15): a head trained through such
    # noise leans less on what INT8 rounding moves. 0: off.
    feature_noise: float = 0.0
    # Stochastic depth: in training, each residual block's branch is dropped for a whole image with a probability
    # rising linearly with depth to this value (EfficientNet's drop-connect, 0.2 in its ImageNet training; identity
    # at inference, so the exported graph is unchanged). With train.phase2_cache_bottom only the blocks phase 2 trains
    # see it (the frozen part's rows are computed in inference mode); without, every block does, frozen ones too (a
    # frozen Dropout still drops in training). Backbones built with the option only (EfficientNetLite0-2). 0: off.
    drop_connect: float = 0.0
    # Multi-scale head: backbone blocks whose outputs are pooled and concatenated with the last feature map
    # (e.g. ["block4d", "block5d", "block6e", "block7a"] for EfficientNetLite2); empty: the last map only.
    taps: tuple[str, ...] = ()
    # Frozen extra backbones beside `backbone` (e.g. ["EfficientNetLite1", "EfficientNetLite0"]): each sees the
    # image at its native size, and the pooled ends of its stages 4..7 and its last map join the head's
    # features; never fine-tuned, so the activation cache computes them once (issue 13: +1.1 to +1.7 points).
    extra_backbones: tuple[str, ...] = ()
    # The models whose graph carries `extra_backbones` (the others are built without them), e.g. ["subtype"]:
    # the extras lift the subtype model on every grouped split but not the gate (docs/RESULTS.md, reading).
    extra_backbone_stages: tuple[str, ...] = MODEL_STAGES
    # The size the backbone sees when it is not data.image_size (0): the model resizes its input inside its graph,
    # so every model still takes data.image_size images. With `backbone_size_stages = ["gate"]`, a gate at 260 px
    # beside a subtype model at data.image_size = 320 (issue 13: the subtype gains from 320 px, the gate does not).
    backbone_size: int = 0
    backbone_size_stages: tuple[str, ...] = MODEL_STAGES  # the models that resize to `backbone_size`
    # A finished one-model run (train-flat) on the same data and split whose fine-tuned backbone the models start
    # from instead of `weights` (neurocascade.hierarchy.backbone_source): a cascade that shares the flat model's
    # fine-tuning, one whole-network fine-tuning per protocol instead of three. "": the `weights` backbone.
    # Such a model trains its head alone (phase 1), its backbone's fine-tuning being the source run's, unless listed
    # in `backbone_from_finetune`.
    backbone_from: str = ""
    backbone_from_stages: tuple[str, ...] = MODEL_STAGES  # the models that take it (e.g. ["gate"])
    # The models among them that go on fine-tuning the taken backbone in phase 2 (train.phase2_*) after their head,
    # e.g. ["subtype"]: the flat model's features, adapted to the three tumour classes.
    backbone_from_finetune: tuple[str, ...] = ()

    def resized_size(self, image_size: int) -> int:
        """The size this model's graph resizes `image_size` images to before its backbone, 0 when it does not
        (`backbone_size` unset or equal to the image size): the one test of "resizes" that the graph, the
        activation cache key and the model card share."""
        return self.backbone_size if self.backbone_size not in (0, image_size) else 0

    def backbone_groups(self, stages: tuple[str, ...] | list[str], image_size: int) -> list[tuple[str, ...]]:
        """`stages` in groups whose backbones see the same image size and start from the same weights, in order:
        each group shares one template and one activation cache when trained together."""
        resized = tuple(s for s in stages if self.resized_size(image_size) and s in self.backbone_size_stages)
        rest = tuple(s for s in stages if s not in resized)
        groups = [group for group in (resized, rest) if group]
        if not self.backbone_from:
            return groups
        out = []  # a backbone from another run is another template and cache
        for group in groups:
            taking = tuple(s for s in group if s in self.backbone_from_stages)
            out += [part for part in (taking, tuple(s for s in group if s not in taking)) if part]
        return out

    def for_stages(self, stages: tuple[str, ...] | list[str]) -> "ModelConfig":
        """This config as built for `stages` trained together: the extra backbones only if one of them carries them
        (a template and its activation cache serve every stage of a group of `backbone_groups`), `backbone_size`
        only if one of them resizes to it."""
        out = self
        if not any(stage in self.extra_backbone_stages for stage in stages):
            out = replace(out, extra_backbones=())
        if not any(stage in self.backbone_size_stages for stage in stages):
            out = replace(out, backbone_size=0)
        if not any(stage in self.backbone_from_stages for stage in stages):
            out = replace(out, backbone_from="")
        return out

    def validate(self) -> list[str]:
        errs = []
        if not 0 <= self.feature_noise < 10:
            errs.append("feature_noise: must be in [0, 10)")
        if not 0 <= self.drop_connect < 1:
            errs.append("drop_connect: must be in [0, 1)")
        if len(set(self.extra_backbones)) != len(self.extra_backbones):
            errs.append("extra_backbones: a backbone is listed twice")
        if self.backbone in self.extra_backbones:
            errs.append(f"extra_backbones: {self.backbone} is already the main backbone")
        for key in ("extra_backbone_stages", "backbone_size_stages", "backbone_from_stages"):
            stages = getattr(self, key)
            unknown = [s for s in stages if s not in MODEL_STAGES]
            if unknown:
                errs.append(f"{key}: {unknown[0]!r} is not a model; allowed: {', '.join(MODEL_STAGES)}")
            if len(set(stages)) != len(stages):
                errs.append(f"{key}: a model is listed twice")
        if not_taking := [s for s in self.backbone_from_finetune if s not in self.backbone_from_stages]:
            errs.append(f"backbone_from_finetune: {not_taking[0]!r} is not in backbone_from_stages")
        if self.backbone_from_finetune and not self.backbone_from:
            errs.append("backbone_from_finetune: needs model.backbone_from (the run whose backbone it fine-tunes)")
        if self.backbone_size and not 32 <= self.backbone_size <= 1024:
            errs.append("backbone_size: must be 0 (data.image_size) or between 32 and 1024")
        if self.head_units < 1:
            errs.append("head_units: must be >= 1")
        if not 0 <= self.dropout < 1:
            errs.append("dropout: must be in [0, 1)")
        if len(set(self.taps)) != len(self.taps):
            errs.append("taps: a block is listed twice")
        return errs


@dataclass(frozen=True)
class TrainConfig:
    """Two-phase training of each model: frozen backbone (head only), then the top blocks at a low rate."""

    batch_size: int = 16
    seed: int = 0
    class_weight: Literal["balanced", "none"] = "balanced"
    aug_passes: int = 4  # augmented passes of the training set through the frozen part, cached and reused
    phase1_epochs: int = 30
    phase1_lr: float = 1e-3
    phase2_epochs: int = 8
    phase2_lr: float = 1e-5
    unfreeze_blocks: int = 3  # top backbone blocks trained in phase 2 (0 skips phase 2)
    patience: int = 5  # epochs without a better validation macro-F1 before stopping
    phase2_patience: int = 0  # the same for phase 2, whose epochs cost ~20x phase 1's; 0: as `patience`
    phase2_schedule: Literal["constant", "cosine"] = "constant"  # cosine: phase2_lr decays to 0 over phase2_epochs
    phase2_warmup_epochs: int = 0  # linear warm-up from 0 to phase2_lr (cosine schedule only)
    phase2_weight_decay: float = 0.0  # > 0: AdamW's decoupled weight decay in phase 2
    # What phase 2 trains on: "cached" — the top `unfreeze_blocks` blocks on the cached activations at their cut
    # (four fixed augmented passes); "images" — the whole model on a fresh augmentation of every training image
    # each epoch, the top `phase2_blocks` blocks trainable (issue 13: C validation 0.90 -> 0.94, four classes).
    phase2_data: Literal["cached", "images"] = "cached"
    phase2_blocks: int = 0  # phase2_data = "images": top backbone blocks phase 2 trains (0: every block)
    # phase2_data = "images": the frozen blocks below the trained ones run once per image and epoch's draw, into
    # the activation cache (shared by every protocol and split seed), and phase 2 trains the blocks above on
    # those rows — the same draws and function, ~45% less a step (neurocascade.hierarchy.bottom_cache).
    phase2_cache_bottom: bool = False
    # With phase2_cache_bottom on: phase 1's passes (clean and aug_passes) read their frozen rows from its cache and
    # run only the blocks up to their cut, so a cascade on a newly fine-tuned flat backbone skips the ImageNet blocks.
    # Equal to the whole backbone's rows to float rounding (~1e-6 relative), which is enough to move a trained head.
    phase1_cache_bottom: bool = False
    label_smoothing: float = 0.0  # both phases: targets (1 - s) one-hot + s / classes
    mixup_alpha: float = 0.0  # > 0: both phases blend training rows and targets, λ ~ Beta(alpha, alpha)
    weight_average: float = 0.0  # > 0: both phases score, stop on and keep an epoch-wise EMA of the weights
    target_sensitivity: float = 0.97  # the gate threshold is the highest reaching this (see tau_folds)
    tau_folds: int = 0  # >= 2: τ from out-of-fold gate scores of the training part (grouped folds); 0: validation
    tau_confidence: float = 0.0  # > 0: τ where the sensitivity's lower confidence bound reaches the target
    temperature_scaling: bool = False  # one T per model fitted on validation log-loss, folded into its output layer
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    deterministic: bool = False  # TF op determinism (slower)

    @property
    def fine_tunes_backbone(self) -> bool:
        """Whether phase 2 runs and trains backbone blocks (cached or on images), not the head alone."""
        return self.phase2_epochs > 0 and (self.phase2_data == "images" or self.unfreeze_blocks > 0)

    def validate(self) -> list[str]:
        errs = []
        if not 1 <= self.batch_size <= MAX_BATCH:
            errs.append(f"batch_size: must be in [1, {MAX_BATCH}]")
        errs += _seed_error("seed", self.seed)
        for name in ("aug_passes", "phase2_epochs", "unfreeze_blocks", "phase2_blocks"):
            if getattr(self, name) < 0:
                errs.append(f"{name}: must be >= 0")
        if self.phase1_epochs < 1:
            errs.append("phase1_epochs: must be >= 1")
        for name in ("phase1_lr", "phase2_lr"):
            if not 0 < getattr(self, name) < 1:
                errs.append(f"{name}: must be in (0, 1)")
        if self.patience < 1:
            errs.append("patience: must be >= 1")
        if self.phase2_warmup_epochs < 0 or self.phase2_warmup_epochs >= max(self.phase2_epochs, 1):
            errs.append("phase2_warmup_epochs: must be >= 0 and below phase2_epochs")
        if self.phase2_warmup_epochs and self.phase2_schedule != "cosine":
            errs.append('phase2_warmup_epochs: needs phase2_schedule = "cosine"')
        if not 0 <= self.phase2_weight_decay < 1:
            errs.append("phase2_weight_decay: must be in [0, 1)")
        if not 0 <= self.label_smoothing < 0.5:
            errs.append("label_smoothing: must be in [0, 0.5)")
        if not 0 <= self.mixup_alpha <= 10:
            errs.append("mixup_alpha: must be in [0, 10] (0: no mixup)")
        if not 0 <= self.weight_average < 1:
            errs.append("weight_average: must be in [0, 1) (the average's momentum per epoch; 0: no average)")
        if self.phase2_patience < 0:
            errs.append("phase2_patience: must be >= 0 (0: the same as patience)")
        if self.tau_folds == 1 or not 0 <= self.tau_folds <= 20:
            errs.append("tau_folds: must be 0 (τ on validation) or 2..20 folds")
        if self.phase2_data == "images" and self.tau_folds:
            errs.append(
                'tau_folds: the cross-fitted gates are heads on frozen features, not the gate phase2_data = "images" '
                "fine-tunes; set tau_folds = 0 (τ on validation)"
            )
        if self.phase2_data == "images" and self.mixup_alpha:
            errs.append('mixup_alpha: not built for phase2_data = "images" (it blends cached rows); set it to 0')
        if self.phase2_cache_bottom and self.phase2_data != "images":
            errs.append('phase2_cache_bottom: needs phase2_data = "images" (cached phase 2 reads the cache already)')
        if self.phase1_cache_bottom and not (self.phase2_cache_bottom and self.phase2_blocks > self.unfreeze_blocks):
            errs.append(
                "phase1_cache_bottom: reads phase2_cache_bottom's rows, so needs it on and phase2_blocks > "
                "unfreeze_blocks (its cut below phase 1's)"
            )
        if self.phase2_blocks and self.phase2_data != "images":
            errs.append('phase2_blocks: needs phase2_data = "images" (cached phase 2 trains unfreeze_blocks)')
        if not 0 <= self.tau_confidence < 1:
            errs.append("tau_confidence: must be in [0, 1) (0: τ at the point estimate)")
        if not 0.5 <= self.target_sensitivity <= 1:
            errs.append("target_sensitivity: must be in [0.5, 1]")
        return errs


@dataclass(frozen=True)
class ExportConfig:
    """Quantization-aware training and TFLite export (float32 and full-integer INT8)."""

    after_training: bool = True  # export automatically at the end of train-cascade / train-flat
    qat: bool = True  # false: post-training full-integer quantization instead
    qat_epochs: int = 2
    qat_lr: float = 1e-5
    qat_warmup_batches: int = 20  # training-mode passes that settle the fake-quant ranges before fine-tuning
    # what QAT fits: "labels" (the training labels, class-weighted; the epoch with the best validation macro-F1
    # is kept) or "float" (distillation: the float model's own probabilities, no class weights; the epoch with
    # the best validation top-1 agreement with the float model is kept)
    qat_target: str = "labels"
    representative_samples: int = 200  # training images calibrating the INT8 ranges
    # "random": a seeded draw that follows the training mix; "balanced": as many images of each four-class label
    # the model sees (the gate's calibration holds every tumour type), so a rare class sets ranges too; "auto": both,
    # per model the one whose INT8 model agrees better with Keras on validation (edge/calibration.py)
    calibration: str = "random"
    quantization: str = "int8"  # "int8", "int16x8" or "auto" (EXPORT_QUANTIZATIONS)
    latency_images: int = 10  # validation images timed at 1 thread when "auto" weighs int16x8 against float32
    min_agreement: float = 0.98  # INT8 vs Keras top-1 agreement on validation below which a model is flagged
    # "probabilities": the model's softmax, uint8 in steps of 1/256; "logits": the last Dense without its softmax,
    # which the runtime applies in float (edge/outputs.py says why)
    output: str = "probabilities"
    debug_samples: int = 64  # validation images `quant-debug` runs through the QuantizationDebugger
    # TFLite op types the INT8 model computes in float (the QuantizationDebugger's denylisted_ops), e.g.
    # ["MEAN", "CONCATENATION", "FULLY_CONNECTED"]: the pooled multi-scale head, whose concat forces one scale on
    # every tap (README, "Export and the edge")
    float_ops: tuple[str, ...] = ()
    # Keras layers whose ops the INT8 model computes in float (the debugger's denylisted_nodes), e.g. the ones
    # `quant-debug` ranks worst: ["stem_conv", "block1a_dwconv"] (edge/float_layers.py)
    float_layers: tuple[str, ...] = ()
    # Balance each residual stream's channel ranges before quantizing (cross-layer equalization; the float function
    # is unchanged; edge/equalize.py): measured +2.6, -0.9, -1.0 points of agreement on three models (README)
    equalize: bool = False
    # Subtract the INT8 backbone's systematic shift of the pooled features in the INT8 model's head BatchNorm,
    # measured on the calibration images (edge/bias_correction.py). Post-training quantization only: a QAT model
    # learned with its own ranges, and is exported as it is (`corrects_head_bias`)
    bias_correction: bool = False
    # Distil the INT8 model's float head onto the pooled features its INT8 backbone gives for the model's training
    # images, targets the Keras model's probabilities on them, for this many epochs at head_refit_lr (0: off;
    # edge/head_refit.py). Post-training, probabilities output, the head's Dense layers in float (float_ops).
    head_refit_epochs: int = 0
    head_refit_lr: float = 1e-5
    # Embed TFLite Metadata (labels, input normalisation, τ; edge/tflite_metadata.py) in every exported .tflite, so
    # that a LiteRT / MediaPipe image classifier reads them from the model itself
    metadata: bool = True
    # A cascade whose gate and subtype heads read one backbone (model.backbone_from, neither fine-tuned further) is
    # exported a third time as one graph, `one_graph.*.tflite`: both heads on one backbone pass, its output the
    # cascade's four probabilities (hierarchy/one_graph.py). Post-training, probabilities output, not equalized.
    one_graph: bool = False

    @property
    def corrects_head_bias(self) -> bool:
        """Whether the export corrects the INT8 head's bias: `bias_correction` with post-training quantization."""
        return self.bias_correction and not self.qat

    def validate(self) -> list[str]:
        errs = []
        if self.qat_epochs < 0:
            errs.append("qat_epochs: must be >= 0")
        if not 0 < self.qat_lr < 1:
            errs.append("qat_lr: must be in (0, 1)")
        if self.qat_warmup_batches < 0:
            errs.append("qat_warmup_batches: must be >= 0")
        if self.qat_target not in ("labels", "float"):
            errs.append(f"qat_target: {self.qat_target!r}, expected one of labels, float")
        if self.representative_samples < 1:
            errs.append("representative_samples: must be >= 1")
        if not 0 <= self.min_agreement <= 1:
            errs.append("min_agreement: must be in [0, 1]")
        if self.output not in EXPORT_OUTPUTS:
            errs.append(f"output: {self.output!r}, expected one of {', '.join(EXPORT_OUTPUTS)}")
        if self.debug_samples < 1:
            errs.append("debug_samples: must be >= 1")
        if any(not op or op != op.upper() for op in self.float_ops):
            errs.append(f'float_ops: {list(self.float_ops)!r}, expected TFLite op names such as "MEAN"')
        if self.calibration not in EXPORT_CALIBRATIONS:
            errs.append(f"calibration: {self.calibration!r}, expected one of {', '.join(EXPORT_CALIBRATIONS)}")
        if self.quantization not in EXPORT_QUANTIZATIONS:
            errs.append(f"quantization: {self.quantization!r}, expected one of {', '.join(EXPORT_QUANTIZATIONS)}")
        if any(not name or name.strip() != name for name in self.float_layers):
            errs.append(f'float_layers: {list(self.float_layers)!r}, expected Keras layer names such as "stem_conv"')
        if (self.float_ops or self.float_layers) and self.quantization == "int16x8":
            errs.append(
                "float_ops, float_layers: only the int8 model keeps ops in float; leave them empty with quantization "
                '= "int16x8"'
            )
        if self.latency_images < 1:
            errs.append("latency_images: must be >= 1")
        if self.head_refit_epochs < 0:
            errs.append("head_refit_epochs: must be >= 0")
        if not 0 < self.head_refit_lr < 1:
            errs.append("head_refit_lr: must be in (0, 1)")
        if self.head_refit_epochs and (
            self.qat or self.output != "probabilities" or "FULLY_CONNECTED" not in self.float_ops
        ):
            errs.append(
                'head_refit_epochs: post-training only, with output = "probabilities" and "FULLY_CONNECTED" in '
                "float_ops (the head it refits stays float in the INT8 file)"
            )
        if self.one_graph and (self.qat or self.equalize or self.output != "probabilities"):
            errs.append(
                'one_graph: post-training only, with output = "probabilities" and no equalize (set export.qat = false)'
            )
        return errs


@dataclass(frozen=True)
class EvalConfig:
    """Uncertainty and failure analysis of `cli.py eval`."""

    bootstrap: int = 1000  # stratified bootstrap resamples for the 95% confidence intervals
    seed: int = 0
    ece_bins: int = 10
    top_errors: int = 16  # most confident errors shown and drawn
    occlusion_grid: int = 8  # LiteRT backends: patches per side of the errors' occlusion maps (grid² passes each)

    def validate(self) -> list[str]:
        errs = []
        if self.bootstrap < 10:
            errs.append("bootstrap: must be >= 10")
        if self.ece_bins < 2:
            errs.append("ece_bins: must be >= 2")
        if self.top_errors < 0:
            errs.append("top_errors: must be >= 0")
        if self.occlusion_grid < 1:
            errs.append("occlusion_grid: must be >= 1")
        return errs + _seed_error("seed", self.seed)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    phantoms: PhantomConfig = field(default_factory=PhantomConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    source: str = field(default="<defaults>", compare=False)  # the file it came from, for messages


SECTIONS: dict[str, type] = {name: hint for name, hint in typing.get_type_hints(Config).items() if name != "source"}


def _check_value(where: str, expected: Any, value: Any) -> Any:
    """Return `value` coerced to `expected` (int → float only) or raise a one-line ConfigError."""
    if typing.get_origin(expected) is tuple:  # tuple[str, ...]: a TOML array of strings
        item = typing.get_args(expected)[0]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, item) for v in value):
            raise ConfigError(f"{where} = {value!r}: expected a list of {item.__name__} values")
        return tuple(value)
    if typing.get_origin(expected) is Literal:
        allowed = typing.get_args(expected)
        if value not in allowed:
            raise ConfigError(f"{where} = {value!r}: allowed values are {', '.join(map(repr, allowed))}")
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value) if abs(value) < 2**1000 else math.inf  # float() overflows near 2**1024
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{where} = {value!r}: expected an integer")
    if not isinstance(value, expected):
        raise ConfigError(f"{where} = {value!r}: expected {expected.__name__}, got {type(value).__name__}")
    # TOML reads nan, inf and integers of any size; every comparison with nan is False, so a range check
    # alone would let it through, and a huge integer overflows only deep inside numpy or TensorFlow.
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r}: expected a finite number")
    if expected is int and abs(value) > MAX_INT:
        raise ConfigError(f"{where} = {value!r}: too large (at most {MAX_INT})")
    return value


def build_config(raw: dict[str, Any], source: str = "<defaults>") -> Config:
    """Validate a nested dict (as read from TOML) into a `Config`."""
    sections = {}
    for name, value in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]; allowed: {', '.join(SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{name}] must be a table of keys")
    for name, cls in SECTIONS.items():
        given = raw.get(name, {})
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in given.items():
            if key not in hints:
                raise ConfigError(f"{source}: unknown key {name}.{key}; allowed: {', '.join(hints)}")
            kwargs[key] = _check_value(f"{source}: {name}.{key}", hints[key], value)
        section = cls(**kwargs)
        problems = section.validate()
        if problems:
            raise ConfigError(f"{source}: {name}.{problems[0]}")
        sections[name] = section
    return Config(**sections, source=source)


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split `section.key=value`; the value is read as TOML, or taken as a bare string if that fails."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.batch_size=8")
    dotted, value_text = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    return section, key, value


def load_config(path: str | Path | None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a TOML config (None: the defaults), apply `--set` overrides and validate the result."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = resolve_config(path)
        source = str(path)
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for text in overrides:
        section, key, value = parse_override(text)
        if not isinstance(raw.setdefault(section, {}), dict):
            raise ConfigError(f"--set {text!r}: [{section}] is not a table")
        raw[section][key] = value
    if overrides:
        source = f"{source} with --set {' '.join(overrides)}"
    return build_config(raw, source)


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    return {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(cfg: Config) -> str:
    """The effective config as TOML that `load_config` reads back to an equal `Config`."""
    lines = [f"# effective config (from {cfg.source})"]
    for name, values in to_dict(cfg).items():
        lines.append(f"\n[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
