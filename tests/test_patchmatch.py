"""PatchMatch nearest-neighbour field: a copied block (translated, rotated 90 degrees, mirrored)
maps back onto its source; the field never matches a cell within min_distance of itself, never
matches an invalid cell, is reproducible for a seed, and refuses malformed features."""
import cv2
import numpy as np
import pytest

from lib.matching.patchmatch import patchmatch

SIZE, SIDE, SOURCE, COPY = 128, 40, (10, 12), (72, 70)   # grid, block side, block corners (y, x)
RINGS = 4                  # ring radii 0..3
MARGIN = 2 + RINGS - 1     # blur radius + largest ring: features here see only the block


def ring_features(image):
    """Per-pixel means over rings of radius 0..3 of the blurred image: invariant to 90-degree
    rotations and mirrors on the grid (blur and rings are symmetric), so a transformed copy
    gets exactly its source's features."""
    blurred = cv2.GaussianBlur(image, (5, 5), 1.0)
    dy, dx = np.mgrid[-RINGS:RINGS + 1, -RINGS:RINGS + 1]
    radius = np.rint(np.hypot(dy, dx))
    rings = [(radius == r).astype(np.float32) for r in range(RINGS)]
    return np.dstack([cv2.filter2D(blurred, -1, ring / ring.sum()) for ring in rings])


def forged(kind, seed=0):
    """Noise image with the SOURCE block pasted at COPY, transformed by `kind`; returns the
    features and, for the copy's interior cells, their coordinates and their true sources."""
    image = np.random.default_rng(seed).normal(0, 1, (SIZE, SIZE)).astype(np.float32)
    block = image[SOURCE[0]:SOURCE[0] + SIDE, SOURCE[1]:SOURCE[1] + SIDE]
    i, j = np.mgrid[MARGIN:SIDE - MARGIN, MARGIN:SIDE - MARGIN]   # copy cell (i, j) within the block
    pasted, (si, sj) = {"translate": (block, (i, j)),
                        "rotate": (np.rot90(block), (j, SIDE - 1 - i)),   # rot90(B)[i, j] = B[j, n-1-i]
                        "flip": (np.fliplr(block), (i, SIDE - 1 - j))}[kind]
    image[COPY[0]:COPY[0] + SIDE, COPY[1]:COPY[1] + SIDE] = pasted
    cells = np.stack([COPY[0] + i, COPY[1] + j], -1).reshape(-1, 2)
    sources = np.stack([SOURCE[0] + si, SOURCE[1] + sj], -1).reshape(-1, 2)
    return ring_features(image), cells, sources


@pytest.mark.parametrize("kind", ["translate", "rotate", "flip"])
def test_copied_block_maps_onto_its_source(kind):
    features, cells, sources = forged(kind)
    targets, distance = patchmatch(features, np.ones((SIZE, SIZE), bool), min_distance=8, iterations=4)
    found = targets[cells[:, 0], cells[:, 1]]
    hit = np.abs(found - sources).max(1) <= 1
    assert hit.mean() >= 0.9, f"{kind}: {hit.mean():.1%} of the copy's cells map to their source"
    assert np.isfinite(distance).all()


def test_min_distance_and_invalid_cells_are_respected():
    features = np.random.default_rng(3).normal(size=(60, 70, 5)).astype(np.float32)
    features[:, 30:40] = features[:, 20:30]         # a tempting copy 10 cells away, inside min_distance 12
    valid = np.random.default_rng(4).random((60, 70)) > 0.2
    valid[:5] = False
    targets, distance = patchmatch(features, valid, min_distance=12, iterations=3, seed=1)
    yy, xx = np.indices(valid.shape)
    assert np.isinf(distance[~valid]).all()
    assert (targets[~valid] == np.stack([yy, xx], -1)[~valid]).all()        # no match: points at itself
    matched = np.isfinite(distance)
    assert matched[valid].mean() > 0.99
    ty, tx = targets[..., 0][matched], targets[..., 1][matched]
    assert valid[ty, tx].all()                                              # never an invalid target
    assert (np.hypot(ty - yy[matched], tx - xx[matched]) >= 12).all()       # never too near
    diff = features[ty, tx] - features[matched]
    np.testing.assert_allclose(distance[matched], (diff ** 2).sum(1), rtol=1e-5)   # distance is the true one


def test_no_cell_far_enough_gives_no_match():
    targets, distance = patchmatch(np.zeros((4, 4, 2), np.float32), np.ones((4, 4), bool), min_distance=10)
    assert np.isinf(distance).all()
    assert (targets == np.stack(np.indices((4, 4)), -1)).all()


@pytest.mark.parametrize("shape", [(6, 6), (1, 20), (3, 9)])
def test_grids_smaller_than_the_jump_steps(shape):
    features = np.random.default_rng(6).normal(size=shape + (3,)).astype(np.float32)
    targets, distance = patchmatch(features, np.ones(shape, bool), min_distance=0)
    yy, xx = np.indices(shape)
    assert np.isfinite(distance).all()
    assert ((targets[..., 0] != yy) | (targets[..., 1] != xx)).all()      # min_distance 0: never itself


def test_same_seed_same_field():
    features = np.random.default_rng(5).normal(size=(40, 50, 6)).astype(np.float32)
    valid = np.ones((40, 50), bool)
    first = patchmatch(features, valid, 5, seed=7)
    again = patchmatch(features, valid, 5, seed=7)
    other = patchmatch(features, valid, 5, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].dtype == np.int32 and first[0].shape == (40, 50, 2)
    assert first[1].dtype == np.float32 and first[1].shape == (40, 50)
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("shape", [(40, 50), (40, 51, 6), (40, 50, 0), (2, 40, 50, 6)])
def test_malformed_features_raise(shape):
    with pytest.raises(ValueError, match=r"features of shape \(gh, gw, F\)"):
        patchmatch(np.zeros(shape, np.float32), np.ones((40, 50), bool), 5)
