"""From a probability map to predicted instances: adaptive threshold, drop small components,
form instances.

The ground truth holds one instance per duplication event (source and copy together); a
probability map alone does not say which regions belong together, so the default is one
instance holding every kept region (see docs/competition.md: splitting an event into two
instances halves its score). Two alternatives are kept for comparison on validation:
`similar` groups regions whose image patches look alike (normalised cross-correlation over
the eight flips/rotations) into events, `components` makes every region its own instance.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..options import INSTANCE_MODES, PostConfig

SIMILARITY_PATCH = 32        # side of the square patches compared in `similar` mode
SIMILARITY_MAX_REGIONS = 12  # `similar` compares only the largest regions (pairs grow quadratically)


def adaptive_threshold(base: float, brightness: float) -> float:
    """The seeds' brightness table: darker images get a lower pixel threshold, very bright ones
    a higher one. `brightness` is the mean of the grayscale image (0-255). The clamps are the
    seeds' as written: with a base under 0.30, dark images get max(0.20, base - 0.10), which
    can be *above* the base (0.15 -> 0.20)."""
    if brightness < 50:
        return max(0.20, base - 0.10)
    if brightness < 80:
        return max(0.25, base - 0.05)
    if brightness > 200:
        return min(0.50, base + 0.05)
    return base


def image_brightness(image: np.ndarray) -> float:
    """Mean grayscale value (0-255) of an RGB uint8 image, as the adaptive threshold reads it."""
    return float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean())


def remove_small_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Drop 8-connected components of a bool mask smaller than `min_area` pixels."""
    if min_area <= 1 or not mask.any():
        return mask.astype(bool, copy=False)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def resize_probability(prob: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize a probability map to (H, W) with bilinear interpolation (float32)."""
    prob = prob.astype(np.float32, copy=False)
    if prob.shape == tuple(hw):
        return prob
    return cv2.resize(prob, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)


def instances_from_probability(prob: np.ndarray, threshold: float = 0.5, min_area: int = 0,
                               mode: str = "all", image: np.ndarray | None = None,
                               similarity: float = 0.5) -> list[np.ndarray]:
    """Threshold a probability map (already at the image's size) and return its predicted
    instances: [] (authentic) or bool masks formed by `mode` (see form_instances)."""
    return form_instances(remove_small_components(prob >= threshold, min_area), mode, image, similarity)


def postprocess(prob: np.ndarray, hw: tuple[int, int], brightness: float, config: PostConfig,
                image: np.ndarray | None = None) -> list[np.ndarray]:
    """The pipeline's pass-2 post-processing of one map (any size) for an image of size `hw`."""
    threshold = adaptive_threshold(config.seg_threshold, brightness) if config.adaptive else config.seg_threshold
    return instances_from_probability(resize_probability(prob, hw), threshold, config.min_area,
                                      config.instance_mode, image, config.similarity)


def form_instances(mask: np.ndarray, mode: str = "all", image: np.ndarray | None = None,
                   similarity: float = 0.5) -> list[np.ndarray]:
    """Turn a cleaned binary mask into instances.

    all:        one instance holding every region (the default; never splits an event).
    components: one instance per 8-connected region (for comparison: splits source and copy).
    similar:    regions whose patches of `image` match (NCC >= `similarity` under one of the
                eight flips/rotations) form one event; regions matching nothing join the largest
                event; with no match at all this is `all`.
    """
    if mode not in INSTANCE_MODES:
        raise ValueError(f"unknown instance mode {mode!r}; known: {', '.join(INSTANCE_MODES)}")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        return []
    if mode == "all":
        return [mask]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if mode == "components" or count <= 2:
        return [labels == i for i in range(1, count)] if mode == "components" else [mask]
    if image is None:
        raise ValueError("instance mode 'similar' needs the image")
    groups = _group_similar_regions(image, labels, stats, similarity)
    return [np.isin(labels, group) for group in groups]


def _group_similar_regions(image: np.ndarray, labels: np.ndarray, stats: np.ndarray,
                           similarity: float) -> list[list[int]]:
    """Label groups of regions that look alike (union-find over matching pairs)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = (np.argsort(-areas, kind="stable") + 1)[:SIMILARITY_MAX_REGIONS].tolist()
    patches = {label: _patch(gray, labels, stats[label]) for label in order}
    parent = {label: label for label in order}

    def root(label: int) -> int:
        while parent[label] != label:
            label = parent[label]
        return label

    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if _best_ncc(patches[a], patches[b]) >= similarity:
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for label in order:
        groups.setdefault(root(label), []).append(label)
    events = [g for g in groups.values() if len(g) > 1]
    if not events:
        return [list(range(1, len(areas) + 1))]
    singles = [g[0] for g in groups.values() if len(g) == 1]
    unranked = [label for label in range(1, len(areas) + 1) if label not in parent]  # beyond the cap
    largest = max(events, key=lambda g: int(sum(areas[label - 1] for label in g)))
    largest.extend(singles + unranked)
    return events


def _patch(gray: np.ndarray, labels: np.ndarray, stat: np.ndarray) -> np.ndarray:
    """The region's bounding box of the image, resized to a square, zero mean and unit norm."""
    x, y, w, h = (int(v) for v in stat[:4])
    crop = cv2.resize(gray[y:y + h, x:x + w].astype(np.float32), (SIMILARITY_PATCH, SIMILARITY_PATCH),
                      interpolation=cv2.INTER_AREA)
    crop -= crop.mean()
    norm = float(np.linalg.norm(crop))
    return crop / norm if norm > 1e-6 else crop


def _best_ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Largest normalised cross-correlation of `a` with the eight flips/rotations of `b`."""
    best = -1.0
    for k in range(4):
        rotated = np.rot90(b, k)
        best = max(best, float((a * rotated).sum()), float((a * rotated[:, ::-1]).sum()))
    return best
