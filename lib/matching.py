"""A training-free copy-move detector: keypoint and dense self-matching, geometric verification,
exact masks, false-positive filters.

Two detectors propose point pairs (a, b) where the image around b looks like the image
around a, possibly rotated, scaled or mirrored:

- keypoints (large and transformed copies): SIFT once, RootSIFT descriptors matched against
  themselves and against their mirror images (a fixed permutation of the SIFT bins, so flipped
  copies cost no second detection), generalised 2NN ratio test, minimum distance;
- dense (small copies, where SIFT finds few points): rotation- and flip-invariant
  Zernike-moment magnitudes of the patches on a 2-pixel grid, the nearest neighbour of every
  patch farther than `min_distance`, kept where the neighbours' matches lie as far apart as
  the neighbours do (a moved, rotated or mirrored copy preserves distances, chance matches
  scatter): the dense-field idea of Cozzolino, Poggi & Verdoliva, "Efficient dense-field
  copy-move forgery detection" (2015), with a rigidity check in place of their linear fit.

Pairs are explained by transforms fitted with RANSAC, peeled off one cluster at a time. For
each accepted transform the image is compared with itself warped by it (local normalised
cross-correlation on textured pixels); the agreeing area around the inliers is the copy, its
pre-image the source, and both together form one instance: one duplication event, as the
ground truth marks it. An event's score is the median correlation of the fine detail (the
image minus its blur) over the copy, away from straight edges: an exact copy carries its
source's noise and grain (score near 1), alike content does not. Events that share pixels
(A copied to B and to C, or one event found by both detectors) are merged. Rejected: inliers
along a line, agreement on edges only, source and copy overlapping or a region repeating
within itself (periodic texture), two-tone content or thin strokes on a flat ground (text,
panel letters, plot lines).

Images whose longer side exceeds `max_side` are matched at that size and their masks scaled
back; the dense stage runs on images up to `dense_max_side`. Every threshold is a field of
MatchConfig; every rejected candidate is recorded with its reason in MatchResult.rejected
(bin/match_copy_move.py --debug-dir draws them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import factorial

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from .draw import colour, outline_instances, text_strip

STAGES = ("keypoints", "dense")


@dataclass(frozen=True)
class MatchConfig:
    """Parameters of the matcher (defaults tuned on the synthetic figures of lib.demo)."""

    max_side: int = 1024                 # larger images are matched at this size
    # keypoint stage
    keypoints: bool = True
    contrast_threshold: float = 0.02     # SIFT: lower finds more points in low-contrast figures
    upsample_below: int = 0              # images whose longer side is shorter are upsampled 2x
    max_keypoints: int = 8000
    ratio: float = 0.6                   # generalised 2NN ratio test
    knn: int = 4                         # neighbours examined per keypoint (g2NN)
    min_distance: float = 12.0           # pixels between the two ends of a pair
    mirror: bool = True                  # also match mirrored descriptors (flipped copies)
    # transforms
    ransac_threshold: float = 4.0        # pixels
    min_inliers: int = 6
    max_events: int = 6                  # per detector
    min_shift: float = 12.0              # reject transforms that barely move anything
    scale_range: tuple[float, float] = (0.4, 2.5)
    min_spread: float = 2.0              # inliers' spread across their main direction (pixels)
    max_anisotropy: float = 1.3          # dense stage fits affine maps: singular value ratio at most
    # masks
    window: int = 7                      # side of the local correlation window
    min_ncc: float = 0.8                 # local NCC of image and warped image above this agrees
    min_detail_ncc: float = 0.75         # median NCC of the fine detail over an accepted copy
    max_coherence: float = 0.7           # above: an edge or a line, left out of that median
    min_texture: float = 3.0             # local std below this is flat (agreement means nothing)
    grow: int = 5                        # dilation (square side) of the agreeing area: border windows
    min_region: int = 24                 # pixels: smaller agreeing regions are dropped
    # dense stage
    dense: bool = True
    dense_max_side: int = 768            # larger (working) images skip the dense stage
    dense_radius: int = 6                # patch radius of the Zernike features
    dense_stride: int = 2                # grid step in pixels
    dense_knn: int = 8                   # neighbours examined for the first one far enough
    dense_dims: int = 6                  # principal components of the features searched
    dense_eps: float = 2.0               # approximate search: neighbours within (1 + eps) x the true distance
    dense_reach: int = 2                 # neighbours (grid cells each way) in the consistency check
    dense_tolerance: float = 2.5         # pixels a neighbour's match may miss the rigid distance by
    dense_agree: float = 0.5             # fraction of neighbours that must agree
    dense_min_points: int = 16           # consistent grid points a region needs
    # false-positive filters
    max_overlap: float = 0.25            # source and copy sharing more of the smaller: periodic texture
    max_self_similarity: float = 0.6     # autocorrelation of a region's detail off its centre: periodic
    max_two_tone: float = 0.8            # pixels near the two commonest gray levels: graphics
    max_stroke: float = 5.0              # stroke width (pixels) of text and lines on a flat ground

    def __post_init__(self):
        if self.max_side < 64:
            raise ValueError(f"max_side must be at least 64, got {self.max_side}")
        if not 0 < self.ratio < 1:
            raise ValueError(f"ratio must lie in (0, 1), got {self.ratio}")
        if self.min_inliers < 3:
            raise ValueError(f"min_inliers must be at least 3, got {self.min_inliers}")


@dataclass
class Event:
    """One accepted duplication: the transform source -> copy, its support, its mask and its
    score (the confidence the pipeline thresholds: near 1 for an exact copy)."""

    matrix: np.ndarray                   # 2x3, copy = matrix @ [x, y, 1] of the source
    stage: str                           # which detector proposed it (STAGES)
    inliers: np.ndarray                  # (n, 2, 2): source and copy points
    mask: np.ndarray                     # bool (H, W): source | copy
    score: float                         # median correlation of the fine detail of copy and source

    @property
    def mirrored(self) -> bool:
        return bool(np.linalg.det(self.matrix[:, :2]) < 0)


@dataclass
class MatchResult:
    events: list[Event] = field(default_factory=list)
    instances: list[np.ndarray] = field(default_factory=list)   # merged events, bool (H, W)
    scores: list[float] = field(default_factory=list)           # per instance: its best event's score
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    n_pairs: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)   # (stage, reason)
    scale: float = 1.0                   # working size / image size

    @property
    def n_keypoints(self) -> int:
        return len(self.keypoints)


def to_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


# --- keypoint stage --------------------------------------------------------------------------

# SIFT descriptor layout: (row, col, orientation) = 4 x 4 x 8. Mirroring the image left-right
# reverses the rows of the keypoint frame and negates the orientations.
_MIRROR = np.arange(128).reshape(4, 4, 8)[::-1][..., (8 - np.arange(8)) % 8].ravel()


def _keypoints(gray: np.ndarray, config: MatchConfig) -> tuple[np.ndarray, np.ndarray]:
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


def _g2nn_pairs(points: np.ndarray, desc: np.ndarray, mirrored: bool, config: MatchConfig) -> np.ndarray:
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
    return _one_direction(np.stack([a[far], b[far]], axis=1).astype(np.float32))


# --- dense stage -----------------------------------------------------------------------------

def zernike_kernels(radius: int, max_order: int = 4) -> list[np.ndarray]:
    """Complex Zernike kernels V*_nm on a disk of `radius` pixels, for n <= max_order, m >= 0,
    n - m even. |image * V*_nm| is invariant to rotations and mirroring of the patch."""
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1] / (radius + 0.5)
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    disk = rho <= 1.0
    kernels = []
    for n in range(max_order + 1):
        for m in range(n % 2, n + 1, 2):
            radial = sum((-1) ** k * factorial(n - k)
                         / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
                         * rho ** (n - 2 * k) for k in range((n - m) // 2 + 1))
            kernels.append(radial * np.exp(-1j * m * theta) * disk * (n + 1) / np.pi / disk.sum())
    return kernels


def _zernike_features(gray: np.ndarray, radius: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(n, F) Zernike-moment magnitudes of the disks centred on the pixels (ys, xs) (at least
    `radius` from the border): one matrix product of the patches with the kernels."""
    # a light blur: rotated and scaled copies are interpolated, which smooths pixel noise
    image = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    side = 2 * radius + 1
    windows = np.lib.stride_tricks.sliding_window_view(image, (side, side))
    patches = windows[ys - radius, xs - radius].reshape(len(ys), side * side)
    kernels = zernike_kernels(radius)
    weights = np.stack([k.real.ravel() for k in kernels] + [k.imag.ravel() for k in kernels], axis=1)
    moments = patches @ weights.astype(np.float32)
    return np.hypot(moments[:, :len(kernels)], moments[:, len(kernels):])


