"""The matcher's fine stage (lib.matching.fine): small copies (16 and 24 px in a 512 px figure:
moved, mirrored, rotated by 90 degrees, re-saved as JPEG) get a good candidate with the keypoint
stage off, and the 24 px ones are found, source and copy as one instance; so do copies rotated
by 30 degrees (24 and 40 px, plain and mirrored); the dihedral maps' action on Zernike moments
is exact, and the free rotations' nearest to the truth; a figure with no copy gives no
instance."""
import functools

import cv2
import numpy as np
import pytest

from lib.competition.metric import pixel_f1
from lib.matching import MatchConfig, MatchResult, default_verifier, find_candidates, match_image, score_events
from lib.matching.fine import (DIHEDRAL_XY, FREE_CONJUGATE, FREE_FACTORS, FREE_STEP, FREE_XY, _best_transform,
                               fine_clusters, fine_moments)
from tests.test_matching import copy_region, periodic_texture, text_figure, texture

NO_KEYPOINTS = MatchConfig(keypoints=False)


def jpeg(gray: np.ndarray, quality: int = 85) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)


def test_the_moments_of_a_disk_seen_through_each_dihedral_map_are_predicted_exactly():
    image = texture(64, 64, 1)
    p, q = np.array([20, 20]), np.array([44, 44])
    for k, a in enumerate(DIHEDRAL_XY.astype(int)):
        moved = image.copy()
        for oy in range(-8, 9):
            for ox in range(-8, 9):
                tx, ty = q + a @ (ox, oy)
                moved[ty, tx] = image[p[1] + oy, p[0] + ox]
        z = fine_moments(moved)
        which, distance = _best_transform(z[p[1], p[0]][None], z[q[1], q[0]][None], np.abs(z[p[1], p[0]]) + 1)
        assert which[0] == k and distance[0] < 1e-3


