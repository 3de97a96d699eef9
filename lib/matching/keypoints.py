"""Keypoint stage: SIFT once, RootSIFT descriptors matched against themselves and against their
mirror images (a fixed permutation of the SIFT bins, so flipped copies cost no second
detection), generalised 2NN ratio test, minimum distance. Finds large and transformed copies."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .config import MatchConfig
from .transforms import one_direction

# SIFT descriptor layout: (row, col, orientation) = 4 x 4 x 8. Mirroring the image left-right
# reverses the rows of the keypoint frame and negates the orientations.
_MIRROR = np.arange(128).reshape(4, 4, 8)[::-1][..., (8 - np.arange(8)) % 8].ravel()


def keypoints(gray: np.ndarray, config: MatchConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) keypoint coordinates and (N, 128) RootSIFT descriptors (unit L2 norm)."""
    scale = 2.0 if max(gray.shape) < config.upsample_below else 1.0
    work = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1 else gray
    sift = cv2.SIFT_create(nfeatures=config.max_keypoints, contrastThreshold=config.contrast_threshold)
    keypoints, descriptors = sift.detectAndCompute(work, None)
    if descriptors is None or len(keypoints) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    points = np.array([k.pt for k in keypoints], np.float32) / scale
    descriptors = descriptors / (descriptors.sum(1, keepdims=True) + 1e-7)   # RootSIFT
    return points, np.sqrt(descriptors).astype(np.float32)


def _knn(query: np.ndarray, train: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact (distances, indices) of the k nearest train descriptors of each query (unit-norm
    descriptors: squared distance = 2 - 2 * dot), by chunked matrix products."""
    k = min(k, len(train))
    q, t = torch.from_numpy(query), torch.from_numpy(train)
    dists, indices = [], []
    for part in torch.split(q, chunk):
        sim, index = (part @ t.T).topk(k, dim=1)
        dists.append(torch.sqrt(torch.clamp(2 - 2 * sim, min=0)))
        indices.append(index)
    return torch.cat(dists).numpy(), torch.cat(indices).numpy()


def g2nn_pairs(points: np.ndarray, desc: np.ndarray, mirrored: bool, config: MatchConfig) -> np.ndarray:
    """(n, 2, 2) pairs (a, b) passing the generalised 2NN test and the minimum distance: the
    descriptor of a (mirrored when `mirrored`) is close to that of b."""
    if len(desc) < 3:
        return np.zeros((0, 2, 2), np.float32)
    query = np.ascontiguousarray(desc[:, _MIRROR]) if mirrored else desc
    dist, index = _knn(query, desc, config.knn + 1)
    if not mirrored:
        dist, index = dist[:, 1:], index[:, 1:]   # the nearest is the point itself
    # g2NN: keep neighbour j while d_j / d_{j+1} < ratio, i.e. all j before the first failure
    passing = dist[:, :-1] < config.ratio * dist[:, 1:]
    keep = np.cumprod(passing, axis=1).astype(bool)
    rows, cols = np.nonzero(keep)
    a, b = points[rows], points[index[rows, cols]]
    far = np.hypot(*(a - b).T) >= config.min_distance
    return one_direction(np.stack([a[far], b[far]], axis=1).astype(np.float32))


def mirror_sources(pairs: np.ndarray, width: int) -> np.ndarray:
    out = pairs.copy()
    out[:, 0, 0] = width - 1 - out[:, 0, 0]
    return out


def unmirror(matrix: np.ndarray, width: int) -> np.ndarray:
    """A transform fitted from mirrored sources, as a map of original coordinates:
    copy = M @ flip(source), flip(x, y) = (width - 1 - x, y)."""
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return (np.vstack([matrix, [0, 0, 1]]) @ flip)[:2]

