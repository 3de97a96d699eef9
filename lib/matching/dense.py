"""Dense stage: every patch of a grid described by rotation- and flip-invariant Zernike-moment
magnitudes, matched to its nearest neighbour elsewhere in the image, kept where the
neighbours' matches lie as far apart as the neighbours do (a moved, rotated or mirrored copy
preserves distances, chance matches scatter): the dense-field method of Cozzolino, Poggi &
Verdoliva, "Efficient dense-field copy-move forgery detection" (IEEE TIFS 2015), with a
rigidity check in place of their linear fit. Finds small copies where SIFT finds few points.

Two searches: `patchmatch` (v2: the paper's PatchMatch field over every patch that is not
blank, flat and weakly textured ones included, on a grid whose step grows with the image)
and `kdtree` (v1: exact neighbours among textured patches, images up to 768 px)."""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil, factorial

import cv2
import numpy as np
from scipy.spatial import cKDTree

from .config import MatchConfig
from .patchmatch import patchmatch
from .transforms import one_direction


def zernike_orders(max_order: int = 4) -> list[tuple[int, int]]:
    """(n, m) of zernike_kernels' kernels, in their order: n <= max_order, m >= 0, n - m even."""
    return [(n, m) for n in range(max_order + 1) for m in range(n % 2, n + 1, 2)]


def zernike_kernels(radius: int, max_order: int = 4, supersample: int = 1) -> list[np.ndarray]:
    """Complex Zernike kernels V*_nm on a disk of `radius` pixels, for the (n, m) of
    zernike_orders. |image * V*_nm| is invariant to rotations and mirroring of the patch.
    With `supersample` s > 1, each pixel's weight is the kernel's mean over an s x s grid inside
    the pixel rather than its value at the centre: sampled at centres, the rim of the disk is a
    staircase with the square grid's symmetry, which the m = 4 moments see (under a rotation by
    30 degrees, |Z_44| of an 11 px disk moved by 0.6 of its spread across a texture, 0.13 with
    s = 8). Both keep the kernels' exact symmetry under right-angle rotations and flips."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    y = (y[..., None, None] + offsets[:, None]) / (radius + 0.5)
    x = (x[..., None, None] + offsets[None, :]) / (radius + 0.5)
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    disk = rho <= 1.0
    area = disk.mean((-2, -1)).sum()
    kernels = []
    for n, m in zernike_orders(max_order):
        radial = sum((-1) ** k * factorial(n - k)
                     / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
                     * rho ** (n - 2 * k) for k in range((n - m) // 2 + 1))
        kernels.append((radial * np.exp(-1j * m * theta) * disk).mean((-2, -1)) * (n + 1) / np.pi / area)
    return kernels


def zernike_features(gray: np.ndarray, radius: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
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


def local_std(gray: np.ndarray, side: int) -> np.ndarray:
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


def _grid(shape: tuple[int, int], config: MatchConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(ys, xs) pixel coordinates of the grid cells, and the grid step."""
    r, (h, w) = config.dense_radius, shape
    step = max(config.dense_stride, ceil(max(h, w) / config.dense_max_grid))
    ys, xs = np.mgrid[r:h - r:step, r:w - r:step]
    return ys, xs, step


