"""What a figure's panels show, drawn procedurally: western blots and gels, fluorescence and
histology micrographs, line and bar plots. Each `draw_<kind>(rng, h, w)` returns RGB uint8
(h, w, 3); PANEL_KINDS names them."""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
BOLD_FONT = cv2.FONT_HERSHEY_DUPLEX

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


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
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

def split_span(rng: np.random.Generator, start: int, stop: int, n: int, gutter: int,
               equal: bool) -> list[tuple[int, int]]:
    """Split [start, stop) into n spans separated by `gutter` pixels, equal or of random sizes."""
    usable = stop - start - gutter * (n - 1)
    weights = np.ones(n) if equal else rng.dirichlet(np.full(n, 8.0))
    edges = np.round(np.concatenate(([0.0], np.cumsum(weights) / weights.sum())) * usable).astype(int)
    return [(start + int(edges[i]) + i * gutter, start + int(edges[i + 1]) + i * gutter) for i in range(n)]


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
    return ink * (0.9 + 0.2 * _smooth_noise(rng, h, w, 3)) + blur(lanes[None, :].repeat(h, 0), 2) + blotch


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
    for y0, y1 in split_span(rng, 0, h, n_strips, gap if n_strips > 1 else 0, equal=rng.random() < 0.5):
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
    nuclei = blur(nuclei, radius * rng.uniform(0.15, 0.4)) * (0.55 + 0.7 * _smooth_noise(rng, h, w, 2.5))
    width = rng.uniform(1.5, 4)
    fibres = _oriented_noise(rng, h, w, width, width * rng.uniform(1.5, 4))
    bodies = blur(bodies, radius * rng.uniform(0.4, 1.0)) * (0.3 + fibres)
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
    nuclei = blur(nuclei, 0.8) * (0.7 + 0.6 * _smooth_noise(rng, h, w, 1.5))
    stroma = density * (0.25 + 0.6 * fibres) * rng.uniform(0.5, 1.0)
    if rng.random() < 0.3:  # immunohistochemistry: brown positive cells, pale blue counterstain
        positive = blur((_smooth_noise(rng, h, w, rng.uniform(15, 40)) > 0.65).astype(np.float32), 2)
        od = (nuclei * 0.6 + 0.08 * density)[..., None] * _HAEMATOXYLIN \
            + (positive * density * (0.4 + fibres))[..., None] * _DAB
    else:
        od = (nuclei + 0.1 * density)[..., None] * _HAEMATOXYLIN + stroma[..., None] * _EOSIN
    img = 250.0 * np.exp(-od * rng.uniform(0.8, 1.3)) + _sensor_noise(rng, od.shape, rng.uniform(2, 6))
    return _to_u8(img)


def text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int]:
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    return tw, th


