"""Synthetic brain-MRI phantoms: the offline default dataset, so the whole pipeline runs from a fresh clone.

Each image is an axial-slice-like 8-bit grayscale picture: black background, a head filling most of the
frame with a bright scalp/skull ring and a thin CSF rim, a folded cortex (sulci running in from the surface,
lined with grey matter, white-matter fingers between them), white matter with deep grey nuclei, dark
butterfly-shaped lateral ventricles, sylvian fissures, an optional midline fissure and a small normal
pituitary gland at the lower-central skull base. The four classes differ only by the lesion drawn on top of
that anatomy:

* ``glioma``     irregular, lobulated, heterogeneous intra-axial mass, often with a darker necrotic core,
                 inside a hypo- or hyperintense oedema halo;
* ``meningioma`` well-circumscribed, homogeneous, rounded extra-axial mass with a broad base on the inner
                 skull (sometimes a dural tail and a CSF cleft);
* ``pituitary``  small midline sellar mass at the lower-central region, sometimes with a suprasellar lobe;
* ``no_tumor``   normal variation only (head size/shape/position, cortex, ventricle size and asymmetry, gland).

Head size, aspect, position and rotation, grey/white contrast, cortical folding, ventricles, a receive-coil
sensitivity pattern and bias field, gamma, Rician noise and the display window all vary, and about 18 % of
tumour images are hard cases (small and/or faint, close to background contrast), so the task is learnable
but a small CNN should not reach 100 %.
A :class:`Lesions` style scales the size and contrast of the non-hard lesions and sets the hard-case share;
its defaults give the phantoms above, the demo's config turns the lesions up so that its short run learns.

:func:`write_phantom_dataset` writes the usual ``Training/`` + ``Testing/`` folder layout and plants altered
copies of Training images in Testing (shift up to 1 % of the side, rescale up to 2 %, contrast/brightness,
JPEG q75-95 or a mild blur, half of them mirrored), as real public brain-MRI sets are full of such duplicates
and the leakage audit must find them. ``phantoms.json`` in the output root lists them.

Copy detection behaves as on real MRI (the audit's 256-bit gradient hash, 17x16 cells, threshold 38 bits):
the structure inside the head is large-scale and high-contrast enough to survive a re-encode or a small
shift, the background is black rather than noise, and heads differ enough that different phantoms stay
apart. At 128 px (4 x 150, seed 0) different phantoms are >= 43 bits apart and planted copies <= ~37 bits
from their source. Larger geometric changes are not planted: on the real Sartaj images a 2 % shift alone
moves the hash by 45 bits on average, so such a copy would not be a findable one there either.

Usage::

    from pathlib import Path
    import numpy as np
    from neurocascade.data.phantoms import make_phantom, write_phantom_dataset

    img = make_phantom("glioma", np.random.default_rng(0), 128)        # uint8 array, shape (128, 128)
    manifest = write_phantom_dataset(Path("runs/phantoms"), n_per_class=150, size=128, seed=0)
    manifest["copies"][0]   # {"test": "Testing/glioma/glioma_0004.png", "source": "Training/...", ...}

Determinism: every image draws from its own ``SeedSequence([seed, class_index, split_index, image_index])``,
so an image does not depend on generation order or on how many other images are made. Inside
:func:`make_phantom` the anatomy, the lesion and the acquisition (coil/bias field, window, noise) use three
independent streams, so the same generator state gives the same head with and without a tumour. Only
elementwise numpy arithmetic, indexing and reductions are used (no BLAS, no threads); the copies use Pillow's
JPEG codec, so their pixels are only guaranteed stable for a given Pillow/libjpeg build.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["CLASS_DIRS", "LABELS", "Lesions", "make_phantom", "write_phantom_dataset"]

#: canonical label -> folder name, the layout of the public Kaggle brain-tumour MRI dataset.
CLASS_DIRS: dict[str, str] = {
    "glioma": "glioma",
    "meningioma": "meningioma",
    "no_tumor": "notumor",
    "pituitary": "pituitary",
}
#: canonical labels in class-index order (the index is part of every image's seed).
LABELS: tuple[str, ...] = tuple(CLASS_DIRS)

SPLITS: tuple[str, str] = ("Training", "Testing")
MANIFEST_NAME = "phantoms.json"
HARD_FRACTION = 0.18  # share of tumour images that are small and/or faint
MIN_SIZE = 32


@dataclass(frozen=True)
class Lesions:
    """How conspicuous the lesions are. The defaults are the phantoms every test and golden file was made with.

    The demo (configs/demo.toml) turns them up: at 128 px a frozen ImageNet backbone barely tells the default
    lesions from the normal anatomy's variation (a linear probe on its pooled features reaches a gate AUC of
    0.61), while twice-as-large, three-times-as-contrasted lesions with fewer hard cases are learnt in a minute.
    Hard cases keep their small size and faint contrast whatever `scale` and `contrast` say.
    """

    scale: float = 1.0  # multiplies the radius of every lesion that is not a hard case
    contrast: float = 1.0  # multiplies the contrast of every lesion that is not a hard case
    hard_fraction: float = HARD_FRACTION  # share of tumours that are hard cases (and of normal heads with a big gland)

    def __post_init__(self) -> None:
        for name, low, high in (("scale", 0.25, 4.0), ("contrast", 0.25, 4.0), ("hard_fraction", 0.0, 1.0)):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not low <= val <= high:
                raise ValueError(f"lesions.{name} must be a number in [{low}, {high}], got {val!r}")


_TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------------------------- helpers
def _ramp(z: np.ndarray, width: float) -> np.ndarray:
    """Soft step 0 -> 1 around z = 0 over `width`: anti-aliased masks without transcendental functions."""
    return np.clip(z / width + 0.5, 0.0, 1.0)


@lru_cache(maxsize=16)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (x to the right, y downwards); cached, read-only."""
    x = (np.arange(size, dtype=np.float64) + 0.5) * (2.0 / size) - 1.0
    xx, yy = np.meshgrid(x, x)
    xx.flags.writeable = False
    yy.flags.writeable = False
    return xx, yy


