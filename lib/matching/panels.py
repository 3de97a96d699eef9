"""Panels and text of a compound figure, without a learned model.

`split_panels` cuts a figure into its panels along gutters (recursive XY-cut, the 6th-place Kaggle
team's approach); `panel_labels` turns the boxes into a label map, to tell whether a candidate copy
lies within one panel or spans two; `text_mask` marks text, panel letters, scale bars and thin
drawn strokes on a flat ground, whose repeats are authentic and fool a copy-move matcher."""
from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]   # (y0, x0, y1, x1), y1 and x1 exclusive


# ----------------------------------------------------------------------------- panels

class _LineStats:
    """Mean and standard deviation of the grey levels along any row or column segment in O(1),
    from integral images. The image is first smoothed along the line direction only: that
    averages JPEG and added noise down, while a gutter (flat along its whole length) stays flat
    and content keeps its slower variations (illumination, texture)."""

    def __init__(self, gray: np.ndarray, smooth: int) -> None:
        # uint8 throughout (rounding adds a std of 0.3 at most): 10 times faster than float
        self.along_rows, self.along_cols = cv2.blur(gray, (smooth, 1)), cv2.blur(gray, (1, smooth))
        self._rows, self._cols = (cv2.integral2(a, sdepth=cv2.CV_32S, sqdepth=cv2.CV_64F)
                                  for a in (self.along_rows, self.along_cols))

    def lines(self, y0: int, x0: int, y1: int, x1: int, rows: bool) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of each row (`rows`) or column of the rectangle [y0, y1) x [x0, x1)."""
        if rows:
            s, q = (a[y0:y1 + 1, [x0, x1]] for a in self._rows)
        else:
            s, q = (a[[y0, y1], x0:x1 + 1].T for a in self._cols)
        n = (x1 - x0) if rows else (y1 - y0)
        total = np.diff(s[:, 1] - s[:, 0]) / n
        square = np.diff(q[:, 1] - q[:, 0]) / n
        return total, np.sqrt(np.maximum(square - total * total, 0))


def _grey(gray: np.ndarray) -> np.ndarray:
    """`gray` as a C-contiguous array, once checked to be a non-empty 2-D uint8 image."""
    if not (isinstance(gray, np.ndarray) and gray.ndim == 2 and gray.dtype == np.uint8 and gray.size):
        raise ValueError(f"expected a non-empty 2-D uint8 grey image, got {getattr(gray, 'dtype', type(gray))} "
                         f"{getattr(gray, 'shape', '')}")
    return np.ascontiguousarray(gray)


def _runs(flags: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True in `flags` at least `min_len` long."""
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_len]


