"""Pictures for people: instance masks drawn over an image, and tiles laid out in a captioned grid
(the matcher's debug images, the augmenters' and the specialist's sample sheets)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60))


def colour(k: int) -> tuple[int, int, int]:
    """The k-th drawing colour (RGB), cycling."""
    return COLOURS[k % len(COLOURS)]


def outline_instances(image: np.ndarray, instances: Sequence[np.ndarray] | np.ndarray,
                      fill: float = 0.45) -> np.ndarray:
    """A copy of the RGB `image` with each (H', W') instance mask tinted and outlined in its own
    colour; masks of another size are resized (nearest) to the image."""
    out = (cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image).copy()
    for k, mask in enumerate(instances):
        rgb = np.array(colour(k), np.float32)
        big = cv2.resize(np.asarray(mask, np.uint8), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
        on = big > 0
        out[on] = ((1 - fill) * out[on] + fill * rgb).astype(np.uint8)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in rgb), 1)
    return out


def outline(image: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int], fill: float = 0.3,
            thickness: int = 2) -> np.ndarray:
    """A copy of the RGB `image` with one (H, W) mask tinted with `rgb` and outlined in it."""
    out = (cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image).copy()
    on = np.asarray(mask, bool)
    out[on] = ((1 - fill) * out[on] + fill * np.array(rgb, np.float32)).astype(np.uint8)
    contours, _ = cv2.findContours(on.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in rgb), thickness)
    return out


def text_strip(lines: Sequence[str], width: int, colours: Sequence[tuple[int, int, int]] | None = None
               ) -> np.ndarray:
    """A white RGB strip `width` wide with one line of text per entry of `lines`."""
    strip = np.full((18 * len(lines) + 8, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        ink = colours[i] if colours else (0, 0, 0)
        cv2.putText(strip, line, (6, 18 * i + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, ink, 1, cv2.LINE_AA)
    return strip


def grid(tiles: Sequence[np.ndarray], captions: Sequence[str] | None = None, columns: int = 4,
         tile: int = 256) -> np.ndarray:
    """RGB tiles scaled to fit `tile` x `tile` (aspect kept, white margin), `columns` to a row,
    each with its caption below."""
    if not len(tiles):
        raise ValueError("grid needs at least one tile")
    cells = []
    for i, image in enumerate(tiles):
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        scale = tile / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
        cell = np.full((tile + 24, tile + 8, 3), 255, np.uint8)
        cell[4:4 + small.shape[0], 4:4 + small.shape[1]] = small
        if captions:
            cv2.putText(cell, captions[i][:40], (4, tile + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
        cells.append(cell)
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
    rows = [np.hstack(cells[i:i + columns]) for i in range(0, len(cells), columns)]
    return np.vstack(rows)
