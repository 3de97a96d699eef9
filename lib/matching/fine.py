"""Fine stage: small copies (a cell, a band, a speck of texture: 12-40 px), which the dense
stage cannot see (its 13 px disks are the size of the copy, and a copy's few interior cells
fail its neighbour checks), and copies rotated by any angle.

1. Every textured pixel of the working image (a grid of step `fine_stride`) is described by
   the complex Zernike moments of an 11 px disk (supersampled kernels: see zernike_kernels):
   their magnitudes are invariant to rotations and flips, their phases turn with them.
2. Every other pixel (a checkerboard; every `spacing`-th row and column past `fine_max_grid`
   px a side) asks scipy's k-d tree for its nearest pixel by magnitude at least `min_distance`
   away; the phases then say which of the 8 right-angle rotations and flips carries one disk
   onto the other, and how well (the moments' distance after the map); where none does, which
   rotation by a multiple of FREE_STEP degrees, mirrored or not (`fine_free`). Partners on the
   full grid: a copy moved by an odd number of pixels still finds its exact partner.
3. A consistency test that suits small regions: every cell of a copy moved by the dihedral map
   A has its partner at A p + b with the same shift b, while chance matches scatter over all
   shifts. Good matches vote for (A, b) in a Hough accumulator (3 x 3 px tolerance); at each
   peak, the largest spatially coherent group of voters (a copy's cells lie together, chance
   votes scatter over the figure) is its support, and peaks are ranked by it. A peak of at
   least `fine_min_points` coherent votes is a candidate transform, exact for the copy however
   few cells it has; the support (regions.py) then finds its mask. Matches with a free
   rotation vote for where their source block's centre goes instead (_free_peaks), and a
   similarity fitted to a peak's voters is the candidate.

Measured on 60 copies under 2 % of the figure in the benchmark's training figures (textured
or weakly textured), the right-angle maps alone give a candidate with pixel F1 >= 0.5 for 30;
querying every pixel finds 31 at twice the time, a partner grid of step 2 15. Scaled copies
are left to the keypoint and dense stages: the moments of a disk tolerate about 5 % of scale
(a copy scaled by 0.9 found its true partner for 1 cell in 8), so each further scale would cost
another search of the whole figure."""
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
FREE_MAX_DISTANCE = 0.35  # the same for a free rotation: an interpolated copy's moments match less well (of a
#                           24 px copy rotated by 30 degrees after JPEG, 31 of 36 true matches are under 0.35, 16
#                           under 0.25)

FREE_STEP = 10            # degrees between the free rotations tried (a copy rotated by another angle: the
#                           nearest is at most 5 degrees off, which moves a point 17 px from its block's
#                           anchor by under 1.5 px)
FREE_BLOCK = 24           # px: free matches vote for where their source block's centre goes
FREE_BIN = 3              # px: the free accumulator's bins (votes count over 3 x 3 bins)
FREE_REFIT = 2.5          # px: a free match belongs to a transform when it lands this close (and its own
#                           rotation is within FREE_STEP of the transform's)
FREE_SCALE = 0.1          # a free transform scales by at most this (see _rigid)


def _flip(mirrored: bool) -> np.ndarray:
    """The reflection diag(1, -1) every mirrored map here is written with, or the identity."""
    return np.diag([1.0, -1.0]) if mirrored else np.eye(2)


def _reflection(theta: float, mirrored: bool) -> np.ndarray:
    """The 2x2 map R(theta) (rotation by theta, on (x, y) offsets), after the reflection
    diag(1, -1) when `mirrored`."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]]) @ _flip(mirrored)


# The 8 right-angle rotations and flips as 2x2 matrices acting on (x, y) offsets.
DIHEDRAL_XY = np.array([[[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]],
                        [[-1, 0], [0, 1]], [[1, 0], [0, -1]], [[0, 1], [1, 0]], [[0, -1], [-1, 0]]], np.float32)
# Free rotations every FREE_STEP degrees, plain then mirrored, as 2x2 matrices
FREE_XY = np.array([_reflection(np.deg2rad(a), mirrored) for mirrored in (False, True)
                    for a in range(0, 360, FREE_STEP)], np.float32)


def _moment_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(factors (M, K) complex, conjugate (M,) bool): how each map A of `maps` (M, 2, 2), a
    rotation or a rotation after the reflection diag(1, -1), acts on the complex moments of a
    disk: the moments of the disk seen through A are factor * Z, or factor * conj(Z) where A is
    a reflection. Rotating by theta turns Z_nm by e^(-i m theta); a reflection conjugates."""
    m = np.array([m for _, m in zernike_orders()])      # each kernel's repetition
    factors, conjugate = [], []
    for a in maps.astype(np.float64):
        det = np.linalg.det(a)
        rotation = a @ _flip(det < 0)
        theta = np.arctan2(rotation[1, 0], rotation[0, 0])
        factors.append(np.exp(-1j * m * theta))
        conjugate.append(det < 0)
    return np.array(factors), np.array(conjugate)


