"""A training-free copy-move detector: keypoint self-matching, geometric verification, exact masks.

Keypoint stage (the dense stage for small copies, the text/texture filters and the
predictor fusion are still to come, issue 6): SIFT keypoints of the grayscale image are matched against the
image's own descriptors and against those of its mirror image (for flipped copies); the
generalised 2NN ratio test keeps distinctive pairs whose ends are far apart. Pairs are
explained by similarity transforms fitted with RANSAC, peeled off one cluster at a time.
For each accepted transform the image is compared with itself warped by it; the agreeing
area around the inliers is the copy, its pre-image the source, and both together form one
instance (one duplication event, as the ground truth marks it). Events that share pixels
(A copied to B and to C) are merged.

Every threshold is a field of MatchConfig; every rejected candidate is recorded with its
reason in MatchResult.rejected for debugging.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class MatchConfig:
    """Parameters of the keypoint matcher (defaults tuned on synthetic figures)."""

    contrast_threshold: float = 0.02     # SIFT: lower finds more points in low-contrast figures
    upsample_below: int = 768            # images whose longer side is shorter are upsampled 2x
    max_keypoints: int = 6000
    ratio: float = 0.6                   # generalised 2NN ratio test
    knn: int = 4                         # neighbours examined per keypoint (g2NN)
    min_distance: float = 12.0           # pixels between the two ends of a pair
    ransac_threshold: float = 4.0        # pixels
    min_inliers: int = 6
    max_events: int = 6
    min_shift: float = 12.0              # reject transforms that barely move anything
    scale_range: tuple[float, float] = (0.4, 2.5)
    window: int = 7                      # side of the local correlation window
    min_ncc: float = 0.8                 # local NCC of image and warped image above this agrees
    min_texture: float = 3.0             # local std below this is flat (agreement means nothing)
    grow: int = 5                        # dilation (square side) of the agreeing area: border windows
    min_region: int = 24                 # pixels: smaller agreeing regions are dropped
    mirror: bool = True                  # also match against the mirrored image (flipped copies)


@dataclass
class Event:
    """One accepted duplication: the transform source -> copy and its mask (source | copy)."""

    matrix: np.ndarray                   # 2x3, copy = matrix @ [x, y, 1] of the source
    mirrored: bool
    inliers: np.ndarray                  # (n, 2, 2): source and copy points
    mask: np.ndarray                     # bool (H, W)


@dataclass
class MatchResult:
    events: list[Event] = field(default_factory=list)
    instances: list[np.ndarray] = field(default_factory=list)   # merged events, bool (H, W)
    n_keypoints: int = 0
    n_pairs: int = 0
    rejected: list[str] = field(default_factory=list)


def to_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _keypoints(gray: np.ndarray, config: MatchConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) keypoint coordinates in the image's pixels and (N, 128) RootSIFT descriptors."""
    scale = 2.0 if max(gray.shape) < config.upsample_below else 1.0
    work = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1 else gray
    sift = cv2.SIFT_create(nfeatures=config.max_keypoints, contrastThreshold=config.contrast_threshold)
    keypoints, descriptors = sift.detectAndCompute(work, None)
    if descriptors is None or len(keypoints) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    points = np.array([k.pt for k in keypoints], np.float32) / scale
    descriptors = descriptors / (descriptors.sum(1, keepdims=True) + 1e-7)   # RootSIFT
    return points, np.sqrt(descriptors).astype(np.float32)


