"""The files a training run writes and eval, export, resume and results read (neurocascade.artifacts).

- `RunRecord`, `run.json`: what the run is, written before its first epoch (neurocascade.hierarchy.ownership);
- `RunManifest`, `manifest.json`: written last, its presence means "finished";
- `TrainingSummary`, `summary.json`: per stage its phases and validation macro-F1, the cascade at τ;
- `Tau`, `tau.json`: the gate threshold the export copies into the sidecars.

Files written before runs recorded some keys (`dataset.content`, `models`, `cascade.tau_chosen_on`) still load:
those keys are optional, and a file without `schema_version` is version 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from neurocascade.hierarchy.stages import STAGES
from neurocascade.artifacts import (
    Artifact,
    Fields,
    Invalid,
    count,
    flag,
    integer,
    json_value,
    list_of,
    map_of,
    nonempty,
    number,
    optional,
    LABEL_ALIASES,
    permutation_of,
    probability,
    record,
    seconds,
    text,
    version,
)

_SHA256_HEX = "0123456789abcdef"


def stage_list(v: Any) -> list[str]:
    """A non-empty list of known stage names, each once."""
    names = list_of(text)(v)
    if not names or len(set(names)) != len(names) or any(n not in STAGES for n in names):
        raise Invalid(f"expected distinct stages among {', '.join(STAGES)}")
    return names


def sha256_hex(v: Any) -> str:
    if not isinstance(v, str) or len(v) != 64 or any(c not in _SHA256_HEX for c in v):
        raise Invalid("expected 64 lowercase hex digits")
    return v


# ---------------------------------------------------------------------------------------------- tau.json


@dataclass(frozen=True)
class Tau(Artifact):
    """The gate threshold: the cascade calls tumour when P(tumour) ≥ tau."""

    WHAT: ClassVar[str] = "gate threshold file (tau.json)"
    VERSION: ClassVar[int] = 1

    tau: float
    target_sensitivity: float
    chosen_on: str
    schema_version: int = VERSION

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "tau": self.tau,
            "target_sensitivity": self.target_sensitivity,
            "chosen_on": self.chosen_on,
        }

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "Tau":
        f = Fields(obj, source)
        v = version(f, "schema_version", (cls.VERSION,))
        out = cls(f.take("tau", probability), f.take("target_sensitivity", probability), f.take("chosen_on", text), v)
        f.done()
        return out


# ---------------------------------------------------------------------------------------------- run.json


def _dataset_start(f: Fields) -> dict:
    out = {
        "root": f.take("root", nonempty),
        "fingerprint": f.take("fingerprint", nonempty),
        "split_hashes": f.take("split_hashes", map_of(text)),
    }
    if f.has("content"):
        out["content"] = f.take("content", nonempty)
    return out


def _dataset_final(f: Fields) -> dict:
    out = _dataset_start(f)
    out.update(
        {
            "protocol": f.take("protocol", nonempty),
            "protocol_name": f.take("protocol_name", text),
            "counts": f.take("counts", map_of(count)),
            "dropped_as_copies_of_test": f.take("dropped_as_copies_of_test", optional(map_of(count))),
            "skipped_unreadable": f.take("skipped_unreadable", count),
        }
    )
    return out


def _started_by(f: Fields) -> dict:
    return {"pid": f.take("pid", count), "host": f.take("host", text)}


@dataclass(frozen=True)
class RunRecord(Artifact):
    """`run.json`: the run's stages, config (TOML text) and data, written before its first epoch."""

    WHAT: ClassVar[str] = "run start record (run.json)"
    VERSION: ClassVar[int] = 1

    stages: tuple[str, ...]
    config: str
    dataset: Mapping[str, Any]
    started_by: Mapping[str, Any]
    version: int = VERSION

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "stages": list(self.stages),
            "config": self.config,
            "dataset": dict(self.dataset),
            "started_by": dict(self.started_by),
        }

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "RunRecord":
        f = Fields(obj, source)
        v = version(f, "version", (cls.VERSION,))
        out = cls(
            tuple(f.take("stages", stage_list)),
            f.take("config", text),
            f.take("dataset", record(_dataset_start)),
            f.take("started_by", record(_started_by)),
            v,
        )
        f.done()
        return out


# ---------------------------------------------------------------------------------------------- manifest.json


def _backbone_from(f: Fields) -> dict:
    return {
        "run": f.take("run", nonempty),
        "stage": f.take("stage", nonempty),
        "sha256": f.take("sha256", sha256_hex),
        "stages": f.take("stages", stage_list),
    }


def _weights(f: Fields) -> dict:
    out = {key: f.take(key, optional(text)) for key in ("kind", "path", "md5", "warning")}
    if f.has("backbone_from"):  # the backbone was copied from another run's model (model.backbone_from)
        out["backbone_from"] = f.take("backbone_from", record(_backbone_from))
    return out


