"""Fine stage: small copies (a cell, a band, a speck of texture: 12-40 px), which the dense
stage cannot see (its 13 px disks are the size of the copy, and a copy's few interior cells
fail its neighbour checks).

1. Every textured pixel of the working image (a grid of step `fine_stride`) is described by
   the complex Zernike moments of an 11 px disk: their magnitudes are invariant to rotations
   and flips, their phases turn with them.
2. Every other pixel (a checkerboard; every `spacing`-th row and column past `fine_max_grid`
   px a side) asks scipy's k-d tree for its nearest pixel by magnitude at least `min_distance`
   away; the phases then say which of the 8 right-angle rotations and flips carries one disk
   onto the other, and how well (the moments' distance after the map). Partners on the full
   grid: a copy moved by an odd number of pixels still finds its exact partner.
3. A consistency test that suits small regions: every cell of a copy moved by the dihedral map
   A has its partner at A p + b with the same shift b, while chance matches scatter over all
   shifts. Good matches vote for (A, b) in a Hough accumulator (3 x 3 px tolerance); at each
   peak, the largest spatially coherent group of voters (a copy's cells lie together, chance
   votes scatter over the figure) is its support, and peaks are ranked by it. A peak of at
   least `fine_min_points` coherent votes is a candidate transform, exact for the copy however
   few cells it has; the support (regions.py) then finds its mask.

Measured on 60 copies under 2 % of the figure in the benchmark's training figures (textured
or weakly textured), the fine stage alone gives a candidate with pixel F1 >= 0.5 for 30;
querying every pixel finds 31 at twice the time, a partner grid of step 2 15. Copies rotated
by other angles or scaled are left to the keypoint and dense stages."""
from __future__ import annotations

from math import ceil

import cv2
import numpy as np
from scipy.spatial import cKDTree

from .config import MatchConfig
from .dense import local_std, zernike_kernels, zernike_orders
from .transforms import Cluster, cluster_of, degenerate

FINE_RADIUS = 5           # disk radius of the fine features (an 11 px disk)
FINE_KNN = 5              # nearest neighbours examined per cell
FINE_EPS = 5.0            # the k-d tree's neighbours lie within (1 + eps) x the true distance: a 5x faster
#                           search than the exact one on dense texture, and a copy's cells still vote (of the 60
#                           benchmark copies above, 31 found with eps 5 and 5 neighbours, as with eps 3 and 8)
FINE_PEAKS = 64           # accumulator peaks examined
FINE_MAX_DISTANCE = 0.25  # a match counts when its moments' distance (after the transform) is under this share
#                           of the magnitudes' spread (standardised units)

# The 8 right-angle rotations and flips as 2x2 matrices acting on (x, y) offsets.
DIHEDRAL_XY = np.array([[[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]],
                        [[-1, 0], [0, 1]], [[1, 0], [0, -1]], [[0, 1], [1, 0]], [[0, -1], [-1, 0]]], np.float32)


def _moment_maps() -> tuple[np.ndarray, np.ndarray]:
    """(factors (8, K) complex, conjugate (8,) bool): how each dihedral map A of DIHEDRAL_XY acts
    on the complex moments of a disk: the moments of the disk seen through A are factor * Z, or
    factor * conj(Z) where A is a reflection. Rotating by 90 degrees turns Z_nm by m quarter
    turns; a reflection conjugates (here: about the x axis, then rotated)."""
    m = np.array([m for _, m in zernike_orders()])      # each kernel's repetition
    factors, conjugate = [], []
    for a in DIHEDRAL_XY:
        det = np.linalg.det(a)
        # a = R(theta) for rotations; a = R(theta) @ diag(1, -1) for reflections
        rotation = a if det > 0 else a @ np.diag([1, -1])
        theta = np.arctan2(rotation[1, 0], rotation[0, 0])
        factors.append(np.exp(-1j * m * theta))
        conjugate.append(det < 0)
    return np.array(factors), np.array(conjugate)


FACTORS, CONJUGATE = _moment_maps()


def fine_moments(gray: np.ndarray, radius: int = FINE_RADIUS) -> np.ndarray:
    """(h, w, K) complex64 Zernike moments of the disk around every pixel, each filter
    response computed by cv2.filter2D (after a light blur: re-saving smooths pixel noise)."""
    image = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.8)
    out = []
    for kernel in zernike_kernels(radius):
        # filter2D correlates: the moment is the sum of image * V*, i.e. correlation with V*
        re = cv2.filter2D(image, cv2.CV_32F, kernel.real.astype(np.float32), borderType=cv2.BORDER_REFLECT)
        im = cv2.filter2D(image, cv2.CV_32F, kernel.imag.astype(np.float32), borderType=cv2.BORDER_REFLECT)
        out.append(re + 1j * im)
    return np.stack(out, -1).astype(np.complex64)