def _vertical_text(img: np.ndarray, text: str, x: int, y_centre: int, scale: float) -> None:
    """Write `text` rotated 90 degrees (reading upwards) with its left edge at x, centred on y."""
    tw, th = text_size(text, scale)
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
    tw, th = text_size(max(tick_labels, key=len), scale)
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
        cv2.putText(img, text, (x0 - 6 - text_size(text, scale)[0], y + th // 2), FONT, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    names = list(rng.choice(CONDITIONS, n_x, replace=False)) if bars else [str(i * 2) for i in range(n_x)]
    # label every k-th tick so that crowded labels do not run into each other
    every = int(np.ceil((max(text_size(t, scale)[0] for t in names) + 6) * n_x / max(x1 - x0, 1)))
    for i, (x, text) in enumerate(zip(xs, names)):
        cv2.line(img, (int(x), y1), (int(x), y1 + 4), (0, 0, 0), 1)
        if i % max(every, 1) == 0:
            cv2.putText(img, text, (int(x) - text_size(text, scale)[0] // 2, y1 + th + 8), FONT, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
    if titled:
        title = str(rng.choice(AXIS_TITLES))
        _vertical_text(img, title, 2, (y0 + y1) // 2, scale)
        xtitle = "Group" if bars else str(rng.choice(("Time (h)", "Days", "Dose (uM)")))
        cv2.putText(img, xtitle, ((x0 + x1 - text_size(xtitle, scale)[0]) // 2, h - 6), FONT, scale,
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
    width = max(text_size(str(n), scale)[0] for n in names) + 26
    line_h = text_size("Ag", scale)[1] + 6
    left = x1 - width - 4 if rng.random() < 0.6 else x0 + 6
    for i, (name, colour) in enumerate(zip(names, colours)):
        y = y0 + 4 + (i + 1) * line_h
        if bars:
            cv2.rectangle(img, (left, y - line_h + 6), (left + 12, y), colour, -1)
        else:
            cv2.line(img, (left, y - line_h // 2 + 3), (left + 16, y - line_h // 2 + 3), colour, 2)
        cv2.putText(img, str(name), (left + 20, y), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_cells(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Bright-field or phase-contrast micrograph (RGB uint8): irregular cells with inner texture and
    nuclei, a halo at their edges, uneven illumination, focus blur and shot noise, on a bright or
    (dark-field) dark ground. Similar cells everywhere: the matcher's hard case."""
    dark = rng.random() < 0.25
    radius = rng.uniform(6, 22) * (min(h, w) / 300) ** 0.5
    n = int(np.clip(h * w * rng.uniform(0.08, 0.45) / (np.pi * radius ** 2), 3, 300))
    cells, nuclei = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    harmonics = np.arange(2, 6)
    for (x, y), r in zip(_scatter(rng, n, h, w, rng.uniform(0, 0.6)), radius * rng.lognormal(0, 0.3, n)):
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        wobble = (rng.normal(0, 0.12, len(harmonics))[:, None]
                  * np.cos(harmonics[:, None] * angles + rng.uniform(0, 2 * np.pi, len(harmonics))[:, None])).sum(0)
        stretch = rng.uniform(0.6, 1.0)
        turn = rng.uniform(0, np.pi)
        px, py = r * (1 + wobble) * np.cos(angles), r * (1 + wobble) * np.sin(angles) * stretch
        pts = np.stack([x + px * np.cos(turn) - py * np.sin(turn), y + px * np.sin(turn) + py * np.cos(turn)], 1)
        cv2.fillPoly(cells, [np.rint(pts).astype(np.int32)], float(rng.uniform(0.5, 1.0)))
        cv2.ellipse(nuclei, (int(x + rng.normal(0, r * 0.15)), int(y + rng.normal(0, r * 0.15))),
                    (max(1, int(r * rng.uniform(0.25, 0.45))), max(1, int(r * rng.uniform(0.2, 0.4)))),
                    float(np.degrees(turn)), 0, 360, float(rng.uniform(0.5, 1.0)), -1)
    texture = _fractal(rng, h, w, (radius * 0.6, radius * 0.2, 1.5))
    inside = blur(cells, 0.8)
    halo = np.clip(blur(cells, radius * 0.25) - inside, 0, None) * rng.uniform(1.5, 4.0)
    body = inside * (0.5 + texture) + blur(nuclei, 1.0) * rng.uniform(0.4, 0.9)
    focus = rng.uniform(0.3, 2.5)
    illumination = 1.0 + (_smooth_noise(rng, h, w, max(h, w) * 0.7) - 0.5) * rng.uniform(0.1, 0.5)
    if dark:
        level = (rng.uniform(10, 35) + blur(body + halo, focus) * rng.uniform(120, 200)) * illumination
    else:
        ground = rng.uniform(150, 225)
        level = (ground - blur(body, focus) * rng.uniform(50, 110) + blur(halo, focus) * rng.uniform(20, 50))
        level = level * illumination
    photons = rng.uniform(2, 12)                       # shot noise: Poisson counts per grey level
    gray = rng.poisson(np.clip(level, 0, 255) * photons) / photons
    tint = rng.uniform(0.9, 1.05, 3) if rng.random() < 0.5 else np.ones(3)
    return _to_u8(gray[..., None].astype(np.float32) * tint)


def draw_natural(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A photograph-like texture (RGB uint8) with a natural image's 1/f amplitude spectrum: three
    channels from two random-phase fields, mixed by a random colour matrix, plus sensor noise."""
    beta = rng.uniform(1.6, 2.4)                       # power falls as 1/f^beta
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fx ** 2 + fy ** 2)
    radius[0, 0] = 1.0
    amplitude = radius ** (-beta / 2)
    amplitude[0, 0] = 0.0
    fields = []
    for _ in range(2):
        phase = np.exp(2j * np.pi * rng.random(amplitude.shape))
        field = np.fft.irfft2(amplitude * phase, s=(h, w)).astype(np.float32)
        fields.append((field - field.mean()) / (field.std() + 1e-6))
    mix = rng.normal(0, 1, (3, 2)) * 0.15 + np.array([[1, 0.2], [1, 0], [1, -0.2]]) * rng.uniform(0.7, 1.0)
    colour = np.einsum("cf,fhw->hwc", mix, np.stack(fields))
    mean = rng.uniform(70, 170, 3) * rng.uniform(0.8, 1.0)
    img = mean + colour * rng.uniform(25, 55) + _sensor_noise(rng, (h, w, 3), rng.uniform(1, 4))
    return _to_u8(img)


def draw_chart(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A plot drawn by matplotlib (RGB uint8): lines with markers and error bars, bars with error
    bars and significance stars, a scatter or a box plot, with axes, ticks, labels and a legend:
    the repeated glyphs and markers that fool matchers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    ax = figure.add_axes([0.18, 0.16, 0.77, 0.76])
    size = float(np.clip(min(h, w) / 45, 5, 10))
    kind = str(rng.choice(["lines", "bars", "scatter", "box"], p=[0.35, 0.35, 0.15, 0.15]))
    n_series = int(rng.integers(1, 4))
    names = [str(n) for n in rng.choice(CONDITIONS, n_series, replace=False)]
    colours = [tuple(c / 255 for c in PALETTE[k]) for k in rng.permutation(len(PALETTE))[:n_series]]
    markers = rng.choice(list("osD^v*"), n_series)
    if kind == "lines":
        xs = np.arange(int(rng.integers(4, 10))) * rng.choice([1, 2, 6, 12])
        for name, colour, marker in zip(names, colours, markers):
            ys = np.cumsum(rng.uniform(0, 1, len(xs))) * rng.uniform(5, 50)
            ax.errorbar(xs, ys, yerr=ys * rng.uniform(0.03, 0.15, len(xs)), marker=marker, color=colour, label=name,
                        capsize=2, ms=size * 0.6, lw=1)
    elif kind == "bars":
        groups = int(rng.integers(2, 6))
        width = 0.8 / n_series
        for k, (name, colour) in enumerate(zip(names, colours)):
            ys = rng.uniform(0.3, 1.0, groups) * 100
            xs = np.arange(groups) + k * width
            ax.bar(xs, ys, width, yerr=ys * rng.uniform(0.05, 0.2, groups), color=colour, label=name, capsize=2,
                   edgecolor="black", linewidth=0.5)
            for x, y in zip(xs, ys):
                if rng.random() < 0.3:
                    ax.text(x, y * 1.2, str(rng.choice(["*", "**", "***", "ns"])), ha="center", fontsize=size)
        ax.set_xticks(np.arange(groups) + 0.4 - width / 2,
                      [str(c) for c in rng.choice(CONDITIONS, groups, replace=False)], fontsize=size)
    elif kind == "scatter":
        for name, colour, marker in zip(names, colours, markers):
            centre = rng.uniform(0, 10, 2)
            pts = centre + rng.normal(0, rng.uniform(0.5, 2), (int(rng.integers(15, 60)), 2))
            ax.scatter(pts[:, 0], pts[:, 1], s=size * 3, marker=marker, color=colour, label=name)
    else:
        data = [rng.normal(rng.uniform(20, 80), rng.uniform(3, 15), 30) for _ in range(int(rng.integers(2, 6)))]
        ax.boxplot(data)
        n_series = 1
    ax.set_ylabel(str(rng.choice(AXIS_TITLES)), fontsize=size)
    ax.tick_params(labelsize=size * 0.9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(rng.random() < 0.3)
    if kind != "box" and (n_series > 1 or rng.random() < 0.5):
        ax.legend(fontsize=size * 0.9, frameon=rng.random() < 0.5)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[:h, :w, :3].copy()


def draw_periodic(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A regular array (RGB uint8): dot blot, microarray or well-plate spots on a grid, each spot
    its own intensity, with grain and noise. Authentic, yet every spot resembles its neighbours:
    periodic content that fools a matcher."""
    pitch = rng.uniform(14, 40) * (min(h, w) / 300) ** 0.5
    ys, xs = np.arange(pitch / 2, h, pitch), np.arange(pitch / 2, w, pitch)
    spots = np.zeros((h, w), np.float32)
    radius = pitch * rng.uniform(0.25, 0.42)
    for y in ys:
        for x in xs:
            cv2.circle(spots, (int(x + rng.normal(0, 0.6)), int(y + rng.normal(0, 0.6))), max(1, int(radius)),
                       float(rng.uniform(0.15, 1.0) ** 0.8), -1, cv2.LINE_AA)
    spots = blur(spots, radius * rng.uniform(0.15, 0.4)) * (0.7 + 0.6 * _smooth_noise(rng, h, w, 2.0))
    dark = rng.random() < 0.5
    colour = rng.uniform(0.6, 1.0, 3) if rng.random() < 0.5 else np.ones(3)
    base = rng.uniform(10, 40) if dark else rng.uniform(200, 245)
    signal = spots * (rng.uniform(150, 220) if dark else -rng.uniform(120, 190))
    img = (base + signal)[..., None] * colour + _sensor_noise(rng, (h, w, 3), rng.uniform(1.5, 5))
    return _to_u8(img)


PANEL_KINDS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "blot": draw_blot, "fluorescence": draw_fluorescence, "histology": draw_histology, "plot": draw_plot,
    "cells": draw_cells, "natural": draw_natural, "periodic": draw_periodic, "chart": draw_chart,
}
KIND_PROBS = {"blot": 0.3, "fluorescence": 0.33, "histology": 0.2, "plot": 0.17}   # the demo's figures
MICROSCOPY = ("fluorescence", "histology", "cells")
GRAPHICS = ("plot", "chart")           # drawn plots: flat almost everywhere