def _knn(query: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of the k nearest train descriptors of each query (FLANN when large)."""
    k = min(k, len(train))
    if len(train) > 2000:
        matcher = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})
    else:
        matcher = cv2.BFMatcher(cv2.NORM_L2)
    matches = matcher.knnMatch(query, train, k=k)
    dist = np.full((len(query), k), np.inf, np.float32)
    index = np.zeros((len(query), k), np.int64)
    for i, row in enumerate(matches):
        for j, m in enumerate(row[:k]):
            dist[i, j], index[i, j] = m.distance, m.trainIdx
    return dist, index


def _g2nn_pairs(points_a, desc_a, points_b, desc_b, config: MatchConfig, same: bool) -> np.ndarray:
    """(n, 2, 2) pairs (point of a, point of b) passing the generalised 2NN test and the
    minimum distance; with `same`, a point's match with itself is skipped."""
    if len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros((0, 2, 2), np.float32)
    dist, index = _knn(desc_a, desc_b, config.knn + (1 if same else 0))
    if same:
        dist, index = dist[:, 1:], index[:, 1:]   # the nearest is the point itself
    pairs = []
    for i in range(len(desc_a)):
        for j in range(dist.shape[1] - 1):
            if not dist[i, j] < config.ratio * dist[i, j + 1]:
                break
            a, b = points_a[i], points_b[index[i, j]]
            if np.hypot(*(a - b)) >= config.min_distance:
                pairs.append((a, b))
    return np.array(pairs, np.float32).reshape(-1, 2, 2)


def _fit_events(pairs: np.ndarray, config: MatchConfig, result: MatchResult) -> list[tuple[np.ndarray, np.ndarray]]:
    """Similarity transforms peeled off the pairs by RANSAC: [(2x3 matrix, inlier pairs)]."""
    found = []
    remaining = pairs
    while len(remaining) >= config.min_inliers and len(found) < config.max_events:
        matrix, inliers = cv2.estimateAffinePartial2D(np.ascontiguousarray(remaining[:, 0]),
                                                      np.ascontiguousarray(remaining[:, 1]), method=cv2.RANSAC,
                                                      ransacReprojThreshold=config.ransac_threshold,
                                                      maxIters=4000, confidence=0.995)
        if matrix is None or inliers is None:
            break
        inliers = inliers.ravel().astype(bool)
        if inliers.sum() < config.min_inliers:
            result.rejected.append(f"cluster of {int(inliers.sum())} inliers < min_inliers {config.min_inliers}")
            break
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        shift = float(np.median(np.hypot(*(remaining[inliers, 1] - remaining[inliers, 0]).T)))
        if not config.scale_range[0] <= scale <= config.scale_range[1]:
            result.rejected.append(f"transform scale {scale:.2f} outside {config.scale_range}")
        elif shift < config.min_shift:
            result.rejected.append(f"transform moves points {shift:.1f} px < min_shift {config.min_shift}")
        else:
            found.append((matrix, remaining[inliers]))
        remaining = remaining[~inliers]
    return found


def _agreement(gray: np.ndarray, matrix: np.ndarray, config: MatchConfig) -> np.ndarray:
    """Bool map of where the image agrees with itself moved by `matrix` (source -> copy): local
    normalised cross-correlation over `window` x `window` patches, on textured pixels only."""
    h, w = gray.shape
    a = gray.astype(np.float32)
    b = cv2.warpAffine(a, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    valid = cv2.warpAffine(np.ones_like(a), matrix, (w, h), flags=cv2.INTER_NEAREST) > 0
    size = (config.window, config.window)
    mean_a, mean_b = cv2.blur(a, size), cv2.blur(b, size)
    var_a = np.maximum(cv2.blur(a * a, size) - mean_a ** 2, 0)
    var_b = np.maximum(cv2.blur(b * b, size) - mean_b ** 2, 0)
    cov = cv2.blur(a * b, size) - mean_a * mean_b
    ncc = cov / np.sqrt(var_a * var_b + 1e-6)
    textured = (var_a >= config.min_texture ** 2) & (var_b >= config.min_texture ** 2)
    return valid & textured & (ncc >= config.min_ncc)


def _event_mask(gray: np.ndarray, matrix: np.ndarray, inliers: np.ndarray, config: MatchConfig) -> np.ndarray:
    """Copy region: agreeing components that hold a copy-side inlier; source: its pre-image."""
    h, w = gray.shape
    agree = _agreement(gray, matrix, config).astype(np.uint8)
    agree = cv2.morphologyEx(agree, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels = cv2.connectedComponents(agree, connectivity=8)
    copy_points = np.clip(np.round(inliers[:, 1]).astype(int), 0, [w - 1, h - 1])
    hit = np.unique(labels[copy_points[:, 1], copy_points[:, 0]])
    hit = hit[hit > 0]
    copy = np.isin(labels, hit)
    if copy.sum() < config.min_region:
        return np.zeros((h, w), bool)
    # windows that straddle the region's border correlate poorly: grow back half a window
    copy = cv2.dilate(copy.astype(np.uint8), np.ones((config.grow, config.grow), np.uint8)) > 0
    inverse = cv2.invertAffineTransform(matrix)
    source = cv2.warpAffine(copy.astype(np.uint8), inverse, (w, h), flags=cv2.INTER_NEAREST) > 0
    return copy | source


def _mirror_matrix(matrix: np.ndarray, width: int) -> np.ndarray:
    """A transform fitted from mirrored source points back onto original coordinates:
    copy = M @ flip(source), flip(x, y) = (width - 1 - x, y)."""
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return (np.vstack([matrix, [0, 0, 1]]) @ flip)[:2]


def _merge(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Union masks that share pixels (one event copied twice is one instance)."""
    merged: list[np.ndarray] = []
    for mask in masks:
        mask = mask.copy()
        for other in [m for m in merged if (m & mask).any()]:
            mask |= other
            merged = [m for m in merged if m is not other]
        merged.append(mask)
    return merged


def match_image(image: np.ndarray, config: MatchConfig = MatchConfig()) -> MatchResult:
    """Find copy-move duplications in an RGB (or gray) uint8 image."""
    gray = to_gray(image)
    h, w = gray.shape
    result = MatchResult()
    points, desc = _keypoints(gray, config)
    result.n_keypoints = len(points)
    candidates = [(pairs, False) for pairs in [_g2nn_pairs(points, desc, points, desc, config, same=True)]]
    if config.mirror:
        mirrored_points, mirrored_desc = _keypoints(np.ascontiguousarray(gray[:, ::-1]), config)
        # source points in mirrored coordinates, copy points in original coordinates
        candidates.append((_g2nn_pairs(mirrored_points, mirrored_desc, points, desc, config, same=False), True))
    for pairs, mirrored in candidates:
        result.n_pairs += len(pairs)
        for matrix, inliers in _fit_events(pairs, config, result):
            if mirrored:
                matrix = _mirror_matrix(matrix, w)
                inliers = inliers.copy()
                inliers[:, 0, 0] = w - 1 - inliers[:, 0, 0]
                if np.median(np.hypot(*(inliers[:, 1] - inliers[:, 0]).T)) < config.min_shift:
                    result.rejected.append("mirrored transform maps points onto themselves")
                    continue
            mask = _event_mask(gray, matrix, inliers, config)
            if not mask.any():
                result.rejected.append(f"transform with {len(inliers)} inliers: no agreeing region")
                continue
            result.events.append(Event(matrix, mirrored, inliers, mask))
    result.instances = _merge([e.mask for e in result.events])
    return result
