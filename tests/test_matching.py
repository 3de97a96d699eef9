"""The keypoint copy-move matcher: translated, rotated, scaled and flipped copies are found,
source and copy as one instance scoring above 0.8; two duplications give two instances;
blank and untouched textured images give none."""
import cv2
import numpy as np
import pytest

from lib.matching import match_image
from lib.metric import score_instances


def texture(h, w, seed):
    """A micrograph-like gray texture: smoothed noise with blobs, and sensor noise."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.normal(128, 60, (h, w)).astype(np.float32), (0, 0), 2.0)
    for _ in range(60):
        cv2.circle(image, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(3, 12)),
                   float(rng.integers(0, 255)), -1)
    image = cv2.GaussianBlur(image, (0, 0), 1.0) + rng.normal(0, 3, (h, w))   # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8)


def copy_region(gray, top_left, side, target_center, kind):
    """Paste the square at `top_left` transformed by `kind` around `target_center`; returns the
    forged image and the event's mask (source | copy)."""
    h, w = gray.shape
    source = np.zeros((h, w), np.uint8)
    source[top_left[1]:top_left[1] + side, top_left[0]:top_left[0] + side] = 1
    cx, cy = top_left[0] + side / 2, top_left[1] + side / 2
    move = np.array([[1, 0, target_center[0] - cx], [0, 1, target_center[1] - cy], [0, 0, 1]])
    local = {"translate": np.eye(3),
             "rotate": np.vstack([cv2.getRotationMatrix2D((cx, cy), 30, 1.0), [0, 0, 1]]),
             "scale": np.vstack([cv2.getRotationMatrix2D((cx, cy), 0, 1.3), [0, 0, 1]]),
             "flip": np.array([[-1, 0, 2 * cx], [0, 1, 0], [0, 0, 1]])}[kind]
    matrix = (move @ local)[:2].astype(np.float32)
    warped = cv2.warpAffine(gray, matrix, (w, h), flags=cv2.INTER_LINEAR)
    copy = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_NEAREST) > 0
    out = gray.copy()
    out[copy] = warped[copy]
    return out, (source > 0) | copy


@pytest.mark.parametrize("kind", ["translate", "rotate", "scale", "flip"])
def test_a_transformed_copy_is_found_as_one_instance(kind):
    image, event = copy_region(texture(256, 320, 0), (30, 30), 64, (200, 170), kind)
    result = match_image(np.dstack([image] * 3))
    assert len(result.instances) == 1
    assert score_instances(result.instances, [event]) > 0.8


def test_two_duplications_give_two_instances():
    image, first = copy_region(texture(300, 400, 1), (20, 20), 56, (320, 60), "translate")
    image, second = copy_region(image, (40, 200), 64, (300, 220), "rotate")
    result = match_image(image)
    assert len(result.instances) == 2
    assert score_instances(result.instances, [first, second]) > 0.8


@pytest.mark.parametrize("image", [np.full((200, 260, 3), 200, np.uint8), np.dstack([texture(256, 320, 5)] * 3)],
                         ids=["blank", "untouched texture"])
def test_no_duplication_means_authentic(image):
    assert match_image(image).instances == []
