"""The support of a transform: where the image agrees with itself moved by it. The agreeing area
around the copy-side inliers is the copy, its pre-image the source; both together are one
instance, one duplication event, as the ground truth marks it."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import MatchConfig

HULL_NCC = 0.5          # textured pixels inside a region's hull join it above this local NCC


def correlation(image: np.ndarray, matrix: np.ndarray, window: int, min_std: float) -> np.ndarray:
    """Local normalised cross-correlation of `image` (float32) with itself moved by `matrix`
    (source -> copy) over `window` x `window` patches; -1 where either side's local std is
    under `min_std` (flat: agreement means nothing) and outside the moved image."""
    h, w = image.shape
    a = image
    b = cv2.warpAffine(a, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    valid = cv2.warpAffine(np.ones_like(a), matrix, (w, h), flags=cv2.INTER_NEAREST) > 0
    size = (window, window)
    mean_a, mean_b = cv2.blur(a, size), cv2.blur(b, size)
    var_a = np.maximum(cv2.blur(a * a, size) - mean_a ** 2, 0)
    var_b = np.maximum(cv2.blur(b * b, size) - mean_b ** 2, 0)
    cov = cv2.blur(a * b, size) - mean_a * mean_b
    ncc = cov / np.sqrt(var_a * var_b + 1e-6)
    textured = (var_a >= min_std ** 2) & (var_b >= min_std ** 2)
    return np.where(valid & textured, ncc, -1.0)


def fine_detail(gray: np.ndarray) -> np.ndarray:
    """The image minus its blur: sensor noise, grain and fine texture. A copy carries its
    source's detail along; content that is merely alike (neighbouring blot lanes, two similar
    cells, a smooth gradient) does not, though it correlates well at coarser scales."""
    image = gray.astype(np.float32)
    return image - cv2.GaussianBlur(image, (0, 0), 2.0)


def isotropic(gray: np.ndarray, max_coherence: float) -> np.ndarray:
    """Bool map of pixels whose neighbourhood is not a single straight edge or line (structure
    tensor coherence below `max_coherence`): only there does agreement pin a copy down, since
    an edge agrees with itself shifted along it."""
    image = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    gx, gy = cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1)
    jxx, jxy, jyy = (cv2.GaussianBlur(v, (0, 0), 2.0) for v in (gx * gx, gx * gy, gy * gy))
    coherence = ((jxx - jyy) ** 2 + 4 * jxy ** 2) / ((jxx + jyy) ** 2 + 1e-6)
    return coherence < max_coherence


def _hull(region: np.ndarray) -> np.ndarray:
    """Bool map of the convex hulls of `region`'s connected components. A pasted region is one
    compact piece: its flat parts agree with the source only by intensity, which says nothing far
    from the textured parts, but inside the hull of what agrees they belong to it."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros(region.shape, np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(c) for c in contours], 1)
    return hull > 0


@dataclass
class Support:
    """Where a transform's copy and source lie, and how well they agree."""

    copy: np.ndarray                     # bool (H, W)
    source: np.ndarray                   # bool (H, W)
    ncc: float                           # median local NCC of the content over the copy's textured pixels
    detail: float                        # median NCC of the fine detail away from edges (-1: none to judge)
    detail_q25: float
    detail_q75: float
    informative: float                   # fraction of the copy where the fine detail is judged
    flat: float                          # fraction of the copy that agrees only by intensity (flat)
    difference: float                    # mean |copy - moved source| over the copy, in gray levels


def support(gray: np.ndarray, detail: np.ndarray, isotropic: np.ndarray, matrix: np.ndarray,
            inliers: np.ndarray, config: MatchConfig) -> tuple[Support | None, str]:
    """(Support, "") of the agreeing components that hold a copy-side inlier, or (None, why)
    when they are smaller than `min_region`. Textured pixels agree by local NCC; with
    `flat_tolerance`, flat pixels near the inliers agree by intensity (a flat copy has nothing
    to correlate), and with `fill_hull` so do flat pixels anywhere inside the convex hull of
    those components, and textured ones there at a lower NCC (HULL_NCC). Under v1's cascade,
    also (None, why) when only edges agree or the fine detail correlates less than `min_detail_ncc` (alike
    content such as two similar cells)."""
    h, w = gray.shape
    image = gray.astype(np.float32)
    ncc = correlation(image, matrix, config.window, config.min_texture)
    agree = ncc >= config.min_ncc
    copy_points = np.clip(np.round(inliers[:, 1]).astype(int), 0, [w - 1, h - 1])
    flat = flat_agree = np.zeros_like(agree)
    if config.flat_tolerance > 0:
        smooth = cv2.GaussianBlur(image, (0, 0), 1.0)
        moved = cv2.warpAffine(smooth, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        inside = cv2.warpAffine(np.ones_like(smooth), matrix, (w, h), flags=cv2.INTER_NEAREST) > 0
        near = np.zeros((h, w), np.uint8)
        near[copy_points[:, 1], copy_points[:, 0]] = 1
        near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))) > 0
        flat_agree = inside & (ncc == -1) & (np.abs(smooth - moved) <= config.flat_tolerance)
        flat = near & flat_agree
        agree |= flat
    agree = cv2.morphologyEx(agree.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels = cv2.connectedComponents(agree, connectivity=8)
    hit = np.unique(labels[copy_points[:, 1], copy_points[:, 0]])
    copy = np.isin(labels, hit[hit > 0])
    if config.fill_hull and config.flat_tolerance > 0 and copy.any():
        copy |= _hull(copy) & (flat_agree | (inside & (ncc >= HULL_NCC)))
    area = int(copy.sum())
    if area < config.min_region:
        return None, "no agreeing region"
    fine = correlation(detail, matrix, config.window + 2, 0.5)
    informative = copy & isotropic & (fine > -1)
    judged = informative.sum() >= config.min_region
    cascade = config.decision == "cascade"
    if cascade and not judged:
        return None, "only edges and lines agree"
    q25, median, q75 = np.percentile(fine[informative], [25, 50, 75]) if judged else (-1.0, -1.0, -1.0)
    if cascade and median < config.min_detail_ncc:
        return None, f"fine detail correlates {median:.2f} < {config.min_detail_ncc}: alike, not copied"
    textured = copy & (ncc > -1)
    moved = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    measures = dict(ncc=float(np.median(ncc[textured])) if textured.any() else -1.0,
                    detail=float(median), detail_q25=float(q25), detail_q75=float(q75),
                    informative=float(informative.sum()) / area, flat=float((copy & flat).sum()) / area,
                    difference=float(np.abs(image - moved)[copy].mean()))
    # windows that straddle the region's border correlate poorly: grow back half a window
    copy = cv2.dilate(copy.astype(np.uint8), np.ones((config.grow, config.grow), np.uint8)) > 0
    inverse = cv2.invertAffineTransform(matrix)
    source = cv2.warpAffine(copy.astype(np.uint8), inverse, (w, h), flags=cv2.INTER_NEAREST) > 0
    return Support(copy, source, **measures), ""