@lru_cache(maxsize=64)
def _bspline_taps(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cubic B-spline weights to upsample a (cells+3)^2 lattice to size^2 pixels."""
    p = (np.arange(size, dtype=np.float64) + 0.5) * (cells / size)
    idx = np.floor(p).astype(np.intp)
    t = p - idx
    w = np.stack(
        [
            (1.0 - t) ** 3 / 6.0,
            (3.0 * t**3 - 6.0 * t**2 + 4.0) / 6.0,
            (-3.0 * t**3 + 3.0 * t**2 + 3.0 * t + 1.0) / 6.0,
            t**3 / 6.0,
        ]
    )
    idx.flags.writeable = False
    w.flags.writeable = False
    return idx, w


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-std smooth noise with about `cells` features across the image.

    Drawn on a coarse lattice and B-spline upsampled: cheap at any size (no large-sigma filtering), and the
    number of random draws does not depend on `size`, so the same seed gives the same picture at any size.
    """
    g = rng.standard_normal((cells + 3, cells + 3))
    idx, w = _bspline_taps(size, cells)
    rows = g[idx] * w[0][:, None] + g[idx + 1] * w[1][:, None] + g[idx + 2] * w[2][:, None] + g[idx + 3] * w[3][:, None]
    out = rows[:, idx] * w[0] + rows[:, idx + 1] * w[1] + rows[:, idx + 2] * w[2] + rows[:, idx + 3] * w[3]
    out -= out.mean()
    out /= out.std() + 1e-12
    return out


def _cubic_taps(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four cubic B-spline weights for fractional positions `t` in [0, 1)."""
    t2 = t * t
    t3 = t2 * t
    return (
        (1.0 - 3.0 * t + 3.0 * t2 - t3) / 6.0,
        (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
        t3 / 6.0,
    )


def _polar_noise(
    rng: np.random.Generator, phi: np.ndarray, depth: np.ndarray, n_angle: int, n_depth: int
) -> np.ndarray:
    """Zero-mean, unit-std smooth noise on (angle, depth) coordinates: `n_angle` features around, `n_depth` in.

    A cubic B-spline lattice, periodic in the angle: each lattice row is first interpolated on a fine angle
    table, then every pixel reads its angle from the table and blends four rows by its depth.
    """
    g = rng.standard_normal((n_depth + 3, n_angle))
    n_tab = 64 * n_angle
    t = (np.arange(n_tab) + 0.5) / 64.0
    it = np.floor(t).astype(np.intp)
    wt = _cubic_taps(t - it)
    table = sum(w * g[:, (it + (k - 1)) % n_angle] for k, w in enumerate(wt))  # (rows, n_tab)
    ia = ((phi * (1.0 / _TWO_PI) % 1.0) * n_tab).astype(np.intp) % n_tab
    pv = np.clip(depth, 0.0, 1.0) * n_depth
    iv = np.minimum(pv.astype(np.intp), n_depth - 1)
    wv = _cubic_taps(pv - iv)
    flat = table.ravel()
    out = sum(w * flat[(iv + j) * n_tab + ia] for j, w in enumerate(wv))
    out -= out.mean()
    out /= out.std() + 1e-12
    return out


def _ellipse_mask(
    x: np.ndarray,
    y: np.ndarray,
    cx: float,
    cy: float,
    along: tuple[float, float],
    half_len: float,
    half_wid: float,
    px: float,
) -> np.ndarray:
    """Soft mask of an ellipse centred at (cx, cy) whose long axis points along the unit vector `along`.

    `x`, `y` are affine in the pixel indices (a rotated, shifted frame), so the pixel window that can be
    non-zero is found by inverting that map; only the window is computed (masks are small, images are not).
    """
    out = np.zeros_like(x)
    n_rows, n_cols = x.shape
    x00, y00 = float(x[0, 0]), float(y[0, 0])
    xj, yj = float(x[0, 1]) - x00, float(y[0, 1]) - y00  # one column to the right
    xi, yi = float(x[1, 0]) - x00, float(y[1, 0]) - y00  # one row down
    det = xj * yi - xi * yj
    col = ((cx - x00) * yi - (cy - y00) * xi) / det
    row = ((cy - y00) * xj - (cx - x00) * yj) / det
    reach = max(half_len, half_wid) * (1.0 + px / (2.0 * half_wid)) / math.hypot(xj, yj) + 2.0
    r0, r1 = max(0, int(row - reach)), min(n_rows, int(row + reach) + 2)
    c0, c1 = max(0, int(col - reach)), min(n_cols, int(col + reach) + 2)
    if r0 >= r1 or c0 >= c1:
        return out
    dx, dy = x[r0:r1, c0:c1] - cx, y[r0:r1, c0:c1] - cy
    u = (dx * along[0] + dy * along[1]) / half_len
    v = (dy * along[0] - dx * along[1]) / half_wid
    out[r0:r1, c0:c1] = _ramp((1.0 - np.sqrt(u * u + v * v)) * half_wid, px)
    return out


def _check_label(label: str) -> int:
    if label not in CLASS_DIRS:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
    return LABELS.index(label)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")


# ----------------------------------------------------------------------------------------------- phantom
@dataclass
class _Head:
    """One head in the head frame (rotated and centred, not scaled): coordinates, outline and masks."""

    x0: np.ndarray  # image-frame coordinates (the acquisition's bias field lives there)
    y0: np.ndarray
    x: np.ndarray  # head-frame coordinates
    y: np.ndarray
    px: float  # one pixel in image units
    a: float  # half axes
    b: float
    s: float  # image units per unit of normalised radius
    phi: np.ndarray  # angle and normalised radius of every pixel
    r: np.ndarray
    harm_amp: np.ndarray  # the outline's harmonics
    harm_ph: np.ndarray
    t_skull: float  # skull thickness and its variation with the angle
    t_var: float
    t_ph: float
    gap: float  # CSF between skull and brain
    r_in: np.ndarray
    head: np.ndarray  # soft masks: the whole head, inside the skull, the brain
    inner: np.ndarray
    brain: np.ndarray
    depth: np.ndarray  # 0 at the brain surface, 1 at the centre
    r_br_mean: float


@dataclass
class _Tissue:
    """T1-like intensities (WM > GM > CSF; scalp fat and diploe bright) and the shared texture fields."""

    gm: float
    wm: float
    csf: float
    i_skull: float
    n_lobe: np.ndarray  # lobar scale (~1/4 of the head)
    n_tex: np.ndarray


@dataclass
class _Ventricles:
    """The lateral ventricles' mask and where they sit (the deep nuclei are placed from them)."""

    mask: np.ndarray
    shift: float  # midline shift / head tilt
    base_x: float
    base_y: float


def _head_geometry(ra: np.random.Generator, size: int) -> _Head:
    """Field of view, aspect, position and rotation all vary, so heads of different patients do not overlap cell
    for cell in a coarse hash."""
    x0, y0 = _grid(size)
    px = 2.0 / size
    a = ra.uniform(0.76, 0.93)
    b = min(a * ra.uniform(1.02, 1.28), 0.96)
    rot = ra.uniform(-0.3, 0.3)
    ext_x = math.hypot(a * math.cos(rot), b * math.sin(rot))  # half extents of the rotated ellipse
    ext_y = math.hypot(a * math.sin(rot), b * math.cos(rot))
    cx = ra.uniform(-1.0, 1.0) * min(0.15, max(0.0, 0.97 - ext_x))  # anywhere the head fits in the frame
    cy = ra.uniform(-1.0, 1.0) * min(0.15, max(0.0, 0.97 - ext_y))
    cr, sr = math.cos(rot), math.sin(rot)
    dx0, dy0 = x0 - cx, y0 - cy
    x = dx0 * cr + dy0 * sr
    y = dy0 * cr - dx0 * sr
    s = 0.5 * (a + b)

    ex, ey = x / a, y / b
    phi = np.arctan2(ey, ex)
    harm_amp = ra.uniform(0.0, 0.025, size=3)
    harm_ph = ra.uniform(0.0, _TWO_PI, size=3)
    h = (
        1.0
        + harm_amp[0] * np.cos(2 * phi + harm_ph[0])
        + harm_amp[1] * np.cos(3 * phi + harm_ph[1])
        + harm_amp[2] * np.cos(4 * phi + harm_ph[2])
    )
    r = np.sqrt(ex * ex + ey * ey) / h

    t_skull = ra.uniform(0.05, 0.11)
    t_var, t_ph = ra.uniform(0.0, 0.3), ra.uniform(0.0, _TWO_PI)
    gap = ra.uniform(0.012, 0.03)
    r_in = 1.0 - t_skull * (1.0 + t_var * np.cos(phi + t_ph))
    r_br = r_in - gap
    return _Head(
        x0=x0,
        y0=y0,
        x=x,
        y=y,
        px=px,
        a=a,
        b=b,
        s=s,
        phi=phi,
        r=r,
        harm_amp=harm_amp,
        harm_ph=harm_ph,
        t_skull=t_skull,
        t_var=t_var,
        t_ph=t_ph,
        gap=gap,
        r_in=r_in,
        head=_ramp((1.0 - r) * s, px),
        inner=_ramp((r_in - r) * s, 1.5 * px),
        brain=_ramp((r_br - r) * s, 1.5 * px),
        depth=1.0 - r / r_br,
        r_br_mean=1.0 - t_skull - gap,
    )


def _tissue(ra: np.random.Generator, size: int) -> _Tissue:
    gm = ra.uniform(0.34, 0.46)
    wm = gm + ra.uniform(0.1, 0.2)
    csf = ra.uniform(0.05, 0.16)
    i_skull = wm * ra.uniform(0.9, 1.25)
    return _Tissue(gm, wm, csf, i_skull, n_lobe=_smooth_noise(ra, size, 5), n_tex=_smooth_noise(ra, size, 28))


def _cortex(ra: np.random.Generator, h: _Head, t: _Tissue) -> np.ndarray:
    """The parenchyma: gyri and sulci run from the surface inwards. A smooth random field on (angle, depth)
    coordinates has zero lines that are mostly radial: those are the sulci, lined with grey matter; between them
    white-matter fingers reach into the gyri."""
    px, depth, n_lobe = h.px, h.depth, t.n_lobe
    sulc = _polar_noise(ra, h.phi, depth, int(ra.integers(28, 45)), 3)
    gy, gx = np.gradient(sulc)
    dist = np.abs(sulc) / (np.sqrt(gx * gx + gy * gy) + 1e-3) * px  # distance to the nearest zero line
    ctx = ra.uniform(0.06, 0.1) * (1.0 + 0.3 * n_lobe)  # cortical thickness at the surface (depth units)
    d_sulc = ra.uniform(0.25, 0.4) * (1.0 + 0.35 * n_lobe)  # how deep the sulci reach
    gm_w = ra.uniform(0.04, 0.07)  # grey matter lining either side of a sulcus (image units)
    csf_w = ra.uniform(0.008, 0.02)  # half-width of an open sulcus at the surface
    in_sulc = _ramp(d_sulc - depth, 0.04)
    lining = _ramp(gm_w - dist, 1.5 * px) * _ramp(d_sulc + ctx - depth, 0.04)
    gm_mask = np.maximum(_ramp(ctx - depth, 0.03), lining)  # cortical ribbon and sulcal banks
    par = t.wm + (t.gm - t.wm) * gm_mask
    open_sulc = _ramp(csf_w * (1.2 - depth / (d_sulc + 1e-6)) - dist, px) * in_sulc
    par += (t.csf - par) * open_sulc * ra.uniform(0.6, 0.95)
    par *= 1.0 + ra.uniform(0.04, 0.1) * n_lobe + ra.uniform(0.01, 0.03) * t.n_tex  # regional and fine texture
    return par


def _ventricles(ra: np.random.Generator, h: _Head) -> _Ventricles:
    """Frontal horns and bodies/occipital horns of both sides form a butterfly."""
    x, y, s, px = h.x, h.y, h.s, h.px
    v_scale = ra.uniform(0.55, 1.6)
    asym = ra.uniform(0.8, 1.22)
    v_base_y = ra.uniform(-0.16, 0.06) * s
    v_shift = ra.uniform(-0.05, 0.05) * s
    v_base_x = ra.uniform(0.035, 0.07) * s
    ang_f, ang_b = ra.uniform(0.15, 0.6), ra.uniform(0.05, 0.45)
    len_f, len_b = ra.uniform(0.1, 0.18) * s, ra.uniform(0.12, 0.25) * s
    wid = ra.uniform(0.03, 0.055) * s
    vent = np.zeros_like(x)
    for side, k in ((-1.0, 1.0), (1.0, asym)):
        sc = v_scale * k
        d_f = (side * math.sin(ang_f), -math.cos(ang_f))  # up and outwards
        d_b = (side * math.sin(ang_b), math.cos(ang_b))  # down and outwards
        bx = v_shift + side * v_base_x
        lf, lb, wv = len_f * sc, len_b * sc, wid * sc
        vf = _ellipse_mask(x, y, bx + d_f[0] * lf * 0.7, v_base_y + d_f[1] * lf * 0.7, d_f, lf, wv, px)
        vb = _ellipse_mask(x, y, bx + d_b[0] * lb * 0.7, v_base_y + d_b[1] * lb * 0.7, d_b, lb, wv * 0.8, px)
        vent = np.maximum(vent, np.maximum(vf, vb))
    return _Ventricles(vent, v_shift, v_base_x, v_base_y)


def _deep_nuclei_and_fissures(ra: np.random.Generator, h: _Head, v: _Ventricles) -> tuple[np.ndarray, np.ndarray]:
    """Deep grey nuclei (caudate/lentiform, thalamus) lateral to and behind the ventricles, and the sylvian
    fissures: CSF clefts from the lateral surface towards the insula. Returns (deep, sylvian) masks."""
    x, y, s, px = h.x, h.y, h.s, h.px
    deep = np.zeros_like(x)
    syl = np.zeros_like(x)
    for side in (-1.0, 1.0):
        nx_ = v.shift + side * (v.base_x + ra.uniform(0.07, 0.13) * s)
        ny_ = v.base_y + ra.uniform(-0.02, 0.06) * s
        ang = side * ra.uniform(0.1, 0.5)
        deep = np.maximum(
            deep,
            _ellipse_mask(
                x,
                y,
                nx_,
                ny_,
                (math.sin(ang), math.cos(ang)),
                ra.uniform(0.07, 0.12) * s,
                ra.uniform(0.03, 0.05) * s,
                4 * px,
            ),
        )
        tx_ = v.shift + side * ra.uniform(0.03, 0.07) * s
        ty_ = v.base_y + ra.uniform(0.12, 0.2) * s
        deep = np.maximum(
            deep,
            _ellipse_mask(x, y, tx_, ty_, (0.0, 1.0), ra.uniform(0.05, 0.08) * s, ra.uniform(0.035, 0.055) * s, 4 * px),
        )
        s_len, s_ang = ra.uniform(0.12, 0.22) * s, ra.uniform(-0.35, 0.25)
        s_y = v.base_y + ra.uniform(-0.04, 0.1) * s
        s_x = side * (h.a * h.r_br_mean - s_len * 0.8)
        d_s = (side * math.cos(s_ang), math.sin(s_ang))
        syl = np.maximum(syl, _ellipse_mask(x, y, s_x, s_y, d_s, s_len, ra.uniform(0.012, 0.025) * s, px))
    return deep, syl


def _sella(
    ra: np.random.Generator, h: _Head, t: _Tissue, par: np.ndarray, hard_fraction: float
) -> tuple[float, float, bool]:
    """Normal pituitary gland (all classes) and sphenoid air below it, drawn into `par`; returns the sella's
    centre and whether the gland is enlarged (a mimic: close to a small adenoma)."""
    x, y, px = h.x, h.y, h.px
    sel_x = ra.uniform(-0.015, 0.015)
    sel_y = h.b * h.r_br_mean * ra.uniform(0.5, 0.64)
    big_gland = ra.random() < hard_fraction  # mimic: an enlarged normal gland, close to a small adenoma
    gland_r = ra.uniform(0.032, 0.045) if big_gland else ra.uniform(0.016, 0.03)
    gland_c = ra.uniform(0.02, 0.08)
    if ra.random() < 0.85:
        gl = _ramp(gland_r - np.hypot(x - sel_x, y - sel_y), px)
        par += gland_c * gl
    if ra.random() < 0.6:
        air = _ellipse_mask(x, y, sel_x, sel_y + gland_r + 0.05, (1.0, 0.0), 0.05, 0.022, px)
        par += (0.3 * t.csf - par) * air * h.brain
    return sel_x, sel_y, big_gland


def _brain(
    ra: np.random.Generator, h: _Head, t: _Tissue, hard_fraction: float
) -> tuple[np.ndarray, _Ventricles, tuple[float, float, bool]]:
    """The normal brain every class shares: parenchyma, ventricles, deep nuclei, fissures and sella."""
    par = _cortex(ra, h, t)
    vent = _ventricles(ra, h)
    deep, syl = _deep_nuclei_and_fissures(ra, h, vent)
    par += (t.gm - par) * deep * ra.uniform(0.5, 0.9)
    par += (t.csf - par) * np.maximum(vent.mask, syl * ra.uniform(0.6, 0.95))
    if ra.random() < 0.7:  # midline (interhemispheric) fissure, outside the ventricular region
        fis = _ramp(0.5 * h.px - np.abs(h.x - vent.shift), h.px) * _ramp(np.abs(h.y) - 0.42 * h.b, 0.08)
        par += (t.csf - par) * (fis * ra.uniform(0.35, 0.85))
    return par, vent, _sella(ra, h, t, par, hard_fraction)


def _glioma(
    rl: np.random.Generator,
    h: _Head,
    t: _Tissue,
    par: np.ndarray,
    vent: np.ndarray,
    size: int,
    hard: bool,
    lesions: Lesions,
) -> None:
    """An intra-axial mass with lobulated edges, optional necrotic core and an oedema halo, drawn into `par`."""
    x, y, px, brain = h.x, h.y, h.px, h.brain
    ang, rr = rl.uniform(0.0, _TWO_PI), rl.uniform(0.15, 0.6)
    tx, ty = rr * h.r_br_mean * h.a * math.cos(ang), rr * h.r_br_mean * h.b * math.sin(ang)
    r0 = rl.uniform(0.05, 0.085) if hard else rl.uniform(0.09, 0.22) * lesions.scale
    dx, dy = x - tx, y - ty
    d = np.hypot(dx, dy)
    th = np.arctan2(dy, dx)
    lob = np.ones_like(d)
    for k in (2, 3, 4, 5):
        lob += rl.uniform(0.0, 0.24 / k) * np.cos(k * th + rl.uniform(0.0, _TWO_PI))
    n_lob = _smooth_noise(rl, size, 12)
    n_het = _smooth_noise(rl, size, 20)
    reff = r0 * lob * (1.0 + 0.16 * n_lob)
    mass = _ramp(reff - d, 1.5 * px) * brain
    sign = 1.0 if rl.random() < 0.65 else -1.0
    contrast = rl.uniform(0.04, 0.08) if hard else rl.uniform(0.12, 0.3) * lesions.contrast
    i_tum = t.wm + sign * contrast + (0.02 if hard else 0.07) * n_het  # against the white matter it sits in
    necrotic = (not hard) and rl.random() < 0.55
    k_core, nec_depth = rl.uniform(0.35, 0.6), rl.uniform(0.6, 1.0)
    if necrotic:
        core = _ramp(reff * k_core - d, 2.0 * px)
        i_tum = i_tum + (1.3 * t.csf - i_tum) * core * nec_depth
    halo_ext = rl.uniform(0.3, 0.9)
    e_sign = -1.0 if rl.random() < 0.6 else 1.0
    e_amp = rl.uniform(0.05, 0.13) * (0.3 if hard else 1.0)
    halo = np.clip((reff * (1.0 + halo_ext) - d) / (0.35 * r0), 0.0, 1.0) * brain * (1.0 - vent)
    par += e_sign * e_amp * halo
    par += (i_tum - par) * mass


def _meningioma(
    rl: np.random.Generator, h: _Head, t: _Tissue, par: np.ndarray, hard: bool, lesions: Lesions
) -> tuple[np.ndarray, float]:
    """An extra-axial, dural-based mass with a CSF cleft and a dural tail; returns (its mask, its intensity),
    painted over the composed image, and draws the cleft into `par`."""
    x, y, px, s = h.x, h.y, h.px, h.s
    psi = 0.5 * math.pi + rl.uniform(0.6, _TWO_PI - 0.6)  # anywhere but the skull base (sella region)
    h_psi = 1.0 + sum(h.harm_amp[i] * math.cos((i + 2) * psi + h.harm_ph[i]) for i in range(3))
    rin_psi = 1.0 - h.t_skull * (1.0 + h.t_var * math.cos(psi + h.t_ph))
    bx, by = h.a * rin_psi * h_psi * math.cos(psi), h.b * rin_psi * h_psi * math.sin(psi)
    nx, ny = bx / (h.a * h.a), by / (h.b * h.b)
    nn = math.hypot(nx, ny)
    nx, ny = nx / nn, ny / nn
    rad = rl.uniform(0.055, 0.085) if hard else rl.uniform(0.1, 0.21) * lesions.scale
    depth = rl.uniform(0.25, 0.6)
    mx, my = bx - nx * rad * depth, by - ny * rad * depth
    dx, dy = x - mx, y - my
    d = np.hypot(dx, dy)
    th = np.arctan2(dy, dx)
    shape = 1.0 + rl.uniform(0.0, 0.06) * np.cos(2 * th + rl.uniform(0.0, _TWO_PI))
    men_mask = _ramp(rad * shape - d, px) * h.inner
    contrast = rl.uniform(0.05, 0.09) if hard else rl.uniform(0.14, 0.36) * lesions.contrast
    cleft_amt, tail_on = rl.uniform(0.3, 0.7), rl.random() < 0.5
    tail_len, tail_th = rl.uniform(1.5, 2.6), rl.uniform(0.012, 0.022)
    if not hard:
        cleft = np.clip(_ramp(rad * shape + 1.5 * px - d, px) - men_mask, 0.0, 1.0) * h.brain
        par += (t.csf - par) * cleft * cleft_amt
        if tail_on:
            dphi = np.abs(np.angle(np.exp(1j * (h.phi - psi))))
            ang_w = tail_len * rad / (s * rin_psi)
            tail = np.clip(1.0 - dphi / ang_w, 0.0, 1.0) * _ramp((h.r - (h.r_in - h.gap - tail_th)) * s, px) * h.inner
            men_mask = np.maximum(men_mask, 0.8 * tail)
    return men_mask, t.gm + contrast


def _pituitary(
    rl: np.random.Generator,
    h: _Head,
    t: _Tissue,
    par: np.ndarray,
    sella: tuple[float, float],
    hard: bool,
    lesions: Lesions,
) -> None:
    """A sellar adenoma growing upwards (snowman waist, cysts), drawn into `par`."""
    x, y, px = h.x, h.y, h.px
    sel_x, sel_y = sella
    rad = rl.uniform(0.038, 0.055) if hard else rl.uniform(0.06, 0.11) * lesions.scale
    rx, ry = rad * rl.uniform(0.85, 1.05), rad * rl.uniform(1.0, 1.3)
    px0, py0 = sel_x + rl.uniform(-0.01, 0.01), sel_y - 0.3 * rad
    contrast = rl.uniform(0.05, 0.1) if hard else rl.uniform(0.15, 0.35) * lesions.contrast
    sign = 1.0 if rl.random() < 0.85 else -1.0
    snow, cyst = rl.random() < 0.35, rl.random() < 0.25
    snow_r, cyst_r = rl.uniform(0.45, 0.7) * rad, rl.uniform(0.25, 0.45) * rad
    mass = _ellipse_mask(x, y, px0, py0, (0.0, 1.0), ry, rx, px)
    if snow and not hard:
        mass = np.maximum(mass, _ramp(snow_r - np.hypot(x - px0, y - (py0 - ry * 0.95)), px))
    mass *= h.brain
    i_pit = t.gm + sign * contrast + 0.015 * t.n_tex
    if cyst and not hard:
        i_pit = i_pit + (1.5 * t.csf - i_pit) * _ramp(cyst_r - np.hypot(x - px0, y - py0), px)
    par += (i_pit - par) * mass


def _acquire(rq: np.random.Generator, img: np.ndarray, h: _Head, t: _Tissue, size: int) -> np.ndarray:
    """Coil sensitivity and bias field, gain, gamma, Rician noise and the display window, to uint8."""
    x0, y0 = h.x0, h.y0
    c = rq.uniform(-1.0, 1.0, size=5) * rq.uniform(0.0, 0.22)
    bias = np.exp(c[0] * x0 + c[1] * y0 + c[2] * x0 * y0 + c[3] * (x0 * x0 - 0.33) + c[4] * (y0 * y0 - 0.33))
    bias *= np.maximum(1.0 + rq.uniform(0.15, 0.28) * _smooth_noise(rq, size, 5), 0.4)  # receive-coil pattern
    bias *= 1.0 + rq.uniform(0.05, 0.45) * (np.minimum(h.r, 1.0) ** 2 - 0.5)  # surface coils: brighter rim
    gain, gamma = rq.uniform(0.85, 1.05), rq.uniform(0.8, 1.25)
    sigma = rq.uniform(0.006, 0.03)
    floor = sigma * rq.uniform(3.0, 3.6)  # window level above the background noise
    noise = rq.standard_normal((2, size, size)) * sigma
    # display window: the brightest normal tissue (skull or white matter) near the top of the range; it does
    # not look at the lesion, so the same head keeps the same pixels with and without a tumour
    peak = float(np.max(np.maximum((h.head - h.inner) * t.i_skull, h.brain * t.wm) * bias))
    img = np.power(np.maximum(img * bias, 0.0) * (1.0 / peak), gamma) * gain
    img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
    img = (img - floor) * (1.0 / (1.0 - floor))
    return np.clip(np.rint(img * 255.0), 0.0, 255.0).astype(np.uint8)


def _render(label: str, rng: np.random.Generator, size: int, lesions: Lesions = Lesions()) -> tuple[np.ndarray, bool]:
    """Draw one phantom; returns (uint8 image, hard-case flag). Three generators (anatomy, lesion, acquisition),
    so the same head keeps its anatomy whatever lesion it gets."""
    _check_label(label)
    _check_size(size)
    size = int(size)
    seeds = rng.integers(0, 2**62, size=3)
    ra, rl, rq = (np.random.default_rng(int(s)) for s in seeds)  # anatomy, lesion, acquisition
    h = _head_geometry(ra, size)
    t = _tissue(ra, size)
    par, vent, (sel_x, sel_y, big_gland) = _brain(ra, h, t, lesions.hard_fraction)
    hard = big_gland if label == "no_tumor" else bool(rl.random() < lesions.hard_fraction)
    men_mask: np.ndarray | None = None
    i_men = 0.0
    if label == "glioma":
        _glioma(rl, h, t, par, vent.mask, size, hard, lesions)
    elif label == "meningioma":
        men_mask, i_men = _meningioma(rl, h, t, par, hard, lesions)
    elif label == "pituitary":
        _pituitary(rl, h, t, par, (sel_x, sel_y), hard, lesions)
    img = (h.head - h.inner) * t.i_skull * (0.9 + 0.05 * t.n_tex) + (h.inner - h.brain) * t.csf + h.brain * par
    if men_mask is not None:
        img += (i_men * (1.0 + 0.012 * t.n_tex) - img) * men_mask
    return _acquire(rq, img, h, t, size), bool(hard)


def make_phantom(label: str, rng: np.random.Generator, size: int, lesions: Lesions = Lesions()) -> np.ndarray:
    """One synthetic axial brain slice of class `label` as a uint8 (size, size) grayscale array.

    All randomness comes from `rng` (three sub-streams for anatomy, lesion and acquisition), so callers
    control reproducibility; the same `rng` state gives the same head for every label, only the lesion
    differs; `lesions` sets how conspicuous the lesion is. Raises ValueError for an unknown label or size < 32.
    """
    return _render(label, rng, size, lesions)[0]


# ----------------------------------------------------------------------------------------------- copies
def _alter_copy(src: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Degrade a Training image the way real duplicates are: shift/rescale, mirror, levels, JPEG or blur.

    Geometry stays within what a copy detector can see through: a shift of at most 1 % of the side in any
    direction and, for half of the copies, a rescale of at most 2 %. (Measured on the real Sartaj images
    resized to 128 px, the 256-bit gradient hash moves by ~23 bits on average for a 1 % shift, ~21 for a
    2 % rescale, but ~45 for a 2 % shift and ~31 for a 3 % rescale, past the audit's 38-bit threshold.)
    """
    size = src.shape[0]
    mirrored = bool(rng.random() < 0.5)
    scale = rng.uniform(0.98, 1.02) if rng.random() < 0.5 else 1.0
    shift_r, shift_a = rng.uniform(0.0, 0.01) * size, rng.uniform(0.0, _TWO_PI)  # <= 1 % of the side
    shift_x, shift_y = shift_r * math.cos(shift_a), shift_r * math.sin(shift_a)
    contrast, brightness = rng.uniform(0.88, 1.12), rng.uniform(-10.0, 10.0)
    use_jpeg = rng.random() < 0.7
    quality, blur = int(rng.integers(75, 96)), rng.uniform(0.4, 0.9)

    centre, inv = size / 2.0, 1.0 / scale  # output pixel -> input pixel, scaling about the centre
    coeffs = (inv, 0.0, centre - inv * (centre + shift_x), 0.0, inv, centre - inv * (centre + shift_y))
    im = Image.fromarray(src).transform(
        (size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR, fillcolor=0
    )
    if mirrored:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(im, dtype=np.float64) * contrast + brightness
    im = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if use_jpeg:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as dec:
            im = dec.convert("L")
    else:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(im, dtype=np.uint8), mirrored


# ----------------------------------------------------------------------------------------------- dataset
def _n_copies(copies_fraction: float, n_test: int) -> int:
    """Copies per class: round(fraction * n_test), but at least one when copies are asked for at all."""
    if copies_fraction <= 0.0 or n_test <= 0:
        return 0
    return min(n_test, max(1, round(copies_fraction * n_test)))


def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG")


def write_phantom_dataset(
    out: Path,
    n_per_class: int,
    size: int,
    seed: int,
    test_fraction: float = 0.2,
    copies_fraction: float = 0.05,
    lesions: Lesions = Lesions(),
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write a Training/Testing phantom dataset under `out` and return its manifest (also `phantoms.json`).

    Per class, round(n_per_class * test_fraction) images go to Testing (at most n_per_class - 1) and the
    rest to Training, as ``<out>/<split>/<classdir>/<label>_<NNNN>.png``. round(copies_fraction * n_test)
    Testing images per class (at least one if copies_fraction > 0) are altered copies of a Training image
    of the same class, listed in the manifest so the leakage audit can be checked against ground truth.
    Refuses to write into an existing non-empty `out` so a real dataset is never clobbered. `progress(1)`
    is called after each image written.
    """
    out = Path(out)
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or n_per_class < 2:
        raise ValueError(f"n_per_class must be an integer >= 2, got {n_per_class!r}")
    _check_size(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, val in (("test_fraction", test_fraction), ("copies_fraction", copies_fraction)):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0.0 <= val < 1.0:
            raise ValueError(f"{name} must be a number in [0, 1), got {val!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"refusing to overwrite {out}: it exists and is not an empty directory")

    n_per_class, size, seed = int(n_per_class), int(size), int(seed)
    n_test = min(round(n_per_class * test_fraction), n_per_class - 1)
    n_train = n_per_class - n_test
    n_cp = _n_copies(float(copies_fraction), n_test)

    manifest: dict[str, Any] = {
        "generator": "neurocascade.data.phantoms",
        "version": 1,
        "seed": seed,
        "size": size,
        "n_per_class": n_per_class,
        "test_fraction": float(test_fraction),
        "copies_fraction": float(copies_fraction),
        "lesions": asdict(lesions),
        "classes": dict(CLASS_DIRS),
        "counts": {split: {label: 0 for label in LABELS} for split in SPLITS},
        "copies": [],
        "hard_cases": [],
    }
    for split in SPLITS:
        for label in LABELS:
            (out / split / CLASS_DIRS[label]).mkdir(parents=True, exist_ok=True)

    def rel(split: str, label: str, i: int) -> str:
        return f"{split}/{CLASS_DIRS[label]}/{label}_{i:04d}.png"

    def emit(relpath: str, arr: np.ndarray, split: str, label: str) -> None:
        _save_png(arr, out / relpath)
        manifest["counts"][split][label] += 1
        if progress is not None:
            progress(1)

    for ci, label in enumerate(LABELS):
        # copy plan first, so only the Training images that are sources are kept in memory
        plan_rng = np.random.default_rng(np.random.SeedSequence([seed, ci, 2, 0]))
        copy_idx = sorted(int(i) for i in plan_rng.choice(n_test, size=n_cp, replace=False)) if n_cp else []
        sources = [int(i) for i in plan_rng.choice(n_train, size=n_cp, replace=n_cp > n_train)] if n_cp else []
        source_of = dict(zip(copy_idx, sources))
        kept: dict[int, np.ndarray] = {}

        for i in range(n_train):
            arr, hard = _render(label, np.random.default_rng(np.random.SeedSequence([seed, ci, 0, i])), size, lesions)
            if i in sources:
                kept[i] = arr
            emit(rel("Training", label, i), arr, "Training", label)
            if hard:
                manifest["hard_cases"].append(rel("Training", label, i))

        for i in range(n_test):
            if i in source_of:
                crng = np.random.default_rng(np.random.SeedSequence([seed, ci, 3, i]))
                arr, mirrored = _alter_copy(kept[source_of[i]], crng)
                emit(rel("Testing", label, i), arr, "Testing", label)
                manifest["copies"].append(
                    {
                        "test": rel("Testing", label, i),
                        "source": rel("Training", label, source_of[i]),
                        "mirrored": mirrored,
                    }
                )
                continue
            arr, hard = _render(label, np.random.default_rng(np.random.SeedSequence([seed, ci, 1, i])), size, lesions)
            emit(rel("Testing", label, i), arr, "Testing", label)
            if hard:
                manifest["hard_cases"].append(rel("Testing", label, i))

    # the manifest is written last: a directory without it is an interrupted, incomplete run
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