def _cross_weights(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(plain, mirrored) (2K, 8) float32 matrices: [Re c, Im c] @ plain[:, a] is the weighted
    sum over moments of Re(F_a c) for the rotations a (c = zp * conj(zq)), and with
    c = conj(zp) * conj(zq), @ mirrored[:, a] the same for the reflections; zero elsewhere."""
    weight = 1.0 / scale ** 2
    plain, mirrored = np.zeros((2, 2 * len(scale), 8), np.float32)
    for a, (factor, conjugate) in enumerate(zip(FACTORS, CONJUGATE)):
        target = mirrored if conjugate else plain
        target[:len(scale), a] = weight * factor.real
        target[len(scale):, a] = -weight * factor.imag
    return plain, mirrored


def _best_transform(zp: np.ndarray, zq: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into DIHEDRAL_XY, distance) of the map that best carries the moments zp (n, K)
    onto zq (n, K): the root mean square of |F zp - zq| (F zp: zp seen through the map) in units
    of `scale` (K,) per moment, from |F zp - zq|^2 = |zp|^2 + |zq|^2 - 2 Re(F zp conj(zq))."""
    plain, mirrored = _cross_weights(scale)
    weight = (1.0 / scale ** 2).astype(np.float32)
    energy = (np.abs(zp) ** 2 + np.abs(zq) ** 2) @ weight
    c, cm = zp * np.conj(zq), np.conj(zp * zq)
    cross = np.hstack([c.real, c.imag]) @ plain + np.hstack([cm.real, cm.imag]) @ mirrored
    d2 = energy[:, None] - 2 * cross
    which = d2.argmin(1)
    return which, np.sqrt(np.maximum(d2[np.arange(len(zp)), which], 0) / len(scale)).astype(np.float32)


def fine_matches(gray: np.ndarray, config: MatchConfig) -> np.ndarray:
    """(n, 6) float32 rows (px, py, qx, qy, transform index, distance): the textured cells of a
    grid of step `fine_stride` are the partners; every other one of them (a checkerboard: half
    the k-d tree's queries, and a copy's cells still vote densely) asks for its nearest partner
    by magnitude at least min_distance away, and the moments' phases say which dihedral map
    carries one onto the other and how well. Rows for the cells whose match is good (distance
    at most FINE_MAX_DISTANCE)."""
    h, w = gray.shape
    r = FINE_RADIUS
    step = config.fine_stride
    if min(h, w) < 2 * r + 8 * step:
        return np.zeros((0, 6), np.float32)
    moments = fine_moments(gray)[r:h - r:step, r:w - r:step]
    use = local_std(gray, 2 * r + 1)[r:h - r:step, r:w - r:step] >= config.fine_min_std
    ys, xs = np.nonzero(use)
    spacing = query_spacing(gray.shape, config)
    asked = (ys + xs) % 2 == 0 if spacing == 1 else (ys % spacing == 0) & (xs % spacing == 0)
    if asked.sum() < 2 * config.fine_min_points:
        return np.zeros((0, 6), np.float32)
    px, py = (xs * step + r).astype(np.float32), (ys * step + r).astype(np.float32)
    z = moments[use]
    magnitude = np.abs(z)
    scale = magnitude.std(0) + 1e-6
    standard = ((magnitude - magnitude.mean(0)) / scale).astype(np.float32)
    k = min(FINE_KNN + 1, len(z))
    _, index = cKDTree(standard).query(standard[asked], k=k, eps=FINE_EPS, workers=1)
    zq, qx, qy = z[asked], px[asked], py[asked]
    far = np.hypot(px[index] - qx[:, None], py[index] - qy[:, None]) >= config.min_distance
    has = far.any(1)                      # the nearest far enough: the cell's partner
    zq, qx, qy = zq[has], qx[has], qy[has]
    partner = index[has, far[has].argmax(1)]
    transform, best = _best_transform(zq, z[partner], scale)
    good = best <= FINE_MAX_DISTANCE
    return np.stack([qx[good], qy[good], px[partner[good]], py[partner[good]], transform[good], best[good]],
                    1).astype(np.float32)


def query_spacing(shape: tuple[int, int], config: MatchConfig) -> int:
    """Cells between the fine stage's queries, in partner-grid cells: 1 (a checkerboard) while
    the image is at most fine_max_grid px a side, else every `spacing`-th row and column."""
    return max(1, ceil(max(shape) / (config.fine_stride * config.fine_max_grid)))


def _coherent(points: np.ndarray, reach: float) -> np.ndarray:
    """Bool mask of the largest group of `points` (n, 2) chained by gaps of at most `reach` px:
    a copy's voters lie together; chance votes for the same shift scatter over the figure."""
    if len(points) < 2:
        return np.ones(len(points), bool)
    cells = np.floor(points / reach).astype(np.int64)
    cells -= cells.min(0)
    occupied = np.zeros(tuple(cells.max(0)[::-1] + 1), np.uint8)
    occupied[cells[:, 1], cells[:, 0]] = 1
    _, labels = cv2.connectedComponents(cv2.dilate(occupied, np.ones((3, 3), np.uint8)), connectivity=8)
    label = labels[cells[:, 1], cells[:, 0]]
    return label == np.bincount(label).argmax()


def fine_clusters(gray: np.ndarray, config: MatchConfig, rejected: list[tuple[str, str]]) -> list[Cluster]:
    """The transforms the fine matches agree on: peaks of the (dihedral map, shift) Hough
    accumulator, each supported by its largest spatially coherent group of voters (_coherent),
    ranked by that group's size; those of at least config.fine_min_points, at most
    config.max_events; a transform and its inverse (the two sides of one copy) count once."""
    matches = fine_matches(gray, config)
    if len(matches) < config.fine_min_points:
        return []
    h, w = gray.shape
    step = config.fine_stride * query_spacing(gray.shape, config)
    p, q, which = matches[:, 0:2], matches[:, 2:4], matches[:, 4].astype(np.int64)
    shift = q - np.einsum("nij,nj->ni", DIHEDRAL_XY[which], p)
    bx = np.clip(np.rint(shift[:, 0]).astype(np.int64) + w, 0, 2 * w)
    by = np.clip(np.rint(shift[:, 1]).astype(np.int64) + h, 0, 2 * h)
    votes = np.bincount((which * (2 * h + 1) + by) * (2 * w + 1) + bx,
                        minlength=8 * (2 * h + 1) * (2 * w + 1)).reshape(8, 2 * h + 1, 2 * w + 1).astype(np.float32)
    votes = np.stack([cv2.boxFilter(v, -1, (3, 3), normalize=False) for v in votes])
    local_max = np.stack([cv2.dilate(v, np.ones((5, 5), np.uint8)) for v in votes])
    ks, ys, xs = np.nonzero((votes >= config.fine_min_points) & (votes == local_max))
    order = np.argsort(-votes[ks, ys, xs], kind="stable")[:FINE_PEAKS]
    peaks = []
    taken = np.zeros(len(matches), bool)
    for k, y, x in zip(ks[order], ys[order], xs[order]):
        near = np.flatnonzero(~taken & (which == k) & (np.abs(bx - x) <= 1) & (np.abs(by - y) <= 1))
        taken[near] = True
        near = near[_coherent(p[near], 2.0 * step)]
        if len(near) >= config.fine_min_points:
            peaks.append((k, near))
    found: list[Cluster] = []
    for rank, (k, near) in enumerate(sorted(peaks, key=lambda peak: -len(peak[1]))):
        if len(found) == config.max_events:
            rejected.append(("fine", f"{len(peaks) - rank} more shifts: max_events {config.max_events} reached"))
            break
        b = np.median(shift[near], axis=0)
        matrix = np.hstack([DIHEDRAL_XY[k], b[:, None]]).astype(np.float64)
        cluster = cluster_of(matrix, np.stack([p[near], q[near]], 1), len(matches))
        if any(_same_event(cluster, other) for other in found):
            continue
        reason = degenerate(cluster, config)
        if reason:
            rejected.append(("fine", reason))
            continue
        found.append(cluster)
    return found


def _same_event(a: Cluster, b: Cluster, tolerance: float = 3.0) -> bool:
    """Whether transform `a` is `b` or its inverse (the copy found from its source side)."""
    inverse = cv2.invertAffineTransform(b.matrix)
    return any(np.allclose(a.matrix[:, :2], m[:, :2]) and np.abs(a.matrix[:, 2] - m[:, 2]).max() <= tolerance
               for m in (b.matrix, inverse))
