"""Copy-move forgeries as people make them: a region of a panel (rectangle, ellipses or a free
polygon) copied into the same or another panel, translated, flipped, rotated or scaled, hard or
feathered; or a whole panel replaced by a (flipped, rescaled) copy of another. One event's mask is
the source and all its copies together, the competition's instance."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .composition import Panel
from .content import GRAPHICS, blur


@dataclass
class Copy:
    """One pasted copy: `matrix` (2x3) maps a source pixel (x, y, 1) to its destination."""

    transform: str
    matrix: np.ndarray
    mask: np.ndarray


@dataclass
class Event:
    """One duplication event: a source region and its copies (usually one, sometimes two)."""

    kind: str  # "region" (part of a panel) or "panel" (a whole panel overwritten)
    source: np.ndarray  # bool (H, W)
    feathered: bool
    copies: list[Copy] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        """The event's instance channel, uint8 0/1: source and every copy together."""
        union = self.source.copy()
        for c in self.copies:
            union |= c.mask
        return union.astype(np.uint8)


_TRANSFORMS = ("translate", "flip", "rotate90", "rotate", "scale", "combined")
_TRANSFORM_PROBS = (0.55, 0.12, 0.10, 0.08, 0.10, 0.05)
# integer matrices (rotate90: any multiple of 90 degrees), so the copy is pixel-exact
_EXACT = ("translate", "flip", "rotate90")


