"""Where a backbone's starting weights come from, decided before anything is built, with no silent download.

`model.weights` is "imagenet", "none" or a path. For "imagenet" the backbone's ImageNet file is looked up in
the caller's directories (typically the configured one, `../shared/weights/`, `~/.keras/models/`) and its md5
checked (Keras' own hashes for these files are all md5). A missing file is an error naming the file, its md5
and the directories, unless downloading is allowed (Keras fetches it) or the fallback is "none" (random
initialisation, with a loud warning for the caller to show).

    source = resolve_weights(get_backbone("EfficientNetB2"), "imagenet",
                             [Path(cfg_dir), Path("../shared/weights"), Path("~/.keras/models")])
    if source.warning:
        console.warn(source.warning)
    model = build_classifier(cfg.model, n_classes, image_size, source)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from neurocascade.models.registry import BackboneSpec
from neurocascade.errors import ConfigError, UserError

FALLBACKS = ("error", "none")


@dataclass(frozen=True)
class WeightsSource:
    """The resolved starting point of a backbone.

    kind: "imagenet" (path = the verified file, or "" when Keras downloads it or the backbone finds its own),
    "none" (random initialisation, asked for), "file" (path = a user's weights file in the Keras-applications
    layout of this backbone) or "random-fallback" (ImageNet asked for but missing; `warning` says so).
    """

    kind: str
    path: str = ""
    md5: str = ""
    warning: str = ""


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks (the ImageNet files are 30-80 MB)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(
    spec: BackboneSpec, weights: str, search_dirs: Sequence[Path], allow_download: bool = False, fallback: str = "error"
) -> WeightsSource:
    """Turn `model.weights` into a `WeightsSource`, or raise a one-line `UserError` saying how to fix it.

    fallback: "error" (missing ImageNet weights stop the run) or "none" (train from random initialisation).
    """
    if fallback not in FALLBACKS:
        raise ConfigError(f"weights fallback {fallback!r}: allowed values are {', '.join(map(repr, FALLBACKS))}")
    if weights == "none":
        return WeightsSource("none")
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(
                f"weights file {weights} for {spec.name} not found "
                '(model.weights is "imagenet", "none" or the path of a weights file)'
            )
        return WeightsSource("file", str(path.resolve()), file_md5(path))
    if not spec.imagenet_file:  # the builder fetches its own ImageNet weights (EfficientNetLite2)
        return WeightsSource("imagenet")

    dirs = [Path(d).expanduser() for d in search_dirs]
    for directory in dirs:
        candidate = directory / spec.imagenet_file
        if candidate.is_file():
            actual = file_md5(candidate)
            if spec.imagenet_md5 and actual != spec.imagenet_md5:
                raise UserError(
                    f"{candidate}: md5 {actual} does not match the expected {spec.imagenet_md5} "
                    f"of {spec.imagenet_file} (a partial or different file); replace or delete it"
                )
            return WeightsSource("imagenet", str(candidate.resolve()), actual)
    if allow_download:
        return WeightsSource("imagenet", "", spec.imagenet_md5)

    where = ", ".join(str(d) for d in dirs) or "(no directories given)"
    wanted = f"{spec.imagenet_file} (md5 {spec.imagenet_md5})"
    if fallback == "none":
        return WeightsSource(
            "random-fallback",
            warning=(
                f"ImageNet weights for {spec.name} not found ({wanted} in none of {where}): training from random "
                "initialisation; results will be far worse than with ImageNet weights"
            ),
        )
    raise UserError(
        f"ImageNet weights for {spec.name} not found: put {wanted} in one of {where}; "
        "or set model.allow_download = true when online, "
        'or model.weights_fallback = "none" to train from random initialisation'
    )