def split_panels(gray: np.ndarray, min_side: int = 32, min_gap: int = 1, tol: float = 3.0,
                 noise_factor: float = 2.5, max_noise: float = 2.0, level_tol: float = 10.0,
                 min_edge: float = 0.5, exact: float = 3.0, smooth: int = 3) -> list[Box]:
    """Split a compound figure (uint8 grey, H x W) into its panels along its gutters.

    Recursive XY-cut. A gutter is a run of at least `min_gap` rows (or columns) across the
    current rectangle (1 px: gutters of 1-3 px are common, and the tests below keep a panel's
    own flat lines out) that are
    - uniform: a grey-level std along the line (smoothed along it over `smooth` px) under `tol`
      + `noise_factor` x the figure's noise floor (the std of its flattest line, up to
      `max_noise`: a figure with no line that flat has no gutter);
    - at the figure's ground level (within `level_tol`): white, black or a coloured ground
      turned grey. The ground is the level of the margin (all four image borders uniform at
      one level), else the median level of the lines uniform across the whole figure (the
      white ones only, if any: paper first);
    - and either white (the ground and the run within `exact` of each other, at 250 or over),
      or bordered by a panel edge on at least one side: within 3 px of the run, a line with at
      least `min_edge` of its pixels away from the run's level by over `level_tol` + 2 `tol`.
      Rows of spots, cells or blot bands on a flat grey ground, or of a dark micrograph, have
      no such edge.
    A rectangle is trimmed of its uniform border, then cut at all its row gutters (else at all
    its column gutters) and each piece is cut again; a cut leaving no piece `min_side` long is
    not made (a regular pattern). The boxes come in the reading order of the cuts: a grid row
    by row, left to right; a column of panels beside a tall one, down that column. Pieces under
    `min_side` px a side are dropped: text lines between panels (headers) usually are; a larger
    text block becomes a box of its own, and so does a blot strip cut off by a white gap right
    across its panel (white content cannot be told from a white gutter).

    Returns boxes (y0, x0, y1, x1), y1 and x1 exclusive; one box covering the content when the
    figure has no gutter; [] when it is uniform all over."""
    gray = _grey(gray)
    stats = _LineStats(gray, smooth)
    h, w = gray.shape
    row_mean, row_std = stats.lines(0, 0, h, w, rows=True)
    col_mean, col_std = stats.lines(0, 0, h, w, rows=False)
    tol += noise_factor * min(float(min(row_std.min(), col_std.min())), max_noise)
    # a margin: all four image borders uniform at one level
    sides = np.array([(m[i], s[i]) for m, s in ((row_mean, row_std), (col_mean, col_std)) for i in (0, -1)])
    margin = bool((sides[:, 1] <= tol).all() and np.ptp(sides[:, 0]) <= level_tol)
    flat = np.concatenate([row_mean[row_std <= tol], col_mean[col_std <= tol]])
    if not margin and (flat >= 250).any():
        flat = flat[flat >= 250]           # without a margin, a white gutter (paper) comes first
    ground = float(np.median(sides[:, 0] if margin else flat)) if len(flat) else None
    # a white gutter needs no edge beside it: a chart or a blot's label column has white
    # margins, and only white content looks like it
    white = ground is not None and ground >= 250
    boxes: list[Box] = []

    def edge(image: np.ndarray, level: float) -> float:
        """Largest fraction, over the lines of `image`, of pixels stepping away from `level`."""
        return float((np.abs(image - level) > level_tol + 2 * tol).mean(axis=1).max()) if image.size else 0.0

    def gaps(y0: int, x0: int, y1: int, x1: int, rows: bool) -> list[tuple[int, int]]:
        """The gutters across the rectangle among its rows (or columns): [start, stop) in it."""
        mean, std = stats.lines(y0, x0, y1, x1, rows)
        found = []
        for a, b in _runs((std <= tol) & (np.abs(mean - ground) <= level_tol), min_gap):
            level = float(mean[a:b].mean())
            sides = [stats.along_rows[y0 + i:y0 + j, x0:x1] if rows else stats.along_cols[y0:y1, x0 + i:x0 + j].T
                     for i, j in ((max(a - 3, 0), a), (b, b + 3))]     # the 3 lines either side
            if (white and abs(level - ground) <= exact) or max(edge(side, level) for side in sides) >= min_edge:
                found.append((a, b))
        return found

    def cut(y0: int, x0: int, y1: int, x1: int) -> None:
        content = stats.lines(y0, x0, y1, x1, rows=True)[1] > tol
        if not content.any():
            return
        y0, y1 = y0 + int(np.argmax(content)), y1 - int(np.argmax(content[::-1]))
        content = stats.lines(y0, x0, y1, x1, rows=False)[1] > tol
        x0, x1 = x0 + int(np.argmax(content)), x1 - int(np.argmax(content[::-1]))
        if y1 - y0 < min_side or x1 - x0 < min_side:
            return                                             # too small to hold a panel
        for rows in (True, False):
            found = gaps(y0, x0, y1, x1, rows) if ground is not None else []
            edges = [0] + [e for gap in found for e in gap] + [(y1 - y0) if rows else (x1 - x0)]
            pieces = list(zip(edges[::2], edges[1::2]))
            # pieces all too small to be panels: a regular pattern (spots, blot bands) on a flat ground
            if found and max(b - a for a, b in pieces) >= min_side:
                for a, b in pieces:
                    cut(y0 + a, x0, y0 + b, x1) if rows else cut(y0, x0 + a, y1, x0 + b)
                return
        boxes.append((y0, x0, y1, x1))

    cut(0, 0, h, w)
    return boxes


def panel_labels(shape: tuple[int, ...], boxes: list[Box]) -> np.ndarray:
    """int32 label map of `shape`[:2]: 0 outside any panel, k inside the k-th box (1-based)."""
    labels = np.zeros(shape[:2], np.int32)
    for k, (y0, x0, y1, x1) in enumerate(boxes, 1):
        labels[y0:y1, x0:x1] = k
    return labels


# ----------------------------------------------------------------------------- text

