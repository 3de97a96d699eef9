"""Transforms fitted to point pairs: RANSAC clusters peeled off one at a time, each with the
measures that say how plausible a copy it is."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import MatchConfig


@dataclass
class Cluster:
    """One transform a -> b fitted to a cluster of pairs, and its geometry."""

    matrix: np.ndarray                   # 2x3
    inliers: np.ndarray                  # (n, 2, 2)
    pool: int                            # pairs left when it was fitted (its inlier ratio's denominator)
    spread: float                        # inliers' spread across their main direction (pixels)
    scale: float                         # sqrt(|det|)
    anisotropy: float                    # singular value ratio (1: a similarity)
    shift: float                         # median distance a point moves (pixels)


def one_direction(pairs: np.ndarray) -> np.ndarray:
    """Pairs (a, b) reordered so that b lies right of a (below on ties): a -> b and b -> a are
    the same evidence, and one event should give one cluster, not two inverse ones."""
    pairs = pairs.copy()
    a, b = pairs[:, 0], pairs[:, 1]
    swap = (b[:, 0] < a[:, 0]) | ((b[:, 0] == a[:, 0]) & (b[:, 1] < a[:, 1]))
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs


def cluster_of(matrix: np.ndarray, inliers: np.ndarray, pool: int) -> Cluster:
    """The Cluster of a 2x3 transform and its (n, 2, 2) inlier pairs, fitted among `pool` pairs."""
    points = inliers[:, 0]
    singular = np.linalg.svd(matrix[:, :2], compute_uv=False)
    return Cluster(matrix=matrix, inliers=inliers, pool=pool,
                   spread=float(np.linalg.svd(points - points.mean(0), compute_uv=False)[-1] / np.sqrt(len(points))),
                   scale=float(np.sqrt(singular[0] * singular[1])),
                   anisotropy=float(singular[0] / max(singular[1], 1e-9)),
                   shift=float(np.median(np.hypot(*(inliers[:, 1] - inliers[:, 0]).T))))


def degenerate(cluster: Cluster, config: MatchConfig) -> str | None:
    """Why a transform cannot be a copy's (or, under v1's cascade, is not trusted to be)."""
    if cluster.spread < config.min_spread:
        return f"inliers along a line (spread {cluster.spread:.1f} px): an edge or a rule"
    if not config.scale_range[0] <= cluster.scale <= config.scale_range[1]:
        return f"transform scale {cluster.scale:.2f} outside {config.scale_range}"
    if cluster.anisotropy > config.max_anisotropy:
        return f"transform stretches {cluster.anisotropy:.2f}x"
    if cluster.shift < config.min_shift:
        return f"transform moves points {cluster.shift:.1f} px < min_shift {config.min_shift}"
    return None


def fit_transforms(pairs: np.ndarray, stage: str, config: MatchConfig,
                   rejected: list[tuple[str, str]]) -> list[Cluster]:
    """Transforms peeled off the pairs by RANSAC. The keypoint stage fits similarities (its
    mirrored pairs come with mirrored sources); the dense stage fits affine maps (reflections
    included). Degenerate transforms are recorded in `rejected` with their reason."""
    found = []
    remaining = pairs
    needed = config.dense_min_points if stage == "dense" else config.min_inliers
    while len(remaining) >= needed and len(found) < config.max_events:
        src, dst = np.ascontiguousarray(remaining[:, 0]), np.ascontiguousarray(remaining[:, 1])
        estimate = cv2.estimateAffine2D if stage == "dense" else cv2.estimateAffinePartial2D
        matrix, inliers = estimate(src, dst, method=cv2.RANSAC, ransacReprojThreshold=config.ransac_threshold,
                                   maxIters=4000, confidence=0.995)
        if matrix is None or inliers is None:
            break
        inliers = inliers.ravel().astype(bool)
        if inliers.sum() < needed:
            rejected.append((stage, f"cluster of {int(inliers.sum())} inliers < {needed}"))
            break
        cluster = cluster_of(matrix, remaining[inliers], len(remaining))
        reason = degenerate(cluster, config)
        if reason:
            rejected.append((stage, reason))
        else:
            found.append(cluster)
        remaining = remaining[~inliers]
    return found
