"""The three models NeuroCascade trains, as specs: which images each sees and what its classes are.

All labels arrive as indices into `neurocascade.data.layout.CLASSES` (glioma, meningioma, pituitary, no_tumor).
The gate's class 0 is "tumor", so its first output is P(tumour). Labels are spelled as the data's folders are
("tumor", "no_tumor"); files written before that spelled the gate's first label "tumour" and still load
(`neurocascade.artifacts.LABEL_ALIASES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurocascade.data.layout import CLASSES

NO_TUMOUR = CLASSES.index("no_tumor")


@dataclass(frozen=True)
class StageSpec:
    name: str
    classes: tuple[str, ...]

    def select(self, y4: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of the images this stage trains on, their labels in this stage's classes)."""
        y4 = np.asarray(y4)
        if self.name == "gate":
            return np.ones(len(y4), bool), (y4 == NO_TUMOUR).astype(np.int32)
        if self.name == "subtype":
            mask = y4 != NO_TUMOUR
            return mask, y4[mask].astype(np.int32)
        return np.ones(len(y4), bool), y4.astype(np.int32)


STAGES: dict[str, StageSpec] = {
    "gate": StageSpec("gate", ("tumor", "no_tumor")),
    "subtype": StageSpec("subtype", tuple(c for c in CLASSES if c != "no_tumor")),
    "flat": StageSpec("flat", CLASSES),
}
CASCADE_STAGES = ("gate", "subtype")
# The cascade exported as one graph (export.one_graph; hierarchy/one_graph.py): not trained, built from the gate and
# the subtype model; its output is the four classes, so it sees every image with its four-class label.
ONE_GRAPH = "one_graph"
EXPORT_STAGES: dict[str, StageSpec] = {**STAGES, ONE_GRAPH: StageSpec(ONE_GRAPH, CLASSES)}
