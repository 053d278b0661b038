"""INT8 head shifts kept between exports, so a backbone quantized once with the same images is measured once.

`make results` exports a flat run and a cascade whose gate and subtype are heads on that run's backbone
(`model.backbone_from`). The flat model and the gate then have the same backbone and the same calibration images
(both drawn from every training image with the same seed), so their INT8 pooled features, and the shift that
`export.bias_correction` subtracts, are the same bit for bit (`shift_key`; measured on C seed 0). Measuring it
takes a calibrated INT8 conversion and two passes of the calibration images, per calibration draw: about a minute
each on a 2-core CPU. Within one export `_Export.head_shifts` already shares it (the one graph takes its gate's);
this store shares it between the two exports, in whichever order they run.

    store = ShiftStore(cache_root() / SHIFTS_FOLDER)
    found = store.load(key, float_ops, float_layers)   # (HeadShift, what it was measured for) or None
    store.save(key, float_ops, float_layers, shift, "flat in runs/results/C-seed0/flat")

A file is used only when the key it records is the one asked for (the backbone's weights, the calibration images,
the float ops and layers and the TensorFlow version that quantized it); anything else, or a file that cannot be read, is
measured again and overwritten. Like the activation cache, losing it costs only time.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from neurocascade.edge.bias_correction import HeadShift
from neurocascade.io import atomic_write_bytes

SHIFTS_FOLDER = "head-shifts"  # under the caches' root (`neurocascade.paths.cache_root`), beside the activations


class ShiftStore:
    """A folder of measured head shifts, one `.npz` per key (module doc)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def load(
        self, key: str, float_ops: Sequence[str], float_layers: Sequence[str] = ()
    ) -> tuple[HeadShift, str] | None:
        """The shift stored for `key` with these float ops and layers, and what it was measured for; None if there is
        none."""
        wanted = _key_record(key, float_ops, float_layers)
        try:
            with np.load(self._path(wanted), allow_pickle=False) as saved:
                if json.loads(str(saved["key"])) != wanted:
                    return None
                shift = HeadShift(saved["shift"].astype(np.float32), float(saved["relative"]))
                return shift, str(saved["measured_for"])
        except (OSError, KeyError, ValueError, EOFError):
            return None

    def save(
        self, key: str, float_ops: Sequence[str], float_layers: Sequence[str], shift: HeadShift, measured_for: str
    ) -> None:
        """Keep `shift` for `key` (atomically: a concurrent reader sees the old file or the new one)."""
        record = _key_record(key, float_ops, float_layers)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            key=np.array(json.dumps(record, sort_keys=True)),
            shift=shift.shift,
            relative=np.array(shift.relative),
            measured_for=np.array(measured_for),
        )
        atomic_write_bytes(self._path(record), buffer.getvalue(), durable=False)

    def _path(self, record: dict) -> Path:
        digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        return self.folder / f"{digest[:32]}.npz"


def _key_record(key: str, float_ops: Sequence[str], float_layers: Sequence[str] = ()) -> dict:
    from neurocascade.tf import tf

    record = {"shift_key": key, "float_ops": sorted(float_ops), "tensorflow": tf.__version__}
    if float_layers:  # absent when empty, so the shifts stored before export.float_layers existed still match
        record["float_layers"] = sorted(float_layers)
    return record