def _local_std(gray: np.ndarray, side: int) -> np.ndarray:
    a = gray.astype(np.float32)
    mean = cv2.blur(a, (side, side))
    return np.sqrt(np.maximum(cv2.blur(a * a, (side, side)) - mean * mean, 0))


def _rigid_consistency(targets: np.ndarray, valid: np.ndarray, reach: int, step: float,
                       tolerance: float) -> np.ndarray:
    """Fraction of each grid cell's neighbours (within `reach` cells) whose matches lie as far
    from the cell's match as the neighbour lies from the cell, within `tolerance` pixels. A copy
    moved, rotated or mirrored preserves these distances; chance matches scatter. `targets`
    (gh, gw, 2) are the matched positions, `valid` (gh, gw) where a match exists."""
    gh, gw = valid.shape
    pad = np.pad(targets, ((reach, reach), (reach, reach), (0, 0)))
    pad_valid = np.pad(valid, reach)
    agree = np.zeros((gh, gw), np.float32)
    count = np.zeros((gh, gw), np.float32)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dx == 0 and dy == 0:
                continue
            other = pad[reach + dy:reach + dy + gh, reach + dx:reach + dx + gw]
            both = valid & pad_valid[reach + dy:reach + dy + gh, reach + dx:reach + dx + gw]
            moved = np.hypot(*(other - targets).transpose(2, 0, 1))
            agree += both & (np.abs(moved - step * np.hypot(dx, dy)) <= tolerance)
            count += both
    return np.where(count > 0, agree / np.maximum(count, 1), 0.0)


