"""Small seeded test images and folder datasets (imported by tests as `synthetic`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def structured_image(seed: int, size: int = 96) -> np.ndarray:
    """A seeded grayscale image with MRI-like low-frequency structure (distinct seeds hash far apart)."""
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8))
    smooth = np.asarray(noise.filter(ImageFilter.GaussianBlur(size / 16)), dtype=np.float32)
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-6) * 255
    return smooth.astype(np.uint8)


def save(path: Path, gray: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gray).save(path, **kwargs)
    return path


def make_folder_dataset(root: Path, class_dirs: dict[str, str], n: int = 3, seed: int = 0,
                        split_names: tuple[str, str] = ("Training", "Testing")) -> Path:
    """`root/{Training,Testing}/<dir>/img_k.png` with distinct structured images; returns root."""
    k = seed * 1000
    for split in split_names:
        for folder in class_dirs.values():
            for _ in range(n):
                save(root / split / folder / f"img_{k}.png", structured_image(k))
                k += 1
    return root
