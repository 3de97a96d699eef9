"""Authentic images of the two kinds that fool a copy-move matcher most and that figures hold
everywhere: lettering (labels repeated word for word, panel letters, scale bars, axes) and
periodic texture (a tile repeated: meshes, gratings, spot arrays). Every candidate a matcher
finds in them is a false one: they are the verifier's hard negatives (lib.training.verifier)."""
from __future__ import annotations

import cv2
import numpy as np

WORDS = ("Control", "p-AKT", "AKT", "STAT3", "p-STAT3", "GAPDH", "b-actin", "siRNA", "shRNA", "WT", "KO", "DAPI",
         "Merge", "Vehicle", "Treated", "24 h", "48 h", "10 um", "50 um", "kDa", "ns", "*", "**", "A", "B", "C", "D")
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_PLAIN,
         cv2.FONT_HERSHEY_TRIPLEX)


def lettering(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Words (several repeated), letters, a scale bar and axis lines, ink on paper."""
    paper, ink = int(rng.integers(235, 256)), int(rng.integers(0, 90))
    image = np.full((h, w), paper, np.uint8)
    font, scale, thick = FONTS[rng.integers(len(FONTS))], float(rng.uniform(0.45, 1.1)), int(rng.integers(1, 3))
    repeated = rng.choice(WORDS, size=3)
    for _ in range(int(rng.integers(6, 14))):
        word = str(rng.choice(repeated) if rng.random() < 0.6 else rng.choice(WORDS))
        x, y = int(rng.integers(0, max(1, w - 80))), int(rng.integers(20, h))
        cv2.putText(image, word, (x, y), font, scale, ink, thick, cv2.LINE_AA)
    if rng.random() < 0.6:
        y = int(rng.integers(h // 2, h - 5))
        cv2.line(image, (int(rng.integers(0, w // 3)), y), (int(rng.integers(2 * w // 3, w)), y), ink, thick)
    if rng.random() < 0.5:
        x, y, length = int(rng.integers(0, w // 2)), int(rng.integers(10, h - 5)), int(rng.integers(20, 80))
        cv2.rectangle(image, (x, y), (x + length, y + int(rng.integers(2, 7))), ink, -1)
    return image


def periodic(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random tile repeated (or a lattice of identical spots), lightly blurred."""
    period = int(rng.integers(14, 90))
    if rng.random() < 0.5:
        tile = cv2.GaussianBlur(rng.normal(128, 50, (period, period)).astype(np.float32), (0, 0),
                                float(rng.uniform(0.8, 2.5)))
    else:
        tile = np.full((period, period), float(rng.integers(0, 60)), np.float32)
        cv2.circle(tile, (period // 2, period // 2), max(2, period // int(rng.integers(3, 6))),
                   float(rng.integers(150, 256)), -1)
        tile = cv2.GaussianBlur(tile, (0, 0), 1.0)
    image = np.tile(tile, (h // period + 1, w // period + 1))[:h, :w]
    return np.clip(image, 0, 255).astype(np.uint8)


def matcher_negatives(n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` gray images, half lettering and half periodic texture, 160-420 px a side, with
    sensor noise of 0-6 gray levels; image k depends only on (seed, k)."""
    images = []
    for k in range(n):
        rng = np.random.default_rng([seed, 7, k])
        h, w = (int(v) for v in rng.integers(160, 421, 2))
        image = (lettering if k % 2 == 0 else periodic)(rng, h, w).astype(np.float32)
        image += rng.normal(0, float(rng.uniform(0, 6)), image.shape)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images
