"""`report.json` as an artifact (neurocascade.artifacts): what `eval` writes and results/collect.py reads.

The report's numbers are built by neurocascade.eval.report; this class only fixes what the file must hold: the schema
version, the meta data a reader needs, the classes (the known four, each once), the bootstrap settings, and per
model its sections with finite numbers (NaN is written as null) and non-negative confusion counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from neurocascade.data.layout import CLASSES
from neurocascade.artifacts import (
    Artifact,
    Fields,
    Invalid,
    count,
    json_value,
    list_of,
    map_of,
    optional,
    permutation_of,
    positive,
    version,
)

REPORT_MODELS = ("cascade", "flat", "ensemble")  # eval --ensemble scores the soft vote as a model
REQUIRED_META = ("protocol", "protocol_name", "split")


def _meta(v: Any) -> dict:
    meta = map_of(json_value)(v)
    for key in REQUIRED_META:
        if not isinstance(meta.get(key), str):
            raise Invalid("expected a string", (key,), meta.get(key))
    return meta


def _model(v: Any) -> dict:
    model = map_of(json_value)(v)
    if "n" in model:
        if isinstance(model["n"], bool) or not isinstance(model["n"], int) or model["n"] < 0:
            raise Invalid("expected a count (an integer ≥ 0)", ("n",), model["n"])
    counts = (model.get("confusion") or {}).get("counts") if isinstance(model.get("confusion"), dict) else None
    if counts is not None:
        try:
            list_of(list_of(count))(counts)
        except Invalid as exc:
            raise exc.inside("counts", counts).inside("confusion", model["confusion"]) from None
    return model


@dataclass(frozen=True)
class EvalReport(Artifact):
    """One evaluation of one split with one backend, every model side by side (neurocascade.eval.report)."""

    WHAT: ClassVar[str] = "eval report (report.json)"
    VERSION: ClassVar[int] = 1

    meta: Mapping[str, Any]
    classes: tuple[str, ...]
    bootstrap: Mapping[str, Any]
    ece_bins: int
    models: Mapping[str, Mapping[str, Any]]
    comparison: Mapping[str, Any] | None = None
    audit: Mapping[str, Any] | None = None  # the data audit's digest (data.audit.audit_digest), when there was one
    schema_version: int = VERSION

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "meta": dict(self.meta),
            "classes": list(self.classes),
            "bootstrap": dict(self.bootstrap),
            "ece_bins": self.ece_bins,
            "models": {k: dict(v) for k, v in self.models.items()},
            "comparison": None if self.comparison is None else dict(self.comparison),
            **({} if self.audit is None else {"audit": dict(self.audit)}),
        }

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "EvalReport":
        f = Fields(obj, source)
        v = version(f, "schema_version", (cls.VERSION,))
        meta, classes = f.take("meta", _meta), f.take("classes", permutation_of(CLASSES))
        bootstrap, bins = f.take("bootstrap", map_of(json_value)), f.take("ece_bins", positive)
        models = f.take("models", map_of(_model))
        for name in models:
            if name not in REPORT_MODELS:
                raise f.error(f"models.{name}", f"not a model ({', '.join(REPORT_MODELS)})")
        out = cls(
            meta,
            tuple(classes),
            bootstrap,
            bins,
            models,
            f.take("comparison", optional(map_of(json_value))),
            f.take("audit", map_of(json_value), None),
            v,
        )
        f.done()
        return out