def _reduced_features(gray: np.ndarray, ys: np.ndarray, xs: np.ndarray, config: MatchConfig) -> np.ndarray:
    """Standardised Zernike features of the cells, projected on their leading principal
    components (a k-d tree and PatchMatch's distances are fast in few dimensions)."""
    feats = zernike_features(gray, config.dense_radius, ys, xs)
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    basis = np.linalg.svd(feats[::max(1, len(feats) // 4000)], full_matrices=False)[2][:config.dense_dims]
    return np.ascontiguousarray(feats @ basis.T, dtype=np.float32)


@dataclass
class DenseField:
    """The nearest-neighbour field on the grid of a (working-size) gray image: each cell's pixel
    position, its match, whether it has one, the feature distance to it (squared; +inf without a
    match) and the share of its neighbours whose matches agree rigidly (_rigid_consistency)."""

    grid: np.ndarray          # (gh, gw, 2) float32 (x, y) pixel of each cell
    targets: np.ndarray       # (gh, gw, 2) float32 (x, y) pixel of each cell's match
    valid: np.ndarray         # (gh, gw) bool
    distance: np.ndarray      # (gh, gw) float32
    agreeing: np.ndarray      # (gh, gw) float32 in [0, 1]
    step: int
    shape: tuple[int, int]    # (h, w) of the image the grid lies on


def dense_field(gray: np.ndarray, config: MatchConfig) -> DenseField | None:
    """The dense stage's nearest-neighbour field and its rigid agreement; None when the image is
    too small for the grid or has too few patches that are not blank."""
    r = config.dense_radius
    h, w = gray.shape
    if min(h, w) <= 2 * r:             # no patch fits (a 1 px or 8 px image): no grid at all
        return None
    ys, xs, step = _grid(gray.shape, config)
    if min(h, w) < 2 * r + 4 * step * config.dense_reach:
        return None
    min_std = config.dense_min_std if config.dense_method == "patchmatch" else config.min_texture
    use = local_std(gray, 2 * r + 1)[ys, xs] >= min_std
    if use.sum() < config.dense_min_points * 2:
        return None
    feats = _reduced_features(gray, ys[use], xs[use], config)
    grid = np.stack([xs, ys], -1).astype(np.float32)
    targets = np.zeros_like(grid)
    valid = np.zeros(use.shape, bool)
    distance = np.full(use.shape, np.inf, np.float32)
    if config.dense_method == "patchmatch":
        field = np.zeros(use.shape + (feats.shape[1],), np.float32)
        field[use] = feats
        cells, distance = patchmatch(field, use, config.min_distance / step, config.dense_iterations)
        valid = use & np.isfinite(distance)
        targets = grid[cells[..., 0], cells[..., 1]]
    else:
        where = grid[use]
        k = min(config.dense_knn + 1, len(feats))
        found, index = cKDTree(feats).query(feats, k=k, eps=config.dense_eps, workers=-1)
        far = np.hypot(*(where[index] - where[:, None]).transpose(2, 0, 1)) >= config.min_distance
        has = far.any(1)
        first = far.argmax(1)
        nearest = index[np.arange(len(index)), first]
        cells = np.flatnonzero(use.ravel())[has]
        targets.reshape(-1, 2)[cells] = where[nearest[has]]
        valid.ravel()[cells] = True
        distance.ravel()[cells] = found[np.arange(len(index)), first][has] ** 2
    agreeing = _rigid_consistency(targets, valid, config.dense_reach, step, config.dense_tolerance)
    return DenseField(grid, targets, valid, distance, agreeing, step, (h, w))


def rigid_pairs(field: DenseField | None, config: MatchConfig) -> np.ndarray:
    """(n, 2, 2) pairs (a, b) of grid points whose match is locally rigid, in regions of at least
    config.dense_min_points cells (small consistent islands are chance agreements)."""
    if field is None:
        return np.zeros((0, 2, 2), np.float32)
    consistent = (field.valid & (field.agreeing >= config.dense_agree)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(consistent, connectivity=8)
    big = np.zeros(count, bool)
    big[1:] = stats[1:, cv2.CC_STAT_AREA] >= config.dense_min_points
    keep = big[labels]
    return one_direction(np.stack([field.grid[keep], field.targets[keep]], axis=1).astype(np.float32))


def dense_pairs(gray: np.ndarray, config: MatchConfig) -> np.ndarray:
    """(n, 2, 2) pairs (a, b) of grid points whose nearest-neighbour field is locally rigid."""
    return rigid_pairs(dense_field(gray, config), config)


FIELD_MAPS = ("similarity", "agreement")   # field_maps' channels
FIELD_MAP_SIDE = 256                       # their longer side (at most): what the networks need


def field_maps(field: DenseField | None, side: int = FIELD_MAP_SIDE) -> np.ndarray:
    """What the dense field says of each pixel, as uint8 (2, mh, mw) maps of the image the field
    lies on, shrunk so that the longer side is at most `side`: how well the pixel's patch matches
    its best match elsewhere (exp(-distance / the image's median distance): 1 for an exact
    duplicate, about 0.37 for a typical patch, 0 without a match) and the share of its neighbours
    whose matches agree rigidly (a copied region: near 1; chance matches: near 0). Sampled from
    the grid bilinearly; an empty (0, 0, 0) array without a field."""
    if field is None:
        return np.zeros((0, 0, 0), np.uint8)
    h, w = field.shape
    scale = min(1.0, side / max(h, w))
    mh, mw = max(1, round(h * scale)), max(1, round(w * scale))
    finite = field.valid & np.isfinite(field.distance)
    typical = float(np.median(field.distance[finite])) if finite.any() else 1.0
    similarity = np.where(finite, np.exp(-field.distance / max(typical, 1e-6)), 0.0)
    agreement = np.where(field.valid, field.agreeing, 0.0)
    # map pixel (u, v) -> image pixel -> grid cell (fractional)
    x0, y0 = field.grid[0, 0]
    cx = (((np.arange(mw) + 0.5) * w / mw - 0.5) - x0) / field.step
    cy = (((np.arange(mh) + 0.5) * h / mh - 0.5) - y0) / field.step
    map_x = np.broadcast_to(cx[None, :], (mh, mw)).astype(np.float32)
    map_y = np.broadcast_to(cy[:, None], (mh, mw)).astype(np.float32)
    maps = [cv2.remap(m.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0) for m in (similarity, agreement)]
    return np.stack([np.clip(np.rint(m * 255), 0, 255).astype(np.uint8) for m in maps])