def rotated_copy(side: int, angle: float, mirrored: bool, saved: str = "png"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 512 px texture with its square at (100, 100) mirrored (when asked), rotated by `angle`
    degrees (counter-clockwise on screen) and pasted around (380, 340): (image, the event's
    mask, the 2x3 map from source to copy)."""
    gray = texture(512, 512, 3)
    source = np.zeros(gray.shape, np.uint8)
    source[100:100 + side, 100:100 + side] = 1
    centre = 100 + side / 2 - 0.5
    flip = np.array([[-1, 0, 2 * centre], [0, 1, 0], [0, 0, 1]]) if mirrored else np.eye(3)
    matrix = np.vstack([cv2.getRotationMatrix2D((centre, centre), angle, 1.0), [0, 0, 1]]) @ flip
    matrix[:2, 2] += (380 - centre, 340 - centre)
    matrix = matrix[:2]
    warped = cv2.warpAffine(gray, matrix, gray.shape[::-1], flags=cv2.INTER_LINEAR)
    copy = cv2.warpAffine(source, matrix, gray.shape[::-1], flags=cv2.INTER_NEAREST) > 0
    image = gray.copy()
    image[copy] = warped[copy]
    return (image if saved == "png" else jpeg(image)), (source > 0) | copy, matrix


@pytest.mark.parametrize("mirrored", [False, True], ids=["plain", "mirrored"])
def test_the_free_rotation_read_from_the_moments_is_the_nearest_to_the_truth(mirrored):
    image, _, matrix = rotated_copy(40, 30, mirrored)
    z = fine_moments(image)
    p = np.array([120.0, 120.0])
    q = np.rint(matrix[:, :2] @ p + matrix[:, 2]).astype(int)
    which, _ = _best_transform(z[120, 120][None], z[q[1], q[0]][None], np.abs(z).reshape(-1, z.shape[-1]).std(0),
                               FREE_FACTORS, FREE_CONJUGATE)
    found = FREE_XY[which[0]]
    assert (np.linalg.det(found) < 0) == mirrored
    turn = np.arctan2(*(found @ np.linalg.inv(matrix[:, :2]))[::-1, 0])   # the angle of found * truth^-1
    assert abs(np.rad2deg(turn)) <= FREE_STEP / 2 + 1e-6


@pytest.mark.parametrize("saved", ["png", "jpeg 85"])
@pytest.mark.parametrize("mirrored", [False, True], ids=["plain", "mirrored"])
@pytest.mark.parametrize("side", [24, 40])
def test_a_copy_rotated_by_30_degrees_gets_a_good_candidate_without_keypoints(side, mirrored, saved):
    event, result = _rotated_candidates(side, mirrored, saved)
    assert max(pixel_f1(e.mask, event) for e in result.events) >= 0.5


@pytest.mark.parametrize("mirrored", [False, True], ids=["plain", "mirrored"])
def test_a_40_px_copy_rotated_by_30_degrees_is_found_without_keypoints(mirrored):
    event, result = _rotated_candidates(40, mirrored, "jpeg 85")
    score_events(result, default_verifier())                # match_image: the candidates, then the verifier
    instances = result.instances
    assert len(instances) == 1 and pixel_f1(instances[0], event) >= 0.5


@functools.cache
def _rotated_candidates(side: int, mirrored: bool, saved: str) -> tuple[np.ndarray, MatchResult]:
    """(the true event, find_candidates' result) of rotated_copy(side, 30, ...): computed once for
    the tests of its candidates and of what the verifier keeps."""
    image, event, _ = rotated_copy(side, 30, mirrored, saved)
    return event, find_candidates(image, NO_KEYPOINTS)


@pytest.mark.parametrize("kind", ["translate", "flip", "rotate90"])
def test_the_fine_stage_finds_the_exact_map_of_a_16_px_copy(kind):
    image, event = copy_region(texture(512, 512, 3), (100, 100), 16, (400, 350), kind)
    clusters = fine_clusters(image, NO_KEYPOINTS, [])
    cx = 100 + 8
    expected = {"translate": [[1, 0, 292 - cx], [0, 1, 242 - cx]],
                "flip": [[-1, 0, 292 + cx], [0, 1, 242 - cx]],
                "rotate90": [[0, 1, 292 - cx], [-1, 0, 242 + cx]]}[kind]
    expected = np.array(expected, float) + [[0, 0, 400 - 292], [0, 0, 350 - 242]]
    inverse = cv2.invertAffineTransform(expected)
    assert any(np.abs(c.matrix - m).max() <= 1.5 for c in clusters for m in (expected, inverse))


def small_copy(side: int, kind: str, saved: str) -> tuple[np.ndarray, np.ndarray]:
    image, event = copy_region(texture(512, 512, 3), (100, 100), side, (400, 350), kind)
    return (image if saved == "png" else jpeg(image)), event


@pytest.mark.parametrize("saved", ["png", "jpeg 85"])
@pytest.mark.parametrize("kind", ["translate", "flip", "rotate90"])
@pytest.mark.parametrize("side", [16, 24])
def test_a_small_copy_gets_a_good_candidate_without_keypoints(side, kind, saved, request):
    if (side, kind, saved) == (16, "flip", "jpeg 85"):   # a known miss, kept visible: it fails when it passes
        request.applymarker(pytest.mark.xfail(strict=True, reason="a 16 px mirrored copy after JPEG 85 gets too "
                                              "few fine matches here: 11 of the 12 small copies get a candidate"))
    event, result = _small_candidates(side, kind, saved)
    assert max(pixel_f1(e.mask, event) for e in result.events) >= 0.5


@functools.cache
def _small_candidates(side: int, kind: str, saved: str) -> tuple[np.ndarray, MatchResult]:
    """(the true event, find_candidates' result) of small_copy(side, kind, saved), computed once."""
    image, event = small_copy(side, kind, saved)
    return event, find_candidates(image, NO_KEYPOINTS)


@pytest.mark.parametrize("saved", ["png", "jpeg 85"])
@pytest.mark.parametrize("kind", ["translate", "flip", "rotate90"])
def test_a_24_px_copy_is_found_without_keypoints(kind, saved, request):
    # 16 px copies (0.1 % of the figure) get their candidate too, but the committed verifier keeps
    # only some of them: the benchmark's training figures hold few real copies that small
    if (kind, saved) == ("rotate90", "jpeg 85"):          # a known miss, kept visible: it fails when it passes
        request.applymarker(pytest.mark.xfail(strict=True, reason="its good candidate scores just under the "
                                              "committed verifier's threshold (0.70): 5 of the 6 are kept"))
    event, result = _small_candidates(24, kind, saved)
    score_events(result, default_verifier())                # match_image: the candidates, then the verifier
    instances = result.instances
    assert len(instances) == 1 and pixel_f1(instances[0], event) >= 0.5


@pytest.mark.parametrize("image", [np.full((512, 512), 200, np.uint8), periodic_texture(40, 5), text_figure(),
                                   texture(512, 512, 9)], ids=["blank", "periodic", "text", "untouched texture"])
def test_no_copy_means_no_instance(image):
    assert match_image(image).instances == []