def _rotation(degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _sample_linear(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A transform name and its 2x2 linear part (image coordinates, x right, y down)."""
    name = str(rng.choice(_TRANSFORMS, p=_TRANSFORM_PROBS))
    flip = np.diag([-1.0, 1.0]) if rng.random() < 0.5 else np.diag([1.0, -1.0])
    small_angle = rng.choice([-1, 1]) * rng.uniform(3, 30)
    linear = {
        "translate": np.eye(2),
        "flip": flip,
        "rotate90": np.rint(_rotation(90.0 * rng.integers(1, 4))),
        "rotate": _rotation(small_angle),
        "scale": np.eye(2) * rng.uniform(0.7, 1.4),
        "combined": (_rotation(small_angle) @ (flip if rng.random() < 0.5 else np.eye(2))
                     * rng.uniform(0.75, 1.3)),
    }[name]
    return name, linear


def _region_shape(rng: np.random.Generator, bh: int, bw: int) -> np.ndarray:
    """A bool mask (bh, bw): a rectangle, a union of ellipses or a smooth random polygon."""
    style = rng.choice(["rect", "ellipses", "polygon"], p=[0.45, 0.3, 0.25])
    if style == "rect":
        return np.ones((bh, bw), bool)
    canvas = np.zeros((bh, bw), np.uint8)
    if style == "ellipses":
        for _ in range(int(rng.integers(1, 5))):
            ax = (int(bw * rng.uniform(0.2, 0.5)) + 1, int(bh * rng.uniform(0.2, 0.5)) + 1)
            centre = (int(rng.uniform(ax[0], bw - ax[0] + 1)), int(rng.uniform(ax[1], bh - ax[1] + 1)))
            cv2.ellipse(canvas, centre, ax, 0, 0, 360, 1, -1)
    else:
        k = int(rng.integers(8, 17))
        radius = np.convolve(np.tile(rng.uniform(0.5, 1.0, k), 3), np.ones(3) / 3, "same")[k:2 * k]
        angles = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, 0.3)
        pts = np.stack([(1 + radius * np.cos(angles)) * (bw - 1) / 2,
                        (1 + radius * np.sin(angles)) * (bh - 1) / 2], axis=1)
        cv2.fillPoly(canvas, [np.rint(pts).astype(np.int32)], 1)
    return canvas.astype(bool) if canvas.any() else np.ones((bh, bw), bool)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a non-empty mask, exclusive ends."""
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _warp(image: np.ndarray, matrix: np.ndarray, exact: bool) -> np.ndarray:
    """Warp with the same size; outside the image reads as 0 (a reflecting border would echo
    a warped mask back into the image)."""
    h, w = image.shape[:2]
    flags = cv2.INTER_NEAREST if exact else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix.astype(np.float64), (w, h), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _paste(image: np.ndarray, copy: Copy, feather: float) -> None:
    """Paste the warped image into `copy.mask`, hard or feathered inwards (never outside the mask)."""
    warped = _warp(image, copy.matrix, copy.transform in _EXACT)
    if feather <= 0:
        image[copy.mask] = warped[copy.mask]
        return
    alpha = (blur(copy.mask.astype(np.float32), feather) * copy.mask)[..., None]
    mixed = warped.astype(np.float32) * alpha + image.astype(np.float32) * (1 - alpha)
    image[copy.mask] = np.rint(mixed[copy.mask]).astype(np.uint8)


def _flat_background(image: np.ndarray, panels: list[Panel]) -> np.ndarray:
    """Bool map of perfectly flat pixels (gutters, label columns; drawn data always has noise),
    left False inside plots, which are flat almost everywhere."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    kernel = np.ones((5, 5), np.uint8)
    flat = cv2.dilate(gray, kernel) == cv2.erode(gray, kernel)
    for p in panels:
        if p.kind in GRAPHICS:
            flat[p.y0:p.y1, p.x0:p.x1] = False
    return flat


def _mostly_data(mask: np.ndarray, flat: np.ndarray) -> bool:
    # a region over a gutter or a label column looks like a white patch, not a forgery
    return float(flat[mask].mean()) < 0.05


def _place_copy(rng: np.random.Generator, source: np.ndarray, target: Panel, blocked: np.ndarray,
                flat: np.ndarray, tries: int = 12) -> Copy | None:
    """Find a transform and position that put the warped source fully inside `target`, clear of
    `blocked` and of flat background; None when none is found in `tries` attempts."""
    x0, y0, x1, y1 = _bbox(source)
    corners = np.array([[x0, y0], [x1 - 1, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], float).T
    for _ in range(tries):
        name, linear = _sample_linear(rng)
        moved = linear @ corners
        margin = 0 if name in _EXACT else 1  # interpolated copies may spill half a pixel
        lo_x, hi_x = target.x0 + margin - moved[0].min(), target.x1 - 1 - margin - moved[0].max()
        lo_y, hi_y = target.y0 + margin - moved[1].min(), target.y1 - 1 - margin - moved[1].max()
        if hi_x < lo_x or hi_y < lo_y:
            continue
        shift = (int(np.floor(rng.uniform(np.ceil(lo_x), np.floor(hi_x) + 1))),
                 int(np.floor(rng.uniform(np.ceil(lo_y), np.floor(hi_y) + 1))))
        matrix = np.hstack([linear, np.array(shift, float)[:, None]])
        dest = _warp(source.astype(np.uint8), matrix, exact=True).astype(bool)
        if dest.any() and not (dest & blocked).any() and _mostly_data(dest, flat):
            return Copy(name, matrix, dest)
    return None


def _source_region(rng: np.random.Generator, image: np.ndarray, panel: Panel, area: float,
                   blocked: np.ndarray, flat: np.ndarray, min_texture: float = 8.0) -> np.ndarray | None:
    """A region of about `area` pixels inside `panel` whose grey levels vary by more than
    `min_texture` (std), clear of `blocked`, or None."""
    aspect = float(np.exp(rng.uniform(np.log(1 / 3), np.log(3))))
    bw = int(np.clip(np.sqrt(area * aspect), 6, panel.width * 0.6))
    bh = int(np.clip(area / bw, 6, panel.height * 0.6))
    shape = _region_shape(rng, bh, bw)
    for _ in range(8):
        x = int(rng.integers(panel.x0, panel.x1 - bw + 1))
        y = int(rng.integers(panel.y0, panel.y1 - bh + 1))
        mask = np.zeros(image.shape[:2], bool)
        mask[y:y + bh, x:x + bw] = shape
        # a featureless region (empty plot background) would be an invisible copy
        if not (mask & blocked).any() and _mostly_data(mask, flat) and image[mask].std() > min_texture:
            return mask
    return None


def _mean(image: np.ndarray, panel: Panel) -> float:
    return float(image[panel.y0:panel.y1, panel.x0:panel.x1].mean())


def _region_event(rng: np.random.Generator, image: np.ndarray, panels: list[Panel],
                  occupied: np.ndarray, flat: np.ndarray, area: float, min_texture: float = 8.0) -> Event | None:
    """A region of one panel copied once (sometimes twice) into another panel or the same one."""
    weights = np.array([0.3 if p.kind in GRAPHICS else 1.0 for p in panels])
    panel = panels[rng.choice(len(panels), p=weights / weights.sum())]
    source = _source_region(rng, image, panel, area, _dilate(occupied, 2), flat, min_texture)
    if source is None:
        return None
    event = Event("region", source, feathered=rng.random() < 0.3)
    for _ in range(2 if rng.random() < 0.12 else 1):
        # another panel of the same kind and brightness most often; a cell pasted into a blot,
        # or a light blot band into an inverted gel, fools nobody
        same_kind = [p for p in panels if p != panel and p.kind == panel.kind
                     and abs(_mean(image, p) - _mean(image, panel)) < 40]
        target = same_kind[rng.integers(len(same_kind))] if same_kind and rng.random() < 0.85 else panel
        copy = _place_copy(rng, source, target, _dilate(occupied | event.mask.astype(bool), 2), flat)
        if copy is not None:
            event.copies.append(copy)
    return event if event.copies else None


def _rect_matrix(src: tuple[float, float, float, float], dst: Panel, flip_x: bool,
                 flip_y: bool) -> np.ndarray:
    """2x3 matrix mapping pixel centres of rectangle `src` (x0, y0, x1, y1) onto panel `dst`."""
    sx, sy = dst.width / (src[2] - src[0]), dst.height / (src[3] - src[1])
    rows = []
    for s, lo, d_lo, d_hi, flip, axis in ((sx, src[0], dst.x0, dst.x1, flip_x, 0),
                                          (sy, src[1], dst.y0, dst.y1, flip_y, 1)):
        row = np.zeros(3)
        # x' = d_lo + (x - lo + 0.5) * s - 0.5, mirrored about the panel when flipped
        row[axis], row[2] = (-s, d_hi - 0.5 - (0.5 - lo) * s) if flip else (s, d_lo - 0.5 + (0.5 - lo) * s)
        rows.append(row)
    return np.array(rows)


def _panel_event(rng: np.random.Generator, panels: list[Panel], occupied: np.ndarray) -> Event | None:
    """A whole panel overwritten by a (flipped, rescaled) copy of another panel of the same kind."""
    pairs = [(a, b) for a in panels for b in panels if a != b and a.kind == b.kind
             and not occupied[a.y0:a.y1, a.x0:a.x1].any() and not occupied[b.y0:b.y1, b.x0:b.x1].any()]
    if not pairs:
        return None
    a, b = pairs[rng.integers(len(pairs))]
    # the largest crop of `a` with the aspect ratio of `b`, anywhere in `a`
    fit = min(a.width / b.width, a.height / b.height)
    cw, ch = max(1, round(b.width * fit)), max(1, round(b.height * fit))
    cx, cy = a.x0 + int(rng.integers(0, a.width - cw + 1)), a.y0 + int(rng.integers(0, a.height - ch + 1))
    flip_x, flip_y = rng.random() < 0.2, rng.random() < 0.1
    matrix = _rect_matrix((cx, cy, cx + cw, cy + ch), b, flip_x, flip_y)
    exact = (cw, ch) == (b.width, b.height)
    names = {(False, False): "translate", (True, False): "flip", (False, True): "flip",
             (True, True): "rotate90"}  # both flips: a 180-degree turn
    transform = names[(flip_x, flip_y)] if exact else "scale"
    source = np.zeros(occupied.shape, bool)
    source[cy:cy + ch, cx:cx + cw] = True
    dest = np.zeros(occupied.shape, bool)
    dest[b.y0:b.y1, b.x0:b.x1] = True
    return Event("panel", source, feathered=False, copies=[Copy(transform, matrix, dest)])


def _region_area(rng: np.random.Generator, image_area: int) -> float:
    """Pixels of one region: log-uniform from 0.1 % to 15 % of the image."""
    return float(np.exp(rng.uniform(np.log(0.001), np.log(0.15)))) * image_area


def forge(rng: np.random.Generator, image: np.ndarray, panels: list[Panel],
          n_events: int, min_texture: float = 8.0) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """Apply up to `n_events` non-overlapping copy-move events to a copy of `image`; copied
    regions vary by more than `min_texture` grey levels (0: flat background patches too).

    Returns (forged image, masks uint8 (n, H, W) with one channel per event, events). An event
    that cannot be placed after a few tries is skipped; at least one is always placed."""
    forged = image.copy()
    h, w = image.shape[:2]
    occupied = np.zeros((h, w), bool)
    flat = _flat_background(image, panels)
    events: list[Event] = []
    for attempt in range(60):
        if len(events) == n_events or (attempt >= 30 and events):
            break
        area = _region_area(rng, h * w) / 2 ** (attempt // 10)  # shrink when nothing fits
        # whole-panel reuse only in figures of 3+ panels: in a 2-panel figure it would mask ~everything
        whole = attempt == 0 and len(panels) > 2 and rng.random() < 0.22
        event = _panel_event(rng, panels, occupied) if whole else None
        event = event or _region_event(rng, forged, panels, occupied, flat, area, min_texture)
        if event is None:
            continue
        feather = rng.uniform(0.8, 2.5) if event.feathered else 0.0
        for copy in event.copies:
            _paste(forged, copy, feather)
        occupied |= event.mask.astype(bool)
        events.append(event)
    if not events:
        raise RuntimeError(f"no copy-move event fits a {h}x{w} image with {len(panels)} panels")
    return forged, np.stack([e.mask for e in events]), events