def _mode(counts: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most common level of each histogram (..., 32 bins) of counts and sums of the grey levels:
    the bin that, with its two neighbours (a level may straddle a bin edge), holds the most
    pixels; returns (the mean level of those pixels, the share of all pixels they are)."""
    pad = ((0, 0), (0, 0), (1, 1))
    counts3, sums3 = (np.pad(a, pad)[..., :-2] + a + np.pad(a, pad)[..., 2:] for a in (counts, sums))
    mode = counts3.argmax(-1)[..., None]
    top = np.take_along_axis(counts3, mode, -1)[..., 0]
    return np.take_along_axis(sums3, mode, -1)[..., 0] / np.maximum(top, 1), top / np.maximum(counts.sum(-1), 1)


def _paper(gray: np.ndarray, tile: int, min_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the local paper level and whether there is paper there at all.

    The paper level is the most common grey level (see _mode) of the pixel's `tile` px tile when
    it holds at least `min_share` of the tile, else of the 3 x 3 tiles around; no level that
    common: no paper (texture). A tile's own level first, as a letter sits in a panel's corner,
    next to another panel of another level. Every other pixel of every other line is enough
    for the histograms, 4 times faster."""
    h, w = gray.shape
    ny, nx = -(-h // tile), -(-w // tile)
    sample = gray[::2, ::2]
    tiles = (np.arange(0, h, 2) // tile)[:, None] * nx + (np.arange(0, w, 2) // tile)[None, :]
    index = (tiles * 32 + (sample >> 3)).ravel()
    counts, sums = (np.bincount(index, weights, minlength=ny * nx * 32).astype(np.float32).reshape(ny, nx, 32)
                    for weights in (None, sample.ravel().astype(np.float32)))
    level, share = _mode(counts, sums)
    pooled = (cv2.blur(a, (3, 3), borderType=cv2.BORDER_REPLICATE).reshape(ny, nx, 32) for a in (counts, sums))
    around, around_share = _mode(*pooled)
    own = share >= min_share
    level, share = np.where(own, level, around), np.where(own, share, around_share)

    def pixels(a: np.ndarray) -> np.ndarray:                   # tile map -> pixel map
        return cv2.resize(a, (nx * tile, ny * tile), interpolation=cv2.INTER_NEAREST)[:h, :w]

    return pixels(np.rint(level).astype(np.uint8)), pixels((share >= min_share).astype(np.uint8)).view(bool)


def text_mask(gray: np.ndarray, ink: float = 100.0, faint: float = 35.0, max_soft: float = 0.4,
              max_height: int = 48, even: float = 0.85, tile: int = 32, min_share: float = 0.3) -> np.ndarray:
    """Mark text, panel letters, scale bars, axis ticks and thin drawn strokes on a flat ground:
    their repeats are authentic and fool a copy-move matcher.

    Ink is what differs from the local paper level (see _paper) by more than `ink` grey levels;
    where there is no paper (texture, photographs) everything is, so a micrograph makes one
    large component, never text. An ink component is marked when it is sharp (2 px away from
    it, at most `max_soft` of the pixels still differ from the paper by over `faint`: drawn ink
    ends within its 1 px of anti-aliasing, a blurred cell, band or spot fades out) and
    - a character or word: 3 to `max_height` px high and thin (hardly any pixel deeper inside
      than 0.2 x its height, or 1.5 px: strokes; a disc is 0.5 x its height deep);
    - a scale bar: a horizontal bar at least 5 times as long as thick, up to 14 px thick
      (its box at most 2 x that + 4 px high: straight, a little text may touch it), of one ink
      level end to end (the extreme level of its columns varies by at most 1 - `even` of its
      contrast; a sharp blot band's does more);
    - or a thin stroke of any size (chart axes, lines, error bars): no pixel deeper than 1.5 px.
    Characters are grouped into words by closing gaps of up to 8 px along the line, and given
    a margin of 1 px. Text drawn over texture is not found.

    Returns a bool map of `gray`'s shape."""
    gray = _grey(gray)
    paper, flat = _paper(gray, tile, min_share)
    away = cv2.absdiff(gray, paper)
    inked = ((away > ink) | ~flat).view(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inked, connectivity=8)
    x, y, w, h, area = stats.T
    depth = cv2.distanceTransform(inked, cv2.DIST_L2, 3)
    # the ring 2 px around each component, and which component it surrounds
    ring = cv2.dilate(inked, np.ones((5, 5), np.uint8)) > cv2.dilate(inked, np.ones((3, 3), np.uint8))
    owner = cv2.dilate(labels.astype(np.float32), np.ones((5, 5), np.uint8))[ring].astype(np.int32)
    soft = np.bincount(owner[away[ring] > faint], minlength=n) / np.maximum(np.bincount(owner, minlength=n), 1)

    def share(mask: np.ndarray) -> np.ndarray:
        """Per component, the share of its pixels in `mask`."""
        return np.bincount(labels[mask], minlength=n) / np.maximum(area, 1)

    # strokes are thin for their height; spots and cells are discs
    deep = share(depth > np.maximum(1.5, 0.2 * h).astype(np.float32)[labels])
    glyph = (h >= 3) & (h <= max_height) & (deep <= 0.1)
    thick = area / np.maximum(w, 1)                            # a bar's mean thickness
    bar = (w >= 5 * thick) & (thick <= 14) & (h <= 2 * thick + 4)
    stroke = (share(depth > 1.5) == 0) & (area >= 20)
    keep = (glyph | bar | stroke) & (soft <= max_soft)
    keep[0] = False                                             # the paper's label
    for i in np.flatnonzero(keep & bar):
        # a drawn bar is one ink level end to end; a blot band fades and varies along its length
        box = np.s_[y[i]:y[i] + h[i], x[i] + w[i] // 10:x[i] + w[i] - w[i] // 10]   # ends left out
        inside, values = labels[box] == i, gray[box].astype(np.int16)
        dark = np.median(values[inside]) < np.median(paper[box][inside])
        level = np.where(inside, values, 255 if dark else 0)           # the ink's level per column
        level = level.min(0) if dark else level.max(0)
        keep[i] = np.ptp(level) <= (1 - even) * np.median(away[box][inside])
    mask = keep[labels].astype(np.uint8)
    # characters into words: close the gaps between them along the line, then a margin of 1 px
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((1, 9), np.uint8))
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


def text_fraction(text: np.ndarray, region: np.ndarray) -> float:
    """Fraction of the pixels of bool `region` that `text` marks (0.0 for an empty region)."""
    n = int(np.count_nonzero(region))
    return float(np.count_nonzero(text & region)) / n if n else 0.0
