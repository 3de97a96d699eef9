"""What a candidate's region holds: the measures that tell a copy from repeated texture, text
and drawn graphics. v1's cascade cut them at fixed values; v2 hands them to the verifier."""
from __future__ import annotations

import cv2
import numpy as np
from scipy.fft import next_fast_len


def two_tone_fraction(values: np.ndarray, tolerance: int = 3) -> float:
    """Fraction of `values` (uint8) within +-tolerance of the two commonest gray levels: near 1
    for drawn text, lines and markers (ink on paper, with anti-aliased edges), small for image data."""
    window = 2 * tolerance + 1
    counts = np.convolve(np.bincount(values, minlength=256), np.ones(window), mode="same")
    first = int(counts.argmax())
    total = counts[first]
    counts[max(0, first - 2 * tolerance):first + 2 * tolerance + 1] = 0
    return float(total + counts.max()) / max(len(values), 1)


def self_similarity(detail: np.ndarray, region: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The highest normalised autocorrelation of the fine detail inside `region` at a shift of
    at least 8 pixels (shifts overlapping at least a third of the region), and that shift.
    Near 0 for a copied patch of random texture; high for a periodic one (a mesh, a lattice,
    evenly spaced identical marks), which agrees with itself one period on wherever it is."""
    ys, xs = np.nonzero(region)
    y0, x0 = ys.min(), xs.min()
    h, w = ys.max() - y0 + 1, xs.max() - x0 + 1
    mask = region[y0:y0 + h, x0:x0 + w].astype(np.float64)
    patch = detail[y0:y0 + h, x0:x0 + w] * mask
    patch -= mask * (patch.sum() / mask.sum())
    size = (next_fast_len(2 * h, real=True), next_fast_len(2 * w, real=True))   # no wrap-around, fast sizes

    def autocorrelation(a):
        spectrum = np.fft.rfft2(a, size)
        return np.fft.irfft2(spectrum * np.conj(spectrum), size)

    ac, support = autocorrelation(patch), autocorrelation(mask)
    energy = ac[0, 0] / mask.sum()
    dy, dx = np.meshgrid(np.fft.fftfreq(size[0]) * size[0], np.fft.fftfreq(size[1]) * size[1], indexing="ij")
    usable = (support > mask.sum() / 3) & (np.hypot(dy, dx) >= 8)
    if energy <= 0 or not usable.any():
        return 0.0, (0, 0)
    normalised = np.where(usable, ac / np.maximum(support, 1) / energy, -np.inf)
    peak = np.unravel_index(int(np.argmax(normalised)), normalised.shape)
    return float(normalised[peak]), (int(dx[peak]), int(dy[peak]))


def strokes(gray: np.ndarray, region: np.ndarray, max_stroke: float) -> tuple[float, float, np.ndarray]:
    """(paper, thin, ink): the fraction of `region` at the paper level (the commonest gray
    level), the fraction of its ink (the rest) in strokes thinner than `max_stroke` pixels (1
    when the region is all paper), and the ink (bool map). Text and plot lines: much paper,
    thin ink."""
    counts = np.convolve(np.bincount(gray[region], minlength=256), np.ones(17), mode="same")
    paper_level = int(counts.argmax())
    paper = np.abs(gray.astype(np.int16) - paper_level) <= 8
    paper_fraction = float(paper[region].mean())
    ink = (region & ~paper).astype(np.uint8)
    if not ink.any():
        return paper_fraction, 1.0, ink.astype(bool)
    half = max_stroke / 2
    thick = cv2.distanceTransform(ink, cv2.DIST_L2, 3) > half
    side = 2 * int(np.ceil(half)) + 1
    thick = cv2.dilate(thick.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    return paper_fraction, float((ink.astype(bool) & ~thick).sum()) / float(ink.sum()), ink.astype(bool)