@dataclass(frozen=True)
class RunManifest(Artifact):
    """`manifest.json`: the finished run (its data and split, seed, weights, models' sha256, versions, times)."""

    WHAT: ClassVar[str] = "run manifest (manifest.json)"
    VERSION: ClassVar[int] = 1

    stages: tuple[str, ...]
    dataset: Mapping[str, Any]
    seed: int
    weights: Mapping[str, Any]
    cut: str
    packages: Mapping[str, Any]
    seconds: Mapping[str, float]
    resumed: bool
    models: Mapping[str, str] | None = None  # absent in runs made before models were hashed
    schema_version: int = VERSION

    def model_sha256(self, stage: str) -> str | None:
        """The sha256 of `models/<stage>.keras` as recorded; None for runs made before models were hashed
        (those load without the check, neurocascade.keras_io)."""
        return None if self.models is None else self.models.get(stage)

    def to_json(self) -> dict:
        obj = {
            "schema_version": self.schema_version,
            "stages": list(self.stages),
            "dataset": dict(self.dataset),
            "seed": self.seed,
            "weights": dict(self.weights),
            "cut": self.cut,
            "packages": dict(self.packages),
            "seconds": dict(self.seconds),
            "resumed": self.resumed,
        }
        if self.models is not None:
            obj["models"] = dict(self.models)
        return obj

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "RunManifest":
        f = Fields(obj, source)
        v = version(f, "schema_version", (cls.VERSION,))
        stages = tuple(f.take("stages", stage_list))
        out = cls(
            stages,
            f.take("dataset", record(_dataset_final)),
            f.take("seed", integer),
            f.take("weights", record(_weights)),
            f.take("cut", text),
            f.take("packages", map_of(json_value)),
            f.take("seconds", map_of(seconds)),
            f.take("resumed", flag),
            f.take("models", map_of(sha256_hex), None),
            v,
        )
        if out.models is not None and set(out.models) != set(stages):
            raise f.error("models", f"hashes {sorted(out.models)}, but the run trained {list(stages)}")
        f.done()
        return out


# ---------------------------------------------------------------------------------------------- summary.json


def _phase(f: Fields) -> dict:
    return {
        "epochs": f.take("epochs", count),
        "best_epoch": f.take("best_epoch", count),
        "best_val_macro_f1": f.take("best_val_macro_f1", probability),
        "seconds": f.take("seconds", seconds),
    }


def _stage_summary(f: Fields) -> dict:
    classes = f.take("classes", list_of(text))
    out = {
        "classes": classes,
        "class_weights": f.take("class_weights", map_of(seconds)),
        "val_macro_f1": f.take("val_macro_f1", probability),
        "phase1": f.take("phase1", record(_phase)),
    }
    if f.has("phase2"):
        out["phase2"] = f.take("phase2", optional(record(_phase)))
    if f.has("temperature"):
        out["temperature"] = f.take("temperature", _temperature)
    return out


def _temperature(v: Any) -> float:
    if number(v) <= 0:
        raise Invalid("expected a temperature > 0")
    return v


def _cascade_summary(f: Fields) -> dict:
    out = {
        "tau": f.take("tau", probability),
        "val_macro_f1": f.take("val_macro_f1", probability),
        "val_soft_macro_f1": f.take("val_soft_macro_f1", probability),
        # None: no tumour (or no healthy) image in validation, so the rate is undefined
        "val_tumour_sensitivity": f.take("val_tumour_sensitivity", optional(probability)),
        "val_tumour_specificity": f.take("val_tumour_specificity", optional(probability)),
    }
    if f.has("tau_chosen_on"):
        out["tau_chosen_on"] = f.take("tau_chosen_on", text)
    return out


@dataclass(frozen=True)
class TrainingSummary(Artifact):
    """`summary.json`: what the end-of-training table shows (neurocascade.hierarchy.summary), per stage and for the cascade."""

    WHAT: ClassVar[str] = "training summary (summary.json)"
    VERSION: ClassVar[int] = 1

    protocol: str
    protocol_name: str
    stages: Mapping[str, Mapping[str, Any]]
    seconds: Mapping[str, float]
    weights: Mapping[str, Any]
    cascade: Mapping[str, Any] | None = None
    schema_version: int = VERSION

    def to_json(self) -> dict:
        obj = {
            "schema_version": self.schema_version,
            "protocol": self.protocol,
            "protocol_name": self.protocol_name,
            "stages": {k: dict(v) for k, v in self.stages.items()},
            "seconds": dict(self.seconds),
            "weights": dict(self.weights),
        }
        if self.cascade is not None:
            obj["cascade"] = dict(self.cascade)
        return obj

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "TrainingSummary":
        f = Fields(obj, source)
        v = version(f, "schema_version", (cls.VERSION,))
        protocol, name = f.take("protocol", nonempty), f.take("protocol_name", text)
        stages = f.take("stages", map_of(record(_stage_summary)))
        for stage, info in stages.items():
            if stage not in STAGES:
                raise f.error(f"stages.{stage}", f"not a stage ({', '.join(STAGES)})")
            try:
                info["classes"] = permutation_of(STAGES[stage].classes, exact_order=True)(info["classes"])
                info["class_weights"] = {LABEL_ALIASES.get(c, c): w for c, w in info["class_weights"].items()}
            except Invalid as exc:
                raise f.error(f"stages.{stage}.classes", f"{info['classes']!r}, {exc.why}") from None
        out = cls(
            protocol,
            name,
            stages,
            f.take("seconds", map_of(seconds)),
            f.take("weights", record(_weights)),
            f.take("cascade", record(_cascade_summary), None),
            v,
        )
        f.done()
        return out
