"""From a probability map to predicted instances: threshold, drop small components, form instances.

The ground truth holds one instance per duplication event (source and copy together); a
probability map alone does not say which regions belong together, so the safe default is
one instance holding every kept region (see COMPETITION.md: splitting an event into two
instances halves its score).
"""
from __future__ import annotations

import cv2
import numpy as np


def remove_small_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Drop 8-connected components of a bool mask smaller than `min_area` pixels."""
    if min_area <= 1 or not mask.any():
        return mask.astype(bool, copy=False)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def resize_probability(prob: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize a float probability map to (H, W) with bilinear interpolation."""
    if prob.shape == tuple(hw):
        return prob
    return cv2.resize(prob.astype(np.float32), (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)


def instances_from_probability(prob: np.ndarray, threshold: float = 0.5,
                               min_area: int = 0) -> list[np.ndarray]:
    """Threshold a probability map and return its predicted instances: [] (authentic) or one
    bool mask holding every region that survives `min_area`."""
    mask = remove_small_components(prob >= threshold, min_area)
    return [mask] if mask.any() else []