FACTORS, CONJUGATE = _moment_maps(DIHEDRAL_XY)
FREE_FACTORS, FREE_CONJUGATE = _moment_maps(FREE_XY)


def fine_moments(gray: np.ndarray, radius: int = FINE_RADIUS) -> np.ndarray:
    """(h, w, K) complex64 Zernike moments of the disk around every pixel, each filter
    response computed by cv2.filter2D (after a light blur: re-saving smooths pixel noise)."""
    image = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.8)
    out = []
    for kernel in zernike_kernels(radius, supersample=8):   # supersampled: see zernike_kernels
        # filter2D correlates: the moment is the sum of image * V*, i.e. correlation with V*
        re = cv2.filter2D(image, cv2.CV_32F, kernel.real.astype(np.float32), borderType=cv2.BORDER_REFLECT)
        im = cv2.filter2D(image, cv2.CV_32F, kernel.imag.astype(np.float32), borderType=cv2.BORDER_REFLECT)
        out.append(re + 1j * im)
    return np.stack(out, -1).astype(np.complex64)


def _cross_weights(scale: np.ndarray, factors: np.ndarray, conjugate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(plain, mirrored) (2K, M) float32 matrices for the M maps of (factors, conjugate):
    [Re c, Im c] @ plain[:, a] is the weighted sum over moments of Re(F_a c) for the rotations
    a (c = zp * conj(zq)), and with c = conj(zp) * conj(zq), @ mirrored[:, a] the same for the
    reflections; zero elsewhere."""
    weight = 1.0 / scale ** 2
    plain, mirrored = np.zeros((2, 2 * len(scale), len(factors)), np.float32)
    for a, (factor, conj) in enumerate(zip(factors, conjugate)):
        target = mirrored if conj else plain
        target[:len(scale), a] = weight * factor.real
        target[len(scale):, a] = -weight * factor.imag
    return plain, mirrored


def _best_transform(zp: np.ndarray, zq: np.ndarray, scale: np.ndarray, factors: np.ndarray = FACTORS,
                    conjugate: np.ndarray = CONJUGATE) -> tuple[np.ndarray, np.ndarray]:
    """(index into the maps of (factors, conjugate): by default DIHEDRAL_XY's, distance) of the
    map that best carries the moments zp (n, K) onto zq (n, K): the root mean square of
    |F zp - zq| (F zp: zp seen through the map) in units of `scale` (K,) per moment, from
    |F zp - zq|^2 = |zp|^2 + |zq|^2 - 2 Re(F zp conj(zq))."""
    plain, mirrored = _cross_weights(scale, factors, conjugate)
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
    by magnitude at least min_distance away, and the moments' phases say which map carries one
    onto the other and how well: a right-angle one (indices 0-7 of DIHEDRAL_XY), else with
    `fine_free` a free rotation (index 8 + its index in FREE_XY). Rows for the cells whose match
    is good (distance at most FINE_MAX_DISTANCE, FREE_MAX_DISTANCE for a free rotation)."""
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
    apart, index = cKDTree(standard).query(standard[asked], k=k, eps=FINE_EPS, workers=1)
    zq, qx, qy = z[asked], px[asked], py[asked]
    far = np.hypot(px[index] - qx[:, None], py[index] - qy[:, None]) >= config.min_distance
    first = far.argmax(1)                 # the nearest far enough: the cell's partner
    # |F zp - zq| >= ||zp| - |zq||: no map brings moments closer than their magnitudes are, so a
    # partner further than the largest distance allowed cannot match (skipped: an exact shortcut)
    limit = max(FINE_MAX_DISTANCE, FREE_MAX_DISTANCE if config.fine_free else 0.0) * np.sqrt(len(scale))
    has = far.any(1) & (apart[np.arange(len(first)), first] <= limit)
    zq, qx, qy = zq[has], qx[has], qy[has]
    partner = index[has, first[has]]
    transform, best = _best_transform(zq, z[partner], scale)
    good = best <= FINE_MAX_DISTANCE
    if config.fine_free and not good.all():
        # the others: the best free rotation (transform indices past the 8 right-angle maps)
        free = ~good
        turned, distance = _best_transform(zq[free], z[partner[free]], scale, FREE_FACTORS, FREE_CONJUGATE)
        transform[free], best[free] = turned + len(DIHEDRAL_XY), distance
        good[free] = distance <= FREE_MAX_DISTANCE
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


def _right_angle_peaks(matches: np.ndarray, shape: tuple[int, int], reach: float,
                       config: MatchConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(2x3 matrix, voters' indices) of each peak of the (dihedral map, shift) Hough accumulator
    over the matches (rows of fine_matches with a right-angle map), supported by its largest
    spatially coherent group of voters (_coherent, gaps up to `reach` px): the transform is
    exact, its shift the voters' median."""
    h, w = shape
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
        near = near[_coherent(p[near], reach)]
        if len(near) >= config.fine_min_points:
            matrix = np.hstack([DIHEDRAL_XY[k], np.median(shift[near], axis=0)[:, None]]).astype(np.float64)
            peaks.append((matrix, near))
    return peaks


def _similarity(p: np.ndarray, q: np.ndarray, mirrored: bool) -> np.ndarray | None:
    """The 2x3 similarity (after the reflection diag(1, -1) when `mirrored`) carrying the points
    p (n, 2) onto q (n, 2), fitted by RANSAC (2 px); None when none fits."""
    flip = _flip(mirrored)
    matrix, _ = cv2.estimateAffinePartial2D(np.ascontiguousarray(p @ flip, dtype=np.float32),
                                            np.ascontiguousarray(q, dtype=np.float32), method=cv2.RANSAC,
                                            ransacReprojThreshold=2.0, maxIters=500, confidence=0.99)
    if matrix is None:
        return None
    return np.hstack([matrix[:, :2] @ flip, matrix[:, 2:]])


def _rigid(matrix: np.ndarray | None) -> bool:
    """Whether a fitted similarity moves without scaling (within FREE_SCALE): the fine moments of
    a disk change with scale, so a free copy's matches come from copies at their own size, and a
    fit that scales is chance."""
    return matrix is not None and abs(np.sqrt(abs(np.linalg.det(matrix[:, :2]))) - 1) <= FREE_SCALE


def _free_peaks(matches: np.ndarray, reach: float, config: MatchConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(2x3 matrix, voters' indices) of the transforms that the matches with a free rotation
    (rows of fine_matches past the right-angle maps) agree on. Under a rotation by another angle
    the shift q - A p differs from point to point, and the angle read from the moments' phases
    is only FREE_STEP / 2 degrees exact; so each match votes for where the centre of its source's
    FREE_BLOCK px block goes (q - A (p - centre): the same point, within about a pixel, for all
    of a copy's matches in the block; chance matches scatter). At each peak of that accumulator,
    a similarity is fitted to its voters, grown to every match it carries within FREE_REFIT px
    whose own rotation agrees (the copy's other blocks), refitted, kept when it does not scale
    (_rigid), and kept to its largest spatially coherent group."""
    p, q = matches[:, 0:2], matches[:, 2:4]
    index = matches[:, 4].astype(np.int64) - len(DIHEDRAL_XY)
    maps = FREE_XY[index].astype(np.float64)
    mirrored = index >= len(FREE_XY) // 2
    angle = np.deg2rad(index % (len(FREE_XY) // 2) * FREE_STEP)     # each match's rotation, from the phases
    block = np.floor(p / FREE_BLOCK).astype(np.int64)
    anchor = q - np.einsum("nij,nj->ni", maps, p - (block + 0.5) * FREE_BLOCK)
    cell = np.floor(anchor / FREE_BIN).astype(np.int64)
    low = np.minimum(block.min(0), cell.min(0)) - 1
    span = int(max(block.max(), cell.max()) - low.min() + 2)

    def key(b: np.ndarray, c: np.ndarray) -> np.ndarray:
        parts = (b[:, 0] - low[0], b[:, 1] - low[1], c[:, 0] - low[0], c[:, 1] - low[1])
        out = mirrored.astype(np.int64)
        for part in parts:
            out = out * span + part
        return out

    around = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    keys, counts = np.unique(np.concatenate([key(block, cell + d) for d in around]), return_counts=True)
    strong = np.flatnonzero(counts >= config.fine_min_points)
    own = key(block, cell)
    peaks = []
    taken = np.zeros(len(matches), bool)
    for peak in keys[strong[np.argsort(-counts[strong], kind="stable")][:FINE_PEAKS]]:
        # the peak's voters: the same block and reflection, their cell within one of the peak's
        voters = np.flatnonzero(~taken & np.isin(own, [peak - (dy * span + dx) for dx, dy in around]))
        if len(voters) < config.fine_min_points:
            continue
        flip = bool(mirrored[voters[0]])
        same = ~taken & (mirrored == flip)
        matrix = _similarity(p[voters], q[voters], flip)
        for _ in range(2):           # grow to the copy's other blocks, refit
            if not _rigid(matrix):
                break
            rotation = matrix[:, :2] @ _flip(flip)
            turn = np.angle(np.exp(1j * (angle - np.arctan2(rotation[1, 0], rotation[0, 0]))))
            landed = np.hypot(*(p @ matrix[:, :2].T + matrix[:, 2] - q).T)
            voters = np.flatnonzero(same & (landed <= FREE_REFIT) & (np.abs(turn) <= np.deg2rad(FREE_STEP)))
            matrix = _similarity(p[voters], q[voters], flip) if len(voters) >= config.fine_min_points else None
        if not _rigid(matrix):
            continue
        voters = voters[_coherent(p[voters], reach)]
        taken[voters] = True
        if len(voters) >= config.fine_min_points:
            peaks.append((matrix, voters))
    return peaks


def fine_clusters(gray: np.ndarray, config: MatchConfig, rejected: list[tuple[str, str]]) -> list[Cluster]:
    """The transforms the fine matches agree on: the peaks of the right-angle maps' Hough
    accumulator (_right_angle_peaks) and, with config.fine_free, those of the free rotations
    (_free_peaks), each supported by its largest spatially coherent group of voters, ranked by
    that group's size; those of at least config.fine_min_points, at most config.max_events; a
    transform and its inverse (the two sides of one copy) count once."""
    matches = fine_matches(gray, config)
    if len(matches) < config.fine_min_points:
        return []
    reach = 2.0 * config.fine_stride * query_spacing(gray.shape, config)
    right = matches[:, 4] < len(DIHEDRAL_XY)
    peaks = [(matrix, np.flatnonzero(right)[near])
             for matrix, near in _right_angle_peaks(matches[right], gray.shape, reach, config)]
    if (~right).sum() >= config.fine_min_points:
        peaks += [(matrix, np.flatnonzero(~right)[near])
                  for matrix, near in _free_peaks(matches[~right], reach, config)]
    p, q = matches[:, 0:2], matches[:, 2:4]
    found: list[Cluster] = []
    for rank, (matrix, near) in enumerate(sorted(peaks, key=lambda peak: -len(peak[1]))):
        if len(found) == config.max_events:
            rejected.append(("fine", f"{len(peaks) - rank} more transforms: max_events {config.max_events} reached"))
            break
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
    """Whether transform `a` is `b` or its inverse (the copy found from its source side): the
    same linear part within 0.05 and the same shift within `tolerance` px."""
    inverse = cv2.invertAffineTransform(b.matrix)
    return any(np.abs(a.matrix[:, :2] - m[:, :2]).max() <= 0.05 and np.abs(a.matrix[:, 2] - m[:, 2]).max() <= tolerance
               for m in (b.matrix, inverse))
