"""Figures: panels laid out in a grid with gutters, their content drawn (lib.data.demo.content), and
an overlay of panel letters, scale bars and labels drawn over any content (authors fake the data,
then assemble the figure, so a copied panel never carries a wrong panel letter)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .content import (BOLD_FONT, CONDITIONS, FONT, KIND_PROBS, MICROSCOPY, PANEL_KINDS, STAINS, split_span,
                      text_size)

_LABEL_COLOURS = ((255, 255, 255), (80, 255, 80), (255, 90, 90), (110, 160, 255))  # channel names


# ----------------------------------------------------------------------------- figures

@dataclass(frozen=True)
class Panel:
    """One panel of a figure: a rectangle [x0, x1) x [y0, y1) and the kind drawn in it."""

    x0: int
    y0: int
    x1: int
    y1: int
    kind: str

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height


class _Overlay:
    """Letters, scale bars and labels kept apart from the content: an RGB layer plus opacity.

    The same overlay is rendered over the authentic and the forged content, so it never
    differs between twins and is never part of a copied region."""

    def __init__(self, h: int, w: int) -> None:
        self.rgb = np.zeros((h, w, 3), np.uint8)
        self.alpha = np.zeros((h, w), np.uint8)

    def text(self, text: str, org: tuple[int, int], scale: float, colour: tuple, thickness: int,
             font: int = FONT) -> None:
        # the colour layer is drawn bolder than the opacity so anti-aliased edges never show black
        cv2.putText(self.rgb, text, org, font, scale, colour, thickness + 2)
        cv2.putText(self.alpha, text, org, font, scale, 255, thickness, cv2.LINE_AA)

    def font_text(self, text: str, top_left: tuple[int, int], size: int, colour: tuple, font: str) -> None:
        """`text` in the TrueType `font` (a file name among matplotlib's fonts), `size` pixels high."""
        face = _font(font)
        face.set_size(size, 72)
        face.set_text(text, 0.0)
        face.draw_glyphs_to_bitmap(antialiased=True)
        glyphs = np.asarray(face.get_image())
        x, y = top_left
        h, w = self.alpha.shape
        gh, gw = min(glyphs.shape[0], h - y), min(glyphs.shape[1], w - x)
        if gh <= 0 or gw <= 0 or x < 0 or y < 0:
            return
        ink = glyphs[:gh, :gw]
        region = (slice(y, y + gh), slice(x, x + gw))
        self.rgb[region][ink > 0] = colour
        self.alpha[region] = np.maximum(self.alpha[region], ink)

    def rect(self, p0: tuple[int, int], p1: tuple[int, int], colour: tuple) -> None:
        cv2.rectangle(self.rgb, p0, p1, colour, -1)
        cv2.rectangle(self.alpha, p0, p1, 255, -1)


@dataclass
class Figure:
    """A drawn figure: `content` is the data a forger copies from, `panels` its rectangles, and
    the overlay (letters, scale bars, labels) is drawn over any content by `render`."""

    content: np.ndarray
    panels: list[Panel]
    overlay_rgb: np.ndarray
    overlay_alpha: np.ndarray

    def render(self, content: np.ndarray | None = None) -> np.ndarray:
        """Return `content` (default: the figure's own) with the overlay drawn over it, RGB uint8."""
        image = (self.content if content is None else content).copy()
        covered = self.overlay_alpha > 0  # blend only there: overlays cover a few % of the image
        alpha = self.overlay_alpha[covered][:, None].astype(np.float32) / 255.0
        mixed = image[covered] * (1 - alpha) + self.overlay_rgb[covered] * alpha
        image[covered] = np.rint(mixed).astype(np.uint8)
        return image


# Compound layouts as panels per row, with relative frequencies.
_LAYOUTS = (((2,), 3), ((1, 1), 2), ((2, 2), 4), ((3,), 2), ((1, 2), 1), ((2, 1), 1),
            ((1, 1, 1), 1), ((4,), 1), ((3, 1), 1))
MIN_PANEL = 64
# compound layouts a realistic figure adds: up to 6 panels
_MORE_LAYOUTS = (((3, 3), 1), ((2, 2, 2), 1), ((2, 3), 1), ((3, 2), 1), ((1, 2, 2), 1), ((2, 4), 0.5), ((5,), 0.5))
# TrueType fonts of matplotlib's own data folder (nothing to download): panel letters and labels
FONT_FILES = ("DejaVuSans-Bold.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "STIXGeneralBol.ttf",
              "DejaVuSans.ttf", "cmss10.ttf")


@functools.lru_cache(maxsize=None)
def _font(name: str):
    from matplotlib import ft2font, get_data_path
    return ft2font.FT2Font(str(Path(get_data_path()) / "fonts" / "ttf" / name))


def _layout(rng: np.random.Generator, h: int, w: int, realistic: bool = False) -> list[tuple[int, int, int, int]]:
    """Panel rectangles (x0, y0, x1, y1): the whole image, or a grid of 2-4 panels with gutters;
    `realistic`: 2-6 panels, gutters from touching (0 px) to wide."""
    margin, gutter = int(rng.integers(0, 6)), int(rng.integers(3, 10))
    layouts = _LAYOUTS
    if realistic:
        gutter = int(rng.choice([0, int(rng.integers(1, 4)), int(rng.integers(4, 11)), int(rng.integers(11, 21))],
                                p=[0.1, 0.3, 0.45, 0.15]))
        layouts = _LAYOUTS + _MORE_LAYOUTS
    fits = [(rows, p) for rows, p in layouts
            if (h - 2 * margin - gutter * (len(rows) - 1)) / len(rows) >= MIN_PANEL * 1.2
            and (w - 2 * margin - gutter * (max(rows) - 1)) / max(rows) >= MIN_PANEL * 1.2]
    if not fits or rng.random() < (0.35 if realistic else 0.5):
        return [(0, 0, w, h)]
    probs = np.array([p for _, p in fits], float)
    rows = fits[rng.choice(len(fits), p=probs / probs.sum())][0]
    equal = rng.random() < 0.7
    rects = []
    for (y0, y1), n_cols in zip(split_span(rng, margin, h - margin, len(rows), gutter, equal), rows):
        for x0, x1 in split_span(rng, margin, w - margin, n_cols, gutter, equal or rng.random() < 0.5):
            rects.append((x0, y0, x1, y1))
    return rects


def _panel_kinds(rng: np.random.Generator, n: int, kinds: dict[str, float]) -> list[str]:
    """Kinds of a figure's n panels: often all one kind (as in real figures), else mixed."""
    names, probs = list(kinds), list(kinds.values())
    if n > 1 and rng.random() < 0.6:
        return [str(rng.choice(names, p=probs))] * n
    return [str(k) for k in rng.choice(names, n, p=probs)]


def _is_dark(patch: np.ndarray) -> bool:
    return float(patch.mean()) < 110


def _annotate(rng: np.random.Generator, overlay: _Overlay, content: np.ndarray,
              panels: list[Panel], font: str | None = None) -> None:
    """Draw panel letters (compound figures), scale bars and labels (microscopy) on the overlay;
    letters and labels in the TrueType `font` (a file of matplotlib's) when given."""
    compound = len(panels) > 1
    corner_right = rng.random() < 0.15
    letters = "ABCDEF" if rng.random() < 0.8 else "abcdef"
    letter_scale = rng.uniform(0.5, 0.9) * float(np.clip(min(p.width for p in panels) / 200, 0.6, 1.2))
    # realistic compound figures often repeat the same condition names over every panel: repeated text
    # that is authentic (a matcher's common false positive)
    headers = [str(c) for c in rng.choice(CONDITIONS, 2, replace=False)] if font and compound \
        and rng.random() < 0.5 else []
    for i, p in enumerate(panels):
        if headers:
            size = int(np.clip(p.width / 14, 10, 24))
            tint = (255, 255, 255) if _is_dark(content[p.y1 - size - 8:p.y1, p.x0:p.x1]) else (0, 0, 0)
            overlay.font_text(headers[i % 2], (p.x0 + p.width // 2 - size, p.y1 - size - 6), size, tint,
                              font.replace("-Bold", "").replace("Bol.", "."))
        patch = content[p.y0:p.y0 + 24, p.x0:p.x0 + 24]
        colour = (255, 255, 255) if _is_dark(patch) else (0, 0, 0)
        if compound and font:
            size = int(np.clip(min(q.width for q in panels) / 10, 12, 36))
            x = p.x1 - size - 4 if corner_right else p.x0 + 4
            overlay.font_text(letters[i], (x, p.y0 + 4), size, colour, font)
        elif compound:
            tw, th = text_size(letters[i], letter_scale, 2)
            x = p.x1 - tw - 5 if corner_right else p.x0 + 4
            overlay.text(letters[i], (x, p.y0 + th + 5), letter_scale, colour, 2, BOLD_FONT)
        if p.kind in MICROSCOPY and rng.random() < (0.7 if compound else 0.5):
            _scale_bar(rng, overlay, content, p)
        if p.kind == "fluorescence" and compound and rng.random() < 0.5:
            label = str(rng.choice(STAINS + CONDITIONS))
            scale = float(np.clip(p.width / 350, 0.3, 0.55))
            tw, th = text_size(label, scale)
            tint = _LABEL_COLOURS[rng.integers(len(_LABEL_COLOURS))]
            x = p.x0 + 4 if corner_right else p.x1 - tw - 5
            if font:
                overlay.font_text(label, (x, p.y0 + 6), max(10, int(th * 1.3)), tint, font.replace("-Bold", ""))
            else:
                overlay.text(label, (x, p.y0 + th + 6), scale, tint, 1)


def _scale_bar(rng: np.random.Generator, overlay: _Overlay, content: np.ndarray, p: Panel) -> None:
    """White (or black on light panels) scale bar in the bottom-right corner, maybe with '50 um'."""
    length = int(p.width * rng.uniform(0.12, 0.25))
    thick = int(rng.integers(2, 5))
    x1, y1 = p.x1 - int(p.width * 0.05) - 2, p.y1 - int(p.height * 0.05) - 2
    colour = (255, 255, 255) if _is_dark(content[y1 - 30:y1, x1 - length:x1]) else (0, 0, 0)
    overlay.rect((x1 - length, y1 - thick), (x1, y1), colour)
    if rng.random() < 0.6:
        text = f"{rng.choice([10, 20, 50, 100, 200])} um"
        scale = float(np.clip(p.width / 450, 0.3, 0.5))
        tw, _ = text_size(text, scale)
        overlay.text(text, (x1 - length // 2 - tw // 2, y1 - thick - 4), scale, colour, 1)


def draw_figure(rng: np.random.Generator, h: int, w: int, kinds: dict[str, float] | None = None,
                realistic: bool = False) -> Figure:
    """Draw a scientific-figure-like image of size (h, w): one panel or a compound figure, its
    panels of the `kinds` given with their probabilities (default: the demo's KIND_PROBS).
    `realistic`: up to 6 panels, gutters touching to wide, white (mostly), grey or black, panel
    letters and labels in real fonts (matplotlib's bundled DejaVu, STIX, Computer Modern).

    Returns a Figure; `figure.render()` is the finished RGB uint8 image."""
    rects = _layout(rng, h, w, realistic)
    ground, font = 255, None
    if realistic:
        ground = int(rng.choice([255, int(rng.integers(200, 240)), int(rng.integers(0, 30))], p=[0.8, 0.1, 0.1]))
        font = str(rng.choice(FONT_FILES))
    content = np.full((h, w, 3), ground, np.uint8)
    panels = [Panel(*r, kind=k) for r, k in zip(rects, _panel_kinds(rng, len(rects), kinds or KIND_PROBS))]
    for p in panels:
        content[p.y0:p.y1, p.x0:p.x1] = PANEL_KINDS[p.kind](rng, p.height, p.width)
    overlay = _Overlay(h, w)
    _annotate(rng, overlay, content, panels, font)
    return Figure(content, panels, overlay.rgb, overlay.alpha)