def _dense_pairs(gray: np.ndarray, config: MatchConfig) -> np.ndarray:
    """(n, 2, 2) pairs (a, b) of grid points whose nearest neighbour field is locally affine."""
    r, step = config.dense_radius, config.dense_stride
    h, w = gray.shape
    if min(h, w) < 2 * r + 4 * step * config.dense_reach:
        return np.zeros((0, 2, 2), np.float32)
    textured = _local_std(gray, 2 * r + 1) >= config.min_texture
    ys, xs = np.mgrid[r:h - r:step, r:w - r:step]
    grid = np.stack([xs, ys], -1).astype(np.float32)
    use = textured[ys, xs]
    if use.sum() < config.dense_min_points * 2:
        return np.zeros((0, 2, 2), np.float32)
    feats = _zernike_features(gray, r, ys[use], xs[use])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    # the leading principal components: a k-d tree is fast in few dimensions
    basis = np.linalg.svd(feats[::max(1, len(feats) // 4000)], full_matrices=False)[2][:config.dense_dims]
    feats = np.ascontiguousarray(feats @ basis.T)
    where = grid[use]
    k = min(config.dense_knn + 1, len(feats))
    _, index = cKDTree(feats).query(feats, k=k, eps=config.dense_eps, workers=-1)
    far = np.hypot(*(where[index] - where[:, None]).transpose(2, 0, 1)) >= config.min_distance
    has = far.any(1)
    nearest = index[np.arange(len(index)), far.argmax(1)]
    targets = np.zeros_like(grid)
    valid = np.zeros(use.shape, bool)
    cells = np.flatnonzero(use.ravel())[has]
    targets.reshape(-1, 2)[cells] = where[nearest[has]]
    valid.ravel()[cells] = True
    agreeing = _rigid_consistency(targets, valid, config.dense_reach, step, config.dense_tolerance)
    consistent = (valid & (agreeing >= config.dense_agree)).astype(np.uint8)
    # small consistent islands are chance agreements
    count, labels, stats, _ = cv2.connectedComponentsWithStats(consistent, connectivity=8)
    big = np.zeros(count, bool)
    big[1:] = stats[1:, cv2.CC_STAT_AREA] >= config.dense_min_points
    keep = big[labels]
    return _one_direction(np.stack([grid[keep], targets[keep]], axis=1).astype(np.float32))


def _one_direction(pairs: np.ndarray) -> np.ndarray:
    """Pairs (a, b) reordered so that b lies right of a (below on ties): a -> b and b -> a are
    the same evidence, and one event should give one cluster, not two inverse ones."""
    pairs = pairs.copy()
    a, b = pairs[:, 0], pairs[:, 1]
    swap = (b[:, 0] < a[:, 0]) | ((b[:, 0] == a[:, 0]) & (b[:, 1] < a[:, 1]))
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs


# --- transforms, masks and filters --------------------------------------------------------------

def _fit_transforms(pairs: np.ndarray, stage: str, config: MatchConfig,
                    rejected: list[tuple[str, str]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Transforms peeled off the pairs by RANSAC: [(2x3 matrix a -> b, inlier pairs)]. The
    keypoint stage fits similarities (its mirrored pairs come with mirrored sources); the
    dense stage fits affine maps (reflections included) and keeps the near-similar ones."""
    found = []
    remaining = pairs
    while len(remaining) >= config.min_inliers and len(found) < config.max_events:
        src, dst = np.ascontiguousarray(remaining[:, 0]), np.ascontiguousarray(remaining[:, 1])
        estimate = cv2.estimateAffine2D if stage == "dense" else cv2.estimateAffinePartial2D
        matrix, inliers = estimate(src, dst, method=cv2.RANSAC, ransacReprojThreshold=config.ransac_threshold,
                                   maxIters=4000, confidence=0.995)
        if matrix is None or inliers is None:
            break
        inliers = inliers.ravel().astype(bool)
        needed = config.dense_min_points if stage == "dense" else config.min_inliers
        if inliers.sum() < needed:
            rejected.append((stage, f"cluster of {int(inliers.sum())} inliers < {needed}"))
            break
        points = remaining[inliers, 0]
        spread = np.linalg.svd(points - points.mean(0), compute_uv=False)[-1] / np.sqrt(len(points))
        singular = np.linalg.svd(matrix[:, :2], compute_uv=False)
        scale = float(np.sqrt(singular[0] * singular[1]))
        shift = float(np.median(np.hypot(*(remaining[inliers, 1] - remaining[inliers, 0]).T)))
        if spread < config.min_spread:
            rejected.append((stage, f"inliers along a line (spread {spread:.1f} px): an edge or a rule"))
        elif not config.scale_range[0] <= scale <= config.scale_range[1]:
            rejected.append((stage, f"transform scale {scale:.2f} outside {config.scale_range}"))
        elif singular[0] > config.max_anisotropy * singular[1]:
            rejected.append((stage, f"transform stretches {singular[0] / singular[1]:.2f}x"))
        elif shift < config.min_shift:
            rejected.append((stage, f"transform moves points {shift:.1f} px < min_shift {config.min_shift}"))
        else:
            found.append((matrix, remaining[inliers]))
        remaining = remaining[~inliers]
    return found


def _correlation(image: np.ndarray, matrix: np.ndarray, window: int, min_std: float) -> np.ndarray:
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


def _detail(gray: np.ndarray) -> np.ndarray:
    """The image minus its blur: sensor noise, grain and fine texture. A copy carries its
    source's detail along; content that is merely alike (neighbouring blot lanes, two similar
    cells, a smooth gradient) does not, though it correlates well at coarser scales."""
    image = gray.astype(np.float32)
    return image - cv2.GaussianBlur(image, (0, 0), 2.0)


def _isotropic(gray: np.ndarray, max_coherence: float) -> np.ndarray:
    """Bool map of pixels whose neighbourhood is not a single straight edge or line (structure
    tensor coherence below `max_coherence`): only there does agreement pin a copy down, since
    an edge agrees with itself shifted along it."""
    image = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    gx, gy = cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1)
    jxx, jxy, jyy = (cv2.GaussianBlur(v, (0, 0), 2.0) for v in (gx * gx, gx * gy, gy * gy))
    coherence = ((jxx - jyy) ** 2 + 4 * jxy ** 2) / ((jxx + jyy) ** 2 + 1e-6)
    return coherence < max_coherence


def _regions(gray: np.ndarray, detail: np.ndarray, isotropic: np.ndarray, matrix: np.ndarray, inliers: np.ndarray,
             config: MatchConfig) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """((copy, source) bool masks, "") : the agreeing components that hold a copy-side inlier,
    and their pre-image; (None, why) when they are smaller than `min_region` or correlate less
    less than `min_detail_ncc` in fine detail (alike content such as two similar cells)."""
    h, w = gray.shape
    ncc = _correlation(gray.astype(np.float32), matrix, config.window, config.min_texture)
    agree = cv2.morphologyEx((ncc >= config.min_ncc).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels = cv2.connectedComponents(agree, connectivity=8)
    copy_points = np.clip(np.round(inliers[:, 1]).astype(int), 0, [w - 1, h - 1])
    hit = np.unique(labels[copy_points[:, 1], copy_points[:, 0]])
    copy = np.isin(labels, hit[hit > 0])
    if copy.sum() < config.min_region:
        return None, "no agreeing region"
    fine = _correlation(detail, matrix, config.window + 2, 0.5)
    informative = copy & isotropic & (fine > -1)
    if informative.sum() < config.min_region:
        return None, "only edges and lines agree"
    similarity = float(np.median(fine[informative]))
    if similarity < config.min_detail_ncc:
        return None, f"fine detail correlates {similarity:.2f} < {config.min_detail_ncc}: alike, not copied"
    # windows that straddle the region's border correlate poorly: grow back half a window
    copy = cv2.dilate(copy.astype(np.uint8), np.ones((config.grow, config.grow), np.uint8)) > 0
    inverse = cv2.invertAffineTransform(matrix)
    source = cv2.warpAffine(copy.astype(np.uint8), inverse, (w, h), flags=cv2.INTER_NEAREST) > 0
    return (copy, source, similarity), ""


def _two_tone_fraction(values: np.ndarray, tolerance: int = 3) -> float:
    """Fraction of `values` (uint8) within +-tolerance of the two commonest gray levels: near 1
    for drawn text, lines and markers (ink on paper, with anti-aliased edges), small for image data."""
    window = 2 * tolerance + 1
    counts = np.convolve(np.bincount(values, minlength=256), np.ones(window), mode="same")
    first = int(counts.argmax())
    total = counts[first]
    counts[max(0, first - 2 * tolerance):first + 2 * tolerance + 1] = 0
    return float(total + counts.max()) / max(len(values), 1)


def _graphic_reason(gray: np.ndarray, region: np.ndarray, config: MatchConfig) -> str | None:
    """Why the content of `region` looks like text or drawn graphics rather than image data:
    two-tone pixels, or thin strokes on a flat ground (paper: the commonest gray level)."""
    values = gray[region]
    two_tone = _two_tone_fraction(values)
    if two_tone >= config.max_two_tone:
        return f"two-tone content ({two_tone:.0%} within two gray levels): text or graphics"
    counts = np.convolve(np.bincount(values, minlength=256), np.ones(17), mode="same")
    paper_level = int(counts.argmax())
    paper = np.abs(gray.astype(np.int16) - paper_level) <= 8
    if float(paper[region].mean()) < 0.5:
        return None
    ink = (region & ~paper).astype(np.uint8)
    if not ink.any():
        return "flat content"
    half = config.max_stroke / 2
    thick = cv2.distanceTransform(ink, cv2.DIST_L2, 3) > half
    side = 2 * int(np.ceil(half)) + 1
    thick = cv2.dilate(thick.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    thin = float((ink.astype(bool) & ~thick).sum()) / float(ink.sum())
    if thin >= 0.8:
        return f"thin strokes on a flat ground ({thin:.0%} of the ink under {config.max_stroke:g} px): text or lines"
    return None


def _self_similarity(detail: np.ndarray, region: np.ndarray) -> tuple[float, tuple[int, int]]:
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
    size = (2 * h, 2 * w)

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


def _reject_reason(gray: np.ndarray, detail: np.ndarray, copy: np.ndarray, source: np.ndarray,
                   config: MatchConfig) -> str | None:
    """Why an agreeing (copy, source) pair is not a forgery, or None."""
    overlap = float((copy & source).sum()) / max(min(int(copy.sum()), int(source.sum())), 1)
    if overlap > config.max_overlap:
        return f"source and copy overlap {overlap:.0%}: repeated texture"
    peak, shift = _self_similarity(detail, copy)
    if peak > config.max_self_similarity:
        return f"the region repeats within itself ({peak:.2f} at shift {shift}): periodic texture"
    return _graphic_reason(gray, copy | source, config)


def _merge(masks: list[np.ndarray], scores: list[float]) -> tuple[list[np.ndarray], list[float]]:
    """Union masks that share pixels (one event copied twice is one instance)."""
    merged: list[tuple[np.ndarray, float]] = []
    for mask, score in zip(masks, scores):
        mask = mask.copy()
        for other in [m for m in merged if (m[0] & mask).any()]:
            mask |= other[0]
            score = max(score, other[1])
            merged = [m for m in merged if m is not other]
        merged.append((mask, score))
    return [m for m, _ in merged], [s for _, s in merged]


def _mirror_sources(pairs: np.ndarray, width: int) -> np.ndarray:
    out = pairs.copy()
    out[:, 0, 0] = width - 1 - out[:, 0, 0]
    return out


def _unmirror(matrix: np.ndarray, width: int) -> np.ndarray:
    """A transform fitted from mirrored sources, as a map of original coordinates:
    copy = M @ flip(source), flip(x, y) = (width - 1 - x, y)."""
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return (np.vstack([matrix, [0, 0, 1]]) @ flip)[:2]


def _candidates(gray: np.ndarray, config: MatchConfig, result: MatchResult):
    """(stage, 2x3 matrix, inlier pairs) of every transform the enabled detectors support."""
    w = gray.shape[1]
    if config.keypoints:
        points, desc = _keypoints(gray, config)
        result.keypoints = points
        for mirrored in ((False, True) if config.mirror else (False,)):
            pairs = _g2nn_pairs(points, desc, mirrored, config)
            result.n_pairs["keypoints" + (" mirrored" if mirrored else "")] = len(pairs)
            fit_pairs = _mirror_sources(pairs, w) if mirrored else pairs
            for matrix, inliers in _fit_transforms(fit_pairs, "keypoints", config, result.rejected):
                if mirrored:
                    matrix, inliers = _unmirror(matrix, w), _mirror_sources(inliers, w)
                yield "keypoints", matrix, inliers
    if config.dense and max(gray.shape) > config.dense_max_side:
        # the nearest-neighbour search grows faster than the pixel count, and a resampled copy
        # no longer matches its source patch for patch: large images rely on the keypoints
        result.rejected.append(("dense", f"skipped: {max(gray.shape)} px > dense_max_side {config.dense_max_side}"))
    elif config.dense:
        pairs = _dense_pairs(gray, config)
        result.n_pairs["dense"] = len(pairs)
        for matrix, inliers in _fit_transforms(pairs, "dense", config, result.rejected):
            yield "dense", matrix, inliers


def match_image(image: np.ndarray, config: MatchConfig = MatchConfig()) -> MatchResult:
    """Find copy-move duplications in an RGB (or gray) uint8 image; masks at the image's size."""
    gray = to_gray(image)
    h, w = gray.shape
    scale = min(1.0, config.max_side / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    result = MatchResult(scale=scale)
    isotropic = _isotropic(gray, config.max_coherence)
    detail = _detail(gray)
    for stage, matrix, inliers in _candidates(gray, config, result):
        regions, why = _regions(gray, detail, isotropic, matrix, inliers, config)
        if regions is None:
            result.rejected.append((stage, f"transform with {len(inliers)} inliers: {why}"))
            continue
        copy, source, similarity = regions
        reason = _reject_reason(gray, detail, copy, source, config)
        if reason:
            result.rejected.append((stage, reason))
            continue
        result.events.append(Event(matrix, stage, inliers, copy | source, similarity))
    if scale < 1.0:
        for event in result.events:
            event.mask = cv2.resize(event.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            event.inliers = event.inliers / scale
            event.matrix = event.matrix.copy()
            event.matrix[:, 2] /= scale
        result.keypoints = result.keypoints / scale
    result.instances, result.scores = _merge([e.mask for e in result.events], [e.score for e in result.events])
    return result


# --- debug drawing ---------------------------------------------------------------------------

def describe_event(event: Event) -> str:
    """'keypoints, score 0.98, 31 inliers, scale 1.00, +30 deg, mirrored' for logs and debug images."""
    linear = event.matrix[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    if event.mirrored:
        linear = linear @ np.diag([-1.0, 1.0])
    angle = float(np.degrees(np.arctan2(linear[1, 0], linear[0, 0])))
    return (f"{event.stage}, score {event.score:.2f}, {len(event.inliers)} inliers, scale {scale:.2f}, {angle:+.0f} deg"
            + (", mirrored" if event.mirrored else ""))


def debug_image(image: np.ndarray, result: MatchResult, max_lines: int = 60) -> np.ndarray:
    """An RGB picture of what the matcher did: left, the keypoints (gray) and each accepted
    event's inlier pairs (source ring -> copy dot, one colour per event); right, the final
    instances; below, the events and the rejected candidates with their reasons."""
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    zoom = 2 if max(rgb.shape[:2]) < 400 else 1
    base = cv2.resize(rgb, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST) if zoom > 1 else rgb.copy()
    left = (base * 0.6 + 100).astype(np.uint8)
    for x, y in result.keypoints * zoom:
        cv2.circle(left, (int(x), int(y)), 1, (90, 90, 90), -1)
    for k, event in enumerate(result.events):
        ink = colour(k)
        pick = np.linspace(0, len(event.inliers) - 1, min(max_lines, len(event.inliers))).astype(int)
        for (ax, ay), (bx, by) in event.inliers[pick] * zoom:
            cv2.line(left, (int(ax), int(ay)), (int(bx), int(by)), ink, 1, cv2.LINE_AA)
            cv2.circle(left, (int(ax), int(ay)), 3, ink, 1)
            cv2.circle(left, (int(bx), int(by)), 2, ink, -1)
    right = outline_instances(base, result.instances)
    lines = [f"{result.n_keypoints} keypoints; pairs " + ", ".join(f"{k} {v}" for k, v in result.n_pairs.items())
             + f"; {len(result.instances)} instance(s)" + (f"; matched at {result.scale:.2f}x" if result.scale < 1 else "")]
    lines += [f"event {k + 1}: {describe_event(e)}" for k, e in enumerate(result.events)]
    reasons: dict[str, int] = {}
    for stage, reason in result.rejected:
        reasons[f"{stage}: {reason}"] = reasons.get(f"{stage}: {reason}", 0) + 1
    lines += [f"rejected {n}x {reason}" if n > 1 else f"rejected {reason}" for reason, n in reasons.items()]
    gap = np.full((base.shape[0], 8, 3), 255, np.uint8)
    top = np.hstack([left, gap, right])
    inks = [colour(i - 1) if 0 < i <= len(result.events) else (0, 0, 0) for i in range(len(lines))]
    return np.vstack([top, text_strip(lines, top.shape[1], inks)])
