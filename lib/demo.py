"""Synthetic copy-move forgery data in the exact Kaggle layout, for tests and pipeline dry runs.

Figures are drawn procedurally: western blots and gels, fluorescence and histology
micrographs, line and bar plots, and compound figures of 2-4 panels with panel letters,
scale bars and labels. Forged images get 1-3 copy-move events (translation, rotation,
scaling, flips; hard or feathered edges) whose masks follow the competition's convention:
one channel per duplication event, holding the source region and all its copies.

Letters, scale bars and labels of compound figures are an overlay drawn after any forgery
(authors fake the data, then assemble the figure), so a copied panel never carries a
wrong panel letter. Every image has its own generator `default_rng([seed, stream, index])`,
so a file does not change when the number of other files does.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from tqdm import tqdm

from .errors import ProjectError
from .imageio import write_png
from .rle import rle_encode_instances
from .submission import write_csv

FONT = cv2.FONT_HERSHEY_SIMPLEX
BOLD_FONT = cv2.FONT_HERSHEY_DUPLEX

# Folders and files this module writes under its output folder (and deletes on overwrite).
GENERATED = ("train_images", "train_masks", "supplemental_images", "supplemental_masks",
             "test_images", "solution.csv", "sample_submission.csv", "train_manifest.csv")

# Per-image generator streams: adding test images never changes a training image.
_STREAM_TRAIN, _STREAM_SUPPLEMENTAL, _STREAM_TEST, _STREAM_IDS = 0, 1, 2, 3

# Real training masks: 1 instance ~68 %, 2 ~25 %, 3 ~6 %.
EVENT_COUNTS, EVENT_PROBS = (1, 2, 3), (0.65, 0.25, 0.10)

# RGB colours of plot series (matplotlib's default cycle, then black and grey).
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
           (148, 103, 189), (140, 86, 75), (0, 0, 0), (127, 127, 127))
PROTEINS = ("GAPDH", "b-actin", "p-ERK", "ERK", "p-AKT", "AKT", "LC3", "p62", "Tubulin",
            "Caspase-3", "PARP", "Bcl-2", "Bax", "HIF-1a", "STAT3", "p-STAT3", "Vinculin")
CONDITIONS = ("Ctrl", "WT", "KO", "siNC", "siRNA", "DMSO", "Vehicle", "+Drug", "0 h", "24 h",
              "48 h", "Sham", "Model", "Mock", "shCtrl", "shKD", "LPS", "OE")
STAINS = ("DAPI", "GFP", "Merge", "F-actin", "Ki67", "CD31", "TUNEL", "Hoechst", "EdU")
AXIS_TITLES = ("Relative expression", "Cell viability (%)", "Fold change", "Time (h)",
               "Concentration (uM)", "Tumor volume (mm3)", "Absorbance", "Days", "Dose (mg/kg)")

# Stain optical densities (RGB) for Beer-Lambert colouring of histology.
_HAEMATOXYLIN = np.array([0.65, 0.70, 0.29], np.float32)
_EOSIN = np.array([0.05, 0.90, 0.35], np.float32)  # a little blue absorption: pink, not magenta
_DAB = np.array([0.27, 0.57, 0.78], np.float32)


# ----------------------------------------------------------------------------- textures

def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float,
                  cell_x: float | None = None) -> np.ndarray:
    """Smooth random field in about [0, 1], float32 (h, w): coarse uniform noise upsampled
    bicubically; `cell` is the feature size in pixels (`cell_x` makes it anisotropic)."""
    gh = int(h / max(cell, 1.0)) + 2
    gw = int(w / max(cell_x or cell, 1.0)) + 2
    coarse = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _oriented_noise(rng: np.random.Generator, h: int, w: int, cell: float,
                    cell_along: float) -> np.ndarray:
    """Streaky noise (fibres) in [0, 1]: features `cell_along` long and `cell` wide, at a random
    angle (drawn on a larger square, rotated, cropped)."""
    d = int(np.ceil(np.hypot(h, w))) + 2
    field = _smooth_noise(rng, d, d, cell, cell_along)
    rotation = cv2.getRotationMatrix2D((d / 2, d / 2), rng.uniform(0, 180), 1.0)
    field = cv2.warpAffine(field, rotation, (d, d), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    y0, x0 = (d - h) // 2, (d - w) // 2
    return field[y0:y0 + h, x0:x0 + w]


def _fractal(rng: np.random.Generator, h: int, w: int, cells: tuple[float, ...]) -> np.ndarray:
    """Sum of smooth noises at several feature sizes (coarse weighted most), scaled to [0, 1]."""
    total = sum(_smooth_noise(rng, h, w, c) / (i + 1) for i, c in enumerate(cells))
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), max(float(sigma), 0.3))


def _to_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(a, 0, 255).astype(np.uint8)


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _scatter(rng: np.random.Generator, n: int, h: int, w: int, clustered: float) -> np.ndarray:
    """n points (x, y) in the image, a fraction `clustered` of them around a few cluster centres."""
    n_clustered = int(n * clustered)
    centres = rng.uniform((0, 0), (w, h), (rng.integers(2, 7), 2))
    around = centres[rng.integers(0, len(centres), n_clustered)]
    spread = rng.uniform(0.05, 0.15) * min(h, w)
    pts = np.concatenate([around + rng.normal(0, spread, (n_clustered, 2)),
                          rng.uniform((0, 0), (w, h), (n - n_clustered, 2))])
    return np.clip(pts, 0, (w - 1, h - 1)).astype(int)


# ----------------------------------------------------------------------------- panel kinds

def _blot_strip(rng: np.random.Generator, h: int, w: int, centres: np.ndarray,
                lane_w: float, n_rows: int) -> np.ndarray:
    """Band density (float32 (h, w), 0 = empty) of one blot strip with `n_rows` band rows."""
    ink = np.zeros((h, w), np.float32)
    rows = np.sort(rng.uniform(0.15, 0.85, n_rows)) * h
    for y in rows:
        thick = max(2.0, (rng.uniform(0.12, 0.35) if n_rows == 1 else rng.uniform(0.015, 0.06)) * h)
        # loading controls are even across lanes; treated samples vary, some lanes empty
        even = rng.random() < 0.35
        levels = rng.uniform(0.75, 1.0, len(centres)) if even else rng.uniform(0, 1, len(centres)) ** 0.7
        levels *= rng.uniform(0.4, 1.0)
        tilt = rng.uniform(-0.03, 0.03) * lane_w
        row = np.zeros_like(ink)
        for i, (cx, level) in enumerate(zip(centres, levels)):
            half_w = lane_w / 2 * rng.uniform(0.75, 0.95)
            half_h = thick / 2 * rng.uniform(0.7, 1.3) * (0.6 + 0.6 * level)  # strong bands are fatter
            cy = y + rng.normal(0, 0.5) + tilt * (i - len(centres) / 2) / len(centres)
            cv2.rectangle(row, (int(cx - half_w), int(cy - half_h)), (int(cx + half_w), int(cy + half_h)),
                          float(level), -1)
        # rounded, fuzzy band ends: blur more along the band than across it
        ink += cv2.GaussianBlur(row, (0, 0), sigmaX=lane_w * rng.uniform(0.05, 0.12),
                                sigmaY=thick * rng.uniform(0.15, 0.4) + 0.5)
    if rng.random() < 0.5:  # smear: bands trail downwards through the gel
        k = int(rng.integers(3, max(4, h // 6)))
        kernel = np.zeros((2 * k + 1, 1), np.float32)
        kernel[:k + 1, 0] = np.linspace(1.0, 0.2, k + 1)
        ink = np.maximum(ink, rng.uniform(0.2, 0.5) * cv2.filter2D(ink, -1, kernel / kernel.sum()))
    lanes = np.zeros(w, np.float32)
    for cx in centres:
        lanes[max(0, int(cx - lane_w / 2)):int(cx + lane_w / 2)] = rng.uniform(0, 0.08)
    blotch = _smooth_noise(rng, h, w, rng.uniform(8, 40)) * rng.uniform(0.02, 0.12)
    return ink * (0.9 + 0.2 * _smooth_noise(rng, h, w, 3)) + _blur(lanes[None, :].repeat(h, 0), 2) + blotch


def draw_blot(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Western blot or gel (RGB uint8 (h, w, 3)): lanes of blurred bands, light background or
    inverted (dark gel, bright bands), sometimes several strips with protein labels on the left."""
    img = np.full((h, w, 3), 255, np.uint8)
    label_w = int(w * rng.uniform(0.18, 0.28)) if w > 140 and rng.random() < 0.5 else 0
    # stacked strips are short (one protein each), so tall panels hold more of them
    stacked = h > 120 and rng.random() < 0.5
    n_strips = int(np.clip(round(h / rng.uniform(45, 100)), 2, 8)) if stacked else 1
    n_lanes = int(rng.integers(3, 13))
    pitch = (w - label_w) / (n_lanes + rng.uniform(0.2, 0.8))
    centres = label_w + pitch * (np.arange(n_lanes) + 0.5 + rng.uniform(0.1, 0.4))
    lane_w = pitch * rng.uniform(0.6, 0.9)
    inverted, tinted = rng.random() < 0.2, rng.random() < 0.2
    tint = rng.uniform(0.8, 1.0, 3) if tinted else np.ones(3)
    background = rng.uniform(25, 70) if inverted else rng.uniform(205, 248)
    gap = int(rng.integers(3, 9))
    for y0, y1 in _split(rng, 0, h, n_strips, gap if n_strips > 1 else 0, equal=rng.random() < 0.5):
        sh = y1 - y0
        ink = _blot_strip(rng, sh, w - label_w, centres - label_w, lane_w,
                          1 if n_strips > 1 and rng.random() < 0.7 else int(rng.integers(1, 7)))
        contrast = rng.uniform(150, 230)
        gray = background + contrast * ink if inverted else background - contrast * ink
        gray = gray + _sensor_noise(rng, gray.shape, rng.uniform(1.5, 5))
        img[y0:y1, label_w:] = _to_u8(gray[..., None] * tint[None, None, :])
        if label_w:
            scale = float(np.clip(min(sh, label_w) / 90, 0.3, 0.5))
            cv2.putText(img, str(rng.choice(PROTEINS)), (2, y0 + sh // 2 + 4), FONT, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return img


def draw_fluorescence(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Fluorescence micrograph (RGB uint8): dark field, blurred textured nuclei and cell bodies
    in one or two colour channels."""
    radius = rng.uniform(3, 11) * (min(h, w) / 300) ** 0.5
    n = int(np.clip(h * w * rng.uniform(0.05, 0.5) / (np.pi * (2 * radius) ** 2), 4, 400))
    nuclei, bodies = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    body_scale = rng.uniform(1.6, 3.0)
    for (x, y), r in zip(_scatter(rng, n, h, w, rng.uniform(0, 0.8)), radius * rng.lognormal(0, 0.25, n)):
        angle = rng.uniform(0, 180)
        cv2.ellipse(nuclei, (int(x), int(y)), (int(r) + 1, int(r * rng.uniform(0.55, 1)) + 1), angle,
                    0, 360, rng.uniform(0.35, 1.0), -1)
        dx, dy = rng.normal(0, r * 0.6, 2)
        cv2.ellipse(bodies, (int(x + dx), int(y + dy)),
                    (int(r * body_scale) + 1, int(r * body_scale * rng.uniform(0.4, 1)) + 1),
                    rng.uniform(0, 180), 0, 360, rng.uniform(0.2, 0.8), -1)
    nuclei = _blur(nuclei, radius * rng.uniform(0.15, 0.4)) * (0.55 + 0.7 * _smooth_noise(rng, h, w, 2.5))
    width = rng.uniform(1.5, 4)
    fibres = _oriented_noise(rng, h, w, width, width * rng.uniform(1.5, 4))
    bodies = _blur(bodies, radius * rng.uniform(0.4, 1.0)) * (0.3 + fibres)
    haze = _smooth_noise(rng, h, w, rng.uniform(40, 120)) * rng.uniform(0.0, 0.08)
    channels = np.zeros((h, w, 3), np.float32)
    mode = rng.choice(["nuclei+green", "nuclei+red", "green", "red", "blue", "gray"],
                      p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.15])
    if mode.startswith("nuclei"):
        channels[..., 2] = nuclei
        channels[..., 1 if mode.endswith("green") else 0] = bodies * rng.uniform(0.7, 1.3)
    else:
        signal = np.maximum(nuclei, bodies * rng.uniform(0.5, 1.0)) if rng.random() < 0.5 else nuclei
        for c in {"red": (0,), "green": (1,), "blue": (2,), "gray": (0, 1, 2)}[str(mode)]:
            channels[..., c] = signal
    gain = rng.uniform(180, 320)
    img = (channels + haze[..., None]) * gain + _sensor_noise(rng, channels.shape, rng.uniform(1, 6))
    return _to_u8(img)


def draw_histology(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Histology-like section (RGB uint8): pink eosin stroma with purple haematoxylin nuclei on
    a white background (or brown DAB staining on a blue counterstain), textured and noisy."""
    tissue = _fractal(rng, h, w, (min(h, w) / rng.uniform(1.5, 4), 30, 10))
    density = np.clip((tissue - rng.uniform(0.2, 0.5)) / 0.12, 0, 1)
    fibres = _oriented_noise(rng, h, w, rng.uniform(2, 5), rng.uniform(6, 20))
    n = int(h * w / rng.uniform(120, 500))
    pts = rng.uniform((0, 0), (w, h), (n, 2)).astype(int)
    pts = pts[density[pts[:, 1], pts[:, 0]] > rng.uniform(0.1, 0.5, len(pts))][:2500]
    nuclei = np.zeros((h, w), np.float32)
    size = rng.uniform(2, 5)
    for x, y in pts:
        r = size * rng.lognormal(0, 0.3)
        cv2.ellipse(nuclei, (int(x), int(y)), (int(r) + 1, int(r * rng.uniform(0.5, 1)) + 1),
                    rng.uniform(0, 180), 0, 360, rng.uniform(0.6, 1.4), -1)
    nuclei = _blur(nuclei, 0.8) * (0.7 + 0.6 * _smooth_noise(rng, h, w, 1.5))
    stroma = density * (0.25 + 0.6 * fibres) * rng.uniform(0.5, 1.0)
    if rng.random() < 0.3:  # immunohistochemistry: brown positive cells, pale blue counterstain
        positive = _blur((_smooth_noise(rng, h, w, rng.uniform(15, 40)) > 0.65).astype(np.float32), 2)
        od = (nuclei * 0.6 + 0.08 * density)[..., None] * _HAEMATOXYLIN \
            + (positive * density * (0.4 + fibres))[..., None] * _DAB
    else:
        od = (nuclei + 0.1 * density)[..., None] * _HAEMATOXYLIN + stroma[..., None] * _EOSIN
    img = 250.0 * np.exp(-od * rng.uniform(0.8, 1.3)) + _sensor_noise(rng, od.shape, rng.uniform(2, 6))
    return _to_u8(img)


def _text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int]:
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    return tw, th


def _vertical_text(img: np.ndarray, text: str, x: int, y_centre: int, scale: float) -> None:
    """Write `text` rotated 90 degrees (reading upwards) with its left edge at x, centred on y."""
    tw, th = _text_size(text, scale)
    tile = np.full((th + 6, tw + 2, 3), 255, np.uint8)
    cv2.putText(tile, text, (1, th + 2), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    tile = cv2.rotate(tile, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = max(0, y_centre - tile.shape[0] // 2)
    region = img[y0:y0 + tile.shape[0], x:x + tile.shape[1]]
    np.minimum(region, tile[:region.shape[0], :region.shape[1]], out=region)


def _nice_max(value: float) -> float:
    """The smallest 1-2-5 number times a power of ten at or above `value`."""
    power = 10.0 ** np.floor(np.log10(max(value, 1e-9)))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value))


def draw_plot(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Line or bar chart (RGB uint8) on white: axes, ticks, tick labels, axis titles, series,
    optional error bars and legend."""
    img = np.full((h, w, 3), 255, np.uint8)
    scale = float(np.clip(min(h, w) / 700, 0.3, 0.5))
    ymax = _nice_max(rng.uniform(0.8, 1.0) * 10.0 ** rng.integers(0, 4))
    n_ticks = int(rng.choice([4, 5]))  # 4 or 5 steps of a 1-2-2.5-5 maximum stay round numbers
    tick_values = np.linspace(0, ymax, n_ticks + 1)
    tick_labels = [f"{v:g}" for v in tick_values]
    tw, th = _text_size(max(tick_labels, key=len), scale)
    titled = min(h, w) > 150
    x0 = tw + 10 + (2 * th + 4 if titled else 0)
    y1 = h - (2 * th + 12 + (2 * th if titled else 0))
    x1, y0 = w - max(6, w // 25), max(6, h // 15)
    bars = rng.random() < 0.55
    n_series = int(rng.integers(1, 4))
    n_x = int(rng.integers(2, 6)) if bars else int(rng.integers(5, 13))
    colours = [PALETTE[i] for i in rng.permutation(len(PALETTE))[:n_series]]
    values = _series_values(rng, n_series, n_x, ymax)

    def to_y(value: np.ndarray | float) -> np.ndarray:
        return (y1 - (np.asarray(value) / ymax) * (y1 - y0)).astype(int)

    xs = np.linspace(x0, x1, n_x + 2)[1:-1] if bars else np.linspace(x0 + 8, x1 - 8, n_x)
    if bars:
        _draw_bars(rng, img, xs, values, to_y, colours, (x1 - x0) / (n_x + 1) * 0.8)
    else:
        _draw_lines(rng, img, xs, values, to_y, colours)
    _draw_axes(rng, img, (x0, y0, x1, y1))
    for value, text in zip(tick_values, tick_labels):
        y = int(to_y(value))
        cv2.line(img, (x0 - 4, y), (x0, y), (0, 0, 0), 1)
        cv2.putText(img, text, (x0 - 6 - _text_size(text, scale)[0], y + th // 2), FONT, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    names = list(rng.choice(CONDITIONS, n_x, replace=False)) if bars else [str(i * 2) for i in range(n_x)]
    # label every k-th tick so that crowded labels do not run into each other
    every = int(np.ceil((max(_text_size(t, scale)[0] for t in names) + 6) * n_x / max(x1 - x0, 1)))
    for i, (x, text) in enumerate(zip(xs, names)):
        cv2.line(img, (int(x), y1), (int(x), y1 + 4), (0, 0, 0), 1)
        if i % max(every, 1) == 0:
            cv2.putText(img, text, (int(x) - _text_size(text, scale)[0] // 2, y1 + th + 8), FONT, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
    if titled:
        title = str(rng.choice(AXIS_TITLES))
        _vertical_text(img, title, 2, (y0 + y1) // 2, scale)
        xtitle = "Group" if bars else str(rng.choice(("Time (h)", "Days", "Dose (uM)")))
        cv2.putText(img, xtitle, ((x0 + x1 - _text_size(xtitle, scale)[0]) // 2, h - 6), FONT, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    if n_series > 1:
        _draw_legend(rng, img, (x0, y0, x1, y1), colours, scale, bars)
    return img


def _series_values(rng: np.random.Generator, n_series: int, n_x: int, ymax: float) -> np.ndarray:
    """Positive values (n_series, n_x) below ymax: random walks or saturating curves."""
    if rng.random() < 0.5:
        steps = rng.normal(0, 0.12, (n_series, n_x)).cumsum(axis=1)
        curves = 0.5 + steps - steps.mean(axis=1, keepdims=True) + rng.uniform(-0.2, 0.2, (n_series, 1))
    else:
        t = np.linspace(0, 1, n_x)[None, :]
        rate = rng.uniform(1, 6, (n_series, 1))
        curves = 0.1 + rng.uniform(0.3, 0.8, (n_series, 1)) * (1 - np.exp(-rate * t))
    return np.clip(curves, 0.05, 0.85) * ymax


def _draw_bars(rng: np.random.Generator, img: np.ndarray, xs: np.ndarray, values: np.ndarray,
               to_y: Callable, colours: list, group_w: float) -> None:
    n_series = len(values)
    bar_w = group_w / n_series
    errors = values * rng.uniform(0.03, 0.2, values.shape)
    hollow = rng.random() < 0.25
    for s, colour in enumerate(colours):
        for x, v, e in zip(xs, values[s], errors[s]):
            left = int(x - group_w / 2 + s * bar_w + 1)
            right = max(left + 2, int(left + bar_w - 2))
            top, base, err_top = int(to_y(v)), int(to_y(0)), int(to_y(v + e))
            cv2.rectangle(img, (left, top), (right, base), (255, 255, 255) if hollow else colour, -1)
            cv2.rectangle(img, (left, top), (right, base), (0, 0, 0) if hollow else colour, 1)
            mid = (left + right) // 2
            cv2.line(img, (mid, top), (mid, err_top), (0, 0, 0), 1)
            cv2.line(img, (mid - 3, err_top), (mid + 3, err_top), (0, 0, 0), 1)
            if rng.random() < 0.15:
                cv2.putText(img, "*" * int(rng.integers(1, 4)), (mid - 6, err_top - 3), FONT, 0.35,
                            (0, 0, 0), 1, cv2.LINE_AA)


def _draw_lines(rng: np.random.Generator, img: np.ndarray, xs: np.ndarray, values: np.ndarray,
                to_y: Callable, colours: list) -> None:
    thickness = int(rng.integers(1, 3))
    with_errors = rng.random() < 0.5
    for s, colour in enumerate(colours):
        pts = np.stack([xs, to_y(values[s])], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, thickness, cv2.LINE_AA)
        marker = int(rng.integers(0, 3))
        for (x, y), e in zip(pts, values[s] * rng.uniform(0.02, 0.1, len(pts))):
            if with_errors:
                dy = abs(int(to_y(0)) - int(to_y(e)))
                cv2.line(img, (int(x), int(y - dy)), (int(x), int(y + dy)), colour, 1)
            if marker == 0:
                cv2.circle(img, (int(x), int(y)), 3, colour, -1, cv2.LINE_AA)
            elif marker == 1:
                cv2.rectangle(img, (int(x) - 3, int(y) - 3), (int(x) + 3, int(y) + 3), colour, -1)


def _draw_axes(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if rng.random() < 0.3:
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    else:
        cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 1)
        cv2.line(img, (x0, y1), (x1, y1), (0, 0, 0), 1)


def _draw_legend(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int],
                 colours: list, scale: float, bars: bool) -> None:
    x0, y0, x1, _ = box
    names = rng.choice(CONDITIONS, len(colours), replace=False)
    width = max(_text_size(str(n), scale)[0] for n in names) + 26
    line_h = _text_size("Ag", scale)[1] + 6
    left = x1 - width - 4 if rng.random() < 0.6 else x0 + 6
    for i, (name, colour) in enumerate(zip(names, colours)):
        y = y0 + 4 + (i + 1) * line_h
        if bars:
            cv2.rectangle(img, (left, y - line_h + 6), (left + 12, y), colour, -1)
        else:
            cv2.line(img, (left, y - line_h // 2 + 3), (left + 16, y - line_h // 2 + 3), colour, 2)
        cv2.putText(img, str(name), (left + 20, y), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


PANEL_KINDS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "blot": draw_blot, "fluorescence": draw_fluorescence, "histology": draw_histology, "plot": draw_plot,
}
_KIND_PROBS = {"blot": 0.3, "fluorescence": 0.33, "histology": 0.2, "plot": 0.17}
_MICROSCOPY = ("fluorescence", "histology")
_LABEL_COLOURS = ((255, 255, 255), (80, 255, 80), (255, 90, 90), (110, 160, 255))  # channel names


# ----------------------------------------------------------------------------- figures

@dataclass(frozen=True)
class Panel:
    """One panel of a figure: a rectangle [x0, x1) x [y0, y1) and the kind drawn in it."""

    x0: int
    y0: int
    x1: int
    y1: int
    kind: str

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height


class _Overlay:
    """Letters, scale bars and labels kept apart from the content: an RGB layer plus opacity.

    The same overlay is rendered over the authentic and the forged content, so it never
    differs between twins and is never part of a copied region."""

    def __init__(self, h: int, w: int) -> None:
        self.rgb = np.zeros((h, w, 3), np.uint8)
        self.alpha = np.zeros((h, w), np.uint8)

    def text(self, text: str, org: tuple[int, int], scale: float, colour: tuple, thickness: int,
             font: int = FONT) -> None:
        # the colour layer is drawn bolder than the opacity so anti-aliased edges never show black
        cv2.putText(self.rgb, text, org, font, scale, colour, thickness + 2)
        cv2.putText(self.alpha, text, org, font, scale, 255, thickness, cv2.LINE_AA)

    def rect(self, p0: tuple[int, int], p1: tuple[int, int], colour: tuple) -> None:
        cv2.rectangle(self.rgb, p0, p1, colour, -1)
        cv2.rectangle(self.alpha, p0, p1, 255, -1)


@dataclass
class Figure:
    """A drawn figure: `content` is the data a forger copies from, `panels` its rectangles, and
    the overlay (letters, scale bars, labels) is drawn over any content by `render`."""

    content: np.ndarray
    panels: list[Panel]
    overlay_rgb: np.ndarray
    overlay_alpha: np.ndarray

    def render(self, content: np.ndarray | None = None) -> np.ndarray:
        """Return `content` (default: the figure's own) with the overlay drawn over it, RGB uint8."""
        image = (self.content if content is None else content).copy()
        covered = self.overlay_alpha > 0  # blend only there: overlays cover a few % of the image
        alpha = self.overlay_alpha[covered][:, None].astype(np.float32) / 255.0
        mixed = image[covered] * (1 - alpha) + self.overlay_rgb[covered] * alpha
        image[covered] = np.rint(mixed).astype(np.uint8)
        return image


# Compound layouts as panels per row, with relative frequencies.
_LAYOUTS = (((2,), 3), ((1, 1), 2), ((2, 2), 4), ((3,), 2), ((1, 2), 1), ((2, 1), 1),
            ((1, 1, 1), 1), ((4,), 1), ((3, 1), 1))
_MIN_PANEL = 64


def _split(rng: np.random.Generator, start: int, stop: int, n: int, gutter: int,
           equal: bool) -> list[tuple[int, int]]:
    """Split [start, stop) into n spans separated by `gutter` pixels, equal or of random sizes."""
    usable = stop - start - gutter * (n - 1)
    weights = np.ones(n) if equal else rng.dirichlet(np.full(n, 8.0))
    edges = np.round(np.concatenate(([0.0], np.cumsum(weights) / weights.sum())) * usable).astype(int)
    return [(start + int(edges[i]) + i * gutter, start + int(edges[i + 1]) + i * gutter) for i in range(n)]


def _layout(rng: np.random.Generator, h: int, w: int) -> list[tuple[int, int, int, int]]:
    """Panel rectangles (x0, y0, x1, y1): the whole image, or a grid of 2-4 panels with gutters."""
    margin, gutter = int(rng.integers(0, 6)), int(rng.integers(3, 10))
    fits = [(rows, p) for rows, p in _LAYOUTS
            if (h - 2 * margin - gutter * (len(rows) - 1)) / len(rows) >= _MIN_PANEL * 1.2
            and (w - 2 * margin - gutter * (max(rows) - 1)) / max(rows) >= _MIN_PANEL * 1.2]
    if not fits or rng.random() < 0.5:
        return [(0, 0, w, h)]
    probs = np.array([p for _, p in fits], float)
    rows = fits[rng.choice(len(fits), p=probs / probs.sum())][0]
    equal = rng.random() < 0.7
    rects = []
    for (y0, y1), n_cols in zip(_split(rng, margin, h - margin, len(rows), gutter, equal), rows):
        for x0, x1 in _split(rng, margin, w - margin, n_cols, gutter, equal or rng.random() < 0.5):
            rects.append((x0, y0, x1, y1))
    return rects


def _panel_kinds(rng: np.random.Generator, n: int) -> list[str]:
    """Kinds of a figure's n panels: often all one kind (as in real figures), else mixed."""
    names, probs = list(_KIND_PROBS), list(_KIND_PROBS.values())
    if n > 1 and rng.random() < 0.6:
        return [str(rng.choice(names, p=probs))] * n
    return [str(k) for k in rng.choice(names, n, p=probs)]


def _is_dark(patch: np.ndarray) -> bool:
    return float(patch.mean()) < 110


def _annotate(rng: np.random.Generator, overlay: _Overlay, content: np.ndarray,
              panels: list[Panel]) -> None:
    """Draw panel letters (compound figures), scale bars and labels (microscopy) on the overlay."""
    compound = len(panels) > 1
    corner_right = rng.random() < 0.15
    letters = "ABCD" if rng.random() < 0.8 else "abcd"
    letter_scale = rng.uniform(0.5, 0.9) * float(np.clip(min(p.width for p in panels) / 200, 0.6, 1.2))
    for i, p in enumerate(panels):
        patch = content[p.y0:p.y0 + 24, p.x0:p.x0 + 24]
        colour = (255, 255, 255) if _is_dark(patch) else (0, 0, 0)
        if compound:
            tw, th = _text_size(letters[i], letter_scale, 2)
            x = p.x1 - tw - 5 if corner_right else p.x0 + 4
            overlay.text(letters[i], (x, p.y0 + th + 5), letter_scale, colour, 2, BOLD_FONT)
        if p.kind in _MICROSCOPY and rng.random() < (0.7 if compound else 0.5):
            _scale_bar(rng, overlay, content, p)
        if p.kind == "fluorescence" and compound and rng.random() < 0.5:
            label = str(rng.choice(STAINS + CONDITIONS))
            scale = float(np.clip(p.width / 350, 0.3, 0.55))
            tw, th = _text_size(label, scale)
            tint = _LABEL_COLOURS[rng.integers(len(_LABEL_COLOURS))]
            x = p.x0 + 4 if corner_right else p.x1 - tw - 5
            overlay.text(label, (x, p.y0 + th + 6), scale, tint, 1)


def _scale_bar(rng: np.random.Generator, overlay: _Overlay, content: np.ndarray, p: Panel) -> None:
    """White (or black on light panels) scale bar in the bottom-right corner, maybe with '50 um'."""
    length = int(p.width * rng.uniform(0.12, 0.25))
    thick = int(rng.integers(2, 5))
    x1, y1 = p.x1 - int(p.width * 0.05) - 2, p.y1 - int(p.height * 0.05) - 2
    colour = (255, 255, 255) if _is_dark(content[y1 - 30:y1, x1 - length:x1]) else (0, 0, 0)
    overlay.rect((x1 - length, y1 - thick), (x1, y1), colour)
    if rng.random() < 0.6:
        text = f"{rng.choice([10, 20, 50, 100, 200])} um"
        scale = float(np.clip(p.width / 450, 0.3, 0.5))
        tw, _ = _text_size(text, scale)
        overlay.text(text, (x1 - length // 2 - tw // 2, y1 - thick - 4), scale, colour, 1)


def draw_figure(rng: np.random.Generator, h: int, w: int) -> Figure:
    """Draw a scientific-figure-like image of size (h, w): one panel or a compound figure.

    Returns a Figure; `figure.render()` is the finished RGB uint8 image."""
    content = np.full((h, w, 3), 255, np.uint8)
    rects = _layout(rng, h, w)
    panels = [Panel(*r, kind=k) for r, k in zip(rects, _panel_kinds(rng, len(rects)))]
    for p in panels:
        content[p.y0:p.y1, p.x0:p.x1] = PANEL_KINDS[p.kind](rng, p.height, p.width)
    overlay = _Overlay(h, w)
    _annotate(rng, overlay, content, panels)
    return Figure(content, panels, overlay.rgb, overlay.alpha)


# ----------------------------------------------------------------------------- forging

@dataclass
class Copy:
    """One pasted copy: `matrix` (2x3) maps a source pixel (x, y, 1) to its destination."""

    transform: str
    matrix: np.ndarray
    mask: np.ndarray


@dataclass
class Event:
    """One duplication event: a source region and its copies (usually one, sometimes two)."""

    kind: str  # "region" (part of a panel) or "panel" (a whole panel overwritten)
    source: np.ndarray  # bool (H, W)
    feathered: bool
    copies: list[Copy] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        """The event's instance channel, uint8 0/1: source and every copy together."""
        union = self.source.copy()
        for c in self.copies:
            union |= c.mask
        return union.astype(np.uint8)


_TRANSFORMS = ("translate", "flip", "rotate90", "rotate", "scale", "combined")
_TRANSFORM_PROBS = (0.55, 0.12, 0.10, 0.08, 0.10, 0.05)
# integer matrices (rotate90: any multiple of 90 degrees), so the copy is pixel-exact
_EXACT = ("translate", "flip", "rotate90")


def _rotation(degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _sample_linear(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A transform name and its 2x2 linear part (image coordinates, x right, y down)."""
    name = str(rng.choice(_TRANSFORMS, p=_TRANSFORM_PROBS))
    flip = np.diag([-1.0, 1.0]) if rng.random() < 0.5 else np.diag([1.0, -1.0])
    small_angle = rng.choice([-1, 1]) * rng.uniform(3, 30)
    linear = {
        "translate": np.eye(2),
        "flip": flip,
        "rotate90": np.rint(_rotation(90.0 * rng.integers(1, 4))),
        "rotate": _rotation(small_angle),
        "scale": np.eye(2) * rng.uniform(0.7, 1.4),
        "combined": (_rotation(small_angle) @ (flip if rng.random() < 0.5 else np.eye(2))
                     * rng.uniform(0.75, 1.3)),
    }[name]
    return name, linear


def _region_shape(rng: np.random.Generator, bh: int, bw: int) -> np.ndarray:
    """A bool mask (bh, bw): a rectangle, a union of ellipses or a smooth random polygon."""
    style = rng.choice(["rect", "ellipses", "polygon"], p=[0.45, 0.3, 0.25])
    if style == "rect":
        return np.ones((bh, bw), bool)
    canvas = np.zeros((bh, bw), np.uint8)
    if style == "ellipses":
        for _ in range(int(rng.integers(1, 5))):
            ax = (int(bw * rng.uniform(0.2, 0.5)) + 1, int(bh * rng.uniform(0.2, 0.5)) + 1)
            centre = (int(rng.uniform(ax[0], bw - ax[0] + 1)), int(rng.uniform(ax[1], bh - ax[1] + 1)))
            cv2.ellipse(canvas, centre, ax, 0, 0, 360, 1, -1)
    else:
        k = int(rng.integers(8, 17))
        radius = np.convolve(np.tile(rng.uniform(0.5, 1.0, k), 3), np.ones(3) / 3, "same")[k:2 * k]
        angles = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, 0.3)
        pts = np.stack([(1 + radius * np.cos(angles)) * (bw - 1) / 2,
                        (1 + radius * np.sin(angles)) * (bh - 1) / 2], axis=1)
        cv2.fillPoly(canvas, [np.rint(pts).astype(np.int32)], 1)
    return canvas.astype(bool) if canvas.any() else np.ones((bh, bw), bool)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a non-empty mask, exclusive ends."""
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _warp(image: np.ndarray, matrix: np.ndarray, exact: bool) -> np.ndarray:
    """Warp with the same size; outside the image reads as 0 (a reflecting border would echo
    a warped mask back into the image)."""
    h, w = image.shape[:2]
    flags = cv2.INTER_NEAREST if exact else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix.astype(np.float64), (w, h), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _paste(image: np.ndarray, copy: Copy, feather: float) -> None:
    """Paste the warped image into `copy.mask`, hard or feathered inwards (never outside the mask)."""
    warped = _warp(image, copy.matrix, copy.transform in _EXACT)
    if feather <= 0:
        image[copy.mask] = warped[copy.mask]
        return
    alpha = (_blur(copy.mask.astype(np.float32), feather) * copy.mask)[..., None]
    mixed = warped.astype(np.float32) * alpha + image.astype(np.float32) * (1 - alpha)
    image[copy.mask] = np.rint(mixed[copy.mask]).astype(np.uint8)


def _flat_background(image: np.ndarray, panels: list[Panel]) -> np.ndarray:
    """Bool map of perfectly flat pixels (gutters, label columns; drawn data always has noise),
    left False inside plots, which are flat almost everywhere."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    kernel = np.ones((5, 5), np.uint8)
    flat = cv2.dilate(gray, kernel) == cv2.erode(gray, kernel)
    for p in panels:
        if p.kind == "plot":
            flat[p.y0:p.y1, p.x0:p.x1] = False
    return flat


def _mostly_data(mask: np.ndarray, flat: np.ndarray) -> bool:
    # a region over a gutter or a label column looks like a white patch, not a forgery
    return float(flat[mask].mean()) < 0.05


def _place_copy(rng: np.random.Generator, source: np.ndarray, target: Panel, blocked: np.ndarray,
                flat: np.ndarray, tries: int = 12) -> Copy | None:
    """Find a transform and position that put the warped source fully inside `target`, clear of
    `blocked` and of flat background; None when none is found in `tries` attempts."""
    x0, y0, x1, y1 = _bbox(source)
    corners = np.array([[x0, y0], [x1 - 1, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], float).T
    for _ in range(tries):
        name, linear = _sample_linear(rng)
        moved = linear @ corners
        margin = 0 if name in _EXACT else 1  # interpolated copies may spill half a pixel
        lo_x, hi_x = target.x0 + margin - moved[0].min(), target.x1 - 1 - margin - moved[0].max()
        lo_y, hi_y = target.y0 + margin - moved[1].min(), target.y1 - 1 - margin - moved[1].max()
        if hi_x < lo_x or hi_y < lo_y:
            continue
        shift = (int(np.floor(rng.uniform(np.ceil(lo_x), np.floor(hi_x) + 1))),
                 int(np.floor(rng.uniform(np.ceil(lo_y), np.floor(hi_y) + 1))))
        matrix = np.hstack([linear, np.array(shift, float)[:, None]])
        dest = _warp(source.astype(np.uint8), matrix, exact=True).astype(bool)
        if dest.any() and not (dest & blocked).any() and _mostly_data(dest, flat):
            return Copy(name, matrix, dest)
    return None


def _source_region(rng: np.random.Generator, image: np.ndarray, panel: Panel, area: float,
                   blocked: np.ndarray, flat: np.ndarray) -> np.ndarray | None:
    """A textured region of about `area` pixels inside `panel`, clear of `blocked`, or None."""
    aspect = float(np.exp(rng.uniform(np.log(1 / 3), np.log(3))))
    bw = int(np.clip(np.sqrt(area * aspect), 6, panel.width * 0.6))
    bh = int(np.clip(area / bw, 6, panel.height * 0.6))
    shape = _region_shape(rng, bh, bw)
    for _ in range(8):
        x = int(rng.integers(panel.x0, panel.x1 - bw + 1))
        y = int(rng.integers(panel.y0, panel.y1 - bh + 1))
        mask = np.zeros(image.shape[:2], bool)
        mask[y:y + bh, x:x + bw] = shape
        # a featureless region (empty plot background) would be an invisible copy
        if not (mask & blocked).any() and _mostly_data(mask, flat) and image[mask].std() > 8:
            return mask
    return None


def _mean(image: np.ndarray, panel: Panel) -> float:
    return float(image[panel.y0:panel.y1, panel.x0:panel.x1].mean())


def _region_event(rng: np.random.Generator, image: np.ndarray, panels: list[Panel],
                  occupied: np.ndarray, flat: np.ndarray, area: float) -> Event | None:
    """A region of one panel copied once (sometimes twice) into another panel or the same one."""
    weights = np.array([0.3 if p.kind == "plot" else 1.0 for p in panels])
    panel = panels[rng.choice(len(panels), p=weights / weights.sum())]
    source = _source_region(rng, image, panel, area, _dilate(occupied, 2), flat)
    if source is None:
        return None
    event = Event("region", source, feathered=rng.random() < 0.3)
    for _ in range(2 if rng.random() < 0.12 else 1):
        # another panel of the same kind and brightness most often; a cell pasted into a blot,
        # or a light blot band into an inverted gel, fools nobody
        same_kind = [p for p in panels if p != panel and p.kind == panel.kind
                     and abs(_mean(image, p) - _mean(image, panel)) < 40]
        target = same_kind[rng.integers(len(same_kind))] if same_kind and rng.random() < 0.85 else panel
        copy = _place_copy(rng, source, target, _dilate(occupied | event.mask.astype(bool), 2), flat)
        if copy is not None:
            event.copies.append(copy)
    return event if event.copies else None


def _rect_matrix(src: tuple[float, float, float, float], dst: Panel, flip_x: bool,
                 flip_y: bool) -> np.ndarray:
    """2x3 matrix mapping pixel centres of rectangle `src` (x0, y0, x1, y1) onto panel `dst`."""
    sx, sy = dst.width / (src[2] - src[0]), dst.height / (src[3] - src[1])
    rows = []
    for s, lo, d_lo, d_hi, flip, axis in ((sx, src[0], dst.x0, dst.x1, flip_x, 0),
                                          (sy, src[1], dst.y0, dst.y1, flip_y, 1)):
        row = np.zeros(3)
        # x' = d_lo + (x - lo + 0.5) * s - 0.5, mirrored about the panel when flipped
        row[axis], row[2] = (-s, d_hi - 0.5 - (0.5 - lo) * s) if flip else (s, d_lo - 0.5 + (0.5 - lo) * s)
        rows.append(row)
    return np.array(rows)


def _panel_event(rng: np.random.Generator, panels: list[Panel], occupied: np.ndarray) -> Event | None:
    """A whole panel overwritten by a (flipped, rescaled) copy of another panel of the same kind."""
    pairs = [(a, b) for a in panels for b in panels if a != b and a.kind == b.kind
             and not occupied[a.y0:a.y1, a.x0:a.x1].any() and not occupied[b.y0:b.y1, b.x0:b.x1].any()]
    if not pairs:
        return None
    a, b = pairs[rng.integers(len(pairs))]
    # the largest crop of `a` with the aspect ratio of `b`, anywhere in `a`
    fit = min(a.width / b.width, a.height / b.height)
    cw, ch = max(1, round(b.width * fit)), max(1, round(b.height * fit))
    cx, cy = a.x0 + int(rng.integers(0, a.width - cw + 1)), a.y0 + int(rng.integers(0, a.height - ch + 1))
    flip_x, flip_y = rng.random() < 0.2, rng.random() < 0.1
    matrix = _rect_matrix((cx, cy, cx + cw, cy + ch), b, flip_x, flip_y)
    exact = (cw, ch) == (b.width, b.height)
    names = {(False, False): "translate", (True, False): "flip", (False, True): "flip",
             (True, True): "rotate90"}  # both flips: a 180-degree turn
    transform = names[(flip_x, flip_y)] if exact else "scale"
    source = np.zeros(occupied.shape, bool)
    source[cy:cy + ch, cx:cx + cw] = True
    dest = np.zeros(occupied.shape, bool)
    dest[b.y0:b.y1, b.x0:b.x1] = True
    return Event("panel", source, feathered=False, copies=[Copy(transform, matrix, dest)])


def _region_area(rng: np.random.Generator, image_area: int) -> float:
    """Pixels of one region: log-uniform from 0.1 % to 15 % of the image."""
    return float(np.exp(rng.uniform(np.log(0.001), np.log(0.15)))) * image_area


def forge(rng: np.random.Generator, image: np.ndarray, panels: list[Panel],
          n_events: int) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """Apply up to `n_events` non-overlapping copy-move events to a copy of `image`.

    Returns (forged image, masks uint8 (n, H, W) with one channel per event, events). An event
    that cannot be placed after a few tries is skipped; at least one is always placed."""
    forged = image.copy()
    h, w = image.shape[:2]
    occupied = np.zeros((h, w), bool)
    flat = _flat_background(image, panels)
    events: list[Event] = []
    for attempt in range(60):
        if len(events) == n_events or (attempt >= 30 and events):
            break
        area = _region_area(rng, h * w) / 2 ** (attempt // 10)  # shrink when nothing fits
        # whole-panel reuse only in figures of 3+ panels: in a 2-panel figure it would mask ~everything
        whole = attempt == 0 and len(panels) > 2 and rng.random() < 0.22
        event = _panel_event(rng, panels, occupied) if whole else None
        event = event or _region_event(rng, forged, panels, occupied, flat, area)
        if event is None:
            continue
        feather = rng.uniform(0.8, 2.5) if event.feathered else 0.0
        for copy in event.copies:
            _paste(forged, copy, feather)
        occupied |= event.mask.astype(bool)
        events.append(event)
    if not events:
        raise RuntimeError(f"no copy-move event fits a {h}x{w} image with {len(panels)} panels")
    return forged, np.stack([e.mask for e in events]), events


# ----------------------------------------------------------------------------- dataset

@dataclass
class Case:
    """One generated case: the authentic image (the twin), and for a forgery its forged image
    and masks. Images are RGB (H, W, 3) or grayscale (H, W) uint8, already JPEG-degraded if drawn."""

    authentic: np.ndarray
    forged: np.ndarray | None = None
    masks: np.ndarray | None = None


def _finish(rng: np.random.Generator, image: np.ndarray, gray: bool, jpeg_prob: float) -> np.ndarray:
    """Convert to grayscale if the case is grayscale; JPEG re-compress with probability jpeg_prob."""
    if gray:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if rng.random() < jpeg_prob:
        quality = int(rng.integers(60, 96))
        bgr = image if gray else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        image = decoded if gray else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return image


def make_case(seed: int, stream: int, index: int, forged: bool, min_size: int = 192,
              max_size: int = 640, jpeg_prob: float = 0.2) -> Case:
    """Draw case `index` of `stream` from its own generator; forge it when `forged`."""
    rng = np.random.default_rng([seed, stream, index])
    h, w = (int(s) for s in rng.integers(min_size, max_size + 1, 2))
    gray = rng.random() < 0.1
    figure = draw_figure(rng, h, w)
    # both JPEG decisions are drawn for every case, so they are independent of each other
    jpeg_rng = np.random.default_rng([seed, stream, index, 1])
    case = Case(_finish(jpeg_rng, figure.render(), gray, jpeg_prob))
    if forged:
        n_events = int(rng.choice(EVENT_COUNTS, p=EVENT_PROBS))
        content, masks, _ = forge(rng, figure.content, figure.panels, n_events)
        case.forged = _finish(jpeg_rng, figure.render(content), gray, jpeg_prob)
        case.masks = masks
    return case


def _case_ids(seed: int, n: int) -> list[int]:
    """n distinct Kaggle-like case ids (integers of 2-5 digits)."""
    rng = np.random.default_rng([seed, _STREAM_IDS])
    return [int(i) for i in rng.choice(np.arange(10, 99_999), n, replace=False)]


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless `overwrite`; then delete only what this module generates."""
    if out.exists() and not out.is_dir():
        raise ProjectError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ProjectError(f"{out}: folder is not empty; pass --overwrite to replace "
                               f"the demo data in it")
        for name in GENERATED:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    for folder in ("train_images/authentic", "train_images/forged", "train_masks",
                   "supplemental_images", "supplemental_masks", "test_images"):
        (out / folder).mkdir(parents=True, exist_ok=True)


def _check_args(n_forged: int, twin_fraction: float, n_test: int, test_forged_fraction: float,
                n_supplemental: int, min_size: int, max_size: int, jpeg_prob: float) -> None:
    if min(n_forged, n_test, n_supplemental) < 0:
        raise ProjectError("image counts must be >= 0")
    fractions = {"twin_fraction": twin_fraction, "test_forged_fraction": test_forged_fraction,
                 "jpeg_prob": jpeg_prob}
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ProjectError(f"{name} must be between 0 and 1, got {value}")
    if not _MIN_PANEL <= min_size <= max_size:
        raise ProjectError(f"need {_MIN_PANEL} <= min_size <= max_size, got {min_size} and {max_size}")


def make_demo_dataset(out_dir: str | Path, n_forged: int = 60, twin_fraction: float = 0.85,
                      n_test: int = 24, test_forged_fraction: float = 0.5, n_supplemental: int = 4,
                      min_size: int = 192, max_size: int = 640, seed: int = 0, jpeg_prob: float = 0.2,
                      overwrite: bool = False, progress: bool = True) -> dict:
    """Write a synthetic dataset in the Kaggle layout under `out_dir` (see the module docstring).

    Returns a summary: files per folder ("counts"), forged test images ("test_forged"), forged
    images per instance count ("instances", over train, supplemental and test), and the min and
    max fraction of an image that its masks cover ("area_fraction")."""
    _check_args(n_forged, twin_fraction, n_test, test_forged_fraction, n_supplemental,
                min_size, max_size, jpeg_prob)
    out = Path(out_dir)
    _prepare_out(out, overwrite)
    ids = _case_ids(seed, n_forged + n_supplemental + n_test)
    train_ids, supp_ids, test_ids = (ids[:n_forged], ids[n_forged:n_forged + n_supplemental],
                                     ids[n_forged + n_supplemental:])
    pick = np.random.default_rng([seed, _STREAM_IDS, 1])
    twins = set(pick.permutation(n_forged)[:round(twin_fraction * n_forged)].tolist())
    test_forged = set(pick.permutation(n_test)[:round(test_forged_fraction * n_test)].tolist())
    jobs = ([(_STREAM_TRAIN, i, cid, True) for i, cid in enumerate(train_ids)]
            + [(_STREAM_SUPPLEMENTAL, i, cid, True) for i, cid in enumerate(supp_ids)]
            + [(_STREAM_TEST, i, cid, i in test_forged) for i, cid in enumerate(test_ids)])
    counts = dict.fromkeys(("train_images/forged", "train_images/authentic", "train_masks",
                            "supplemental_images", "supplemental_masks", "test_images"), 0)
    n_test_forged = 0
    instances: dict[int, int] = {}
    fractions: list[float] = []
    solution: list[tuple[int, str, str]] = []
    for stream, index, cid, forged in tqdm(jobs, desc="demo images", disable=not progress):
        case = make_case(seed, stream, index, forged, min_size, max_size, jpeg_prob)
        if forged:
            instances[len(case.masks)] = instances.get(len(case.masks), 0) + 1
            fractions.append(float(case.masks.any(axis=0).mean()))
        if stream == _STREAM_TEST:
            image = case.forged if forged else case.authentic
            write_png(out / "test_images" / f"{cid}.png", image)
            annotation = rle_encode_instances(list(case.masks)) if forged else "authentic"
            solution.append((cid, annotation, json.dumps(list(image.shape[:2]))))
            counts["test_images"] += 1
            n_test_forged += int(forged)
            continue
        images, masks = (("train_images/forged", "train_masks") if stream == _STREAM_TRAIN
                         else ("supplemental_images", "supplemental_masks"))
        write_png(out / images / f"{cid}.png", case.forged)
        np.save(out / masks / f"{cid}.npy", case.masks)
        counts[images] += 1
        counts[masks] += 1
        if stream == _STREAM_TRAIN and index in twins:
            write_png(out / "train_images/authentic" / f"{cid}.png", case.authentic)
            counts["train_images/authentic"] += 1
    solution.sort()
    write_csv(out / "solution.csv", ["case_id", "annotation", "shape"],
               [[str(cid), annotation, shape] for cid, annotation, shape in solution])
    write_csv(out / "sample_submission.csv", ["case_id", "annotation"],
               [[str(cid), "authentic"] for cid, _, _ in solution])
    return {"counts": counts, "test_forged": n_test_forged, "instances": dict(sorted(instances.items())),
            "area_fraction": (min(fractions), max(fractions)) if fractions else (0.0, 0.0)}


def format_summary(summary: dict, out_dir: str | Path, seconds: float) -> str:
    """The few lines bin/make_demo_data.py prints after generating."""
    counts = summary["counts"]
    lo, hi = summary["area_fraction"]
    lines = [f"wrote {out_dir}:"]
    lines += [f"  {name:<24}{n}" for name, n in counts.items()]
    lines.append(f"  {'solution.csv':<24}{counts['test_images']} rows ({summary['test_forged']} forged)")
    lines.append("  instances per forged image: "
                 + ", ".join(f"{k}: {v}" for k, v in summary["instances"].items()))
    lines.append(f"  forged area fraction: {100 * lo:.1f} % .. {100 * hi:.1f} %")
    lines.append(f"  done in {seconds:.1f} s")
    return "\n".join(lines)
