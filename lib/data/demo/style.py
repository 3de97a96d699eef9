"""What a generated dataset looks like: which panels its figures show and how a figure is saved
after forging. DEMO is the demo's clean figures (pixel-exact copies, some JPEG); BENCHMARK is
closer to real papers: more content types (bright-field cells, photographs with natural 1/f
statistics, spot arrays), copies of flat background too, and figures re-saved the way journals
do (JPEG at quality 70-95 for half, rescaled 0.5-2x for some, noise for some), so that a copy no
longer equals its source pixel for pixel; half the authentic figures are hard on purpose."""
from __future__ import annotations

from dataclasses import dataclass, field

from .content import KIND_PROBS


@dataclass(frozen=True)
class Style:
    name: str
    kinds: dict[str, float] = field(default_factory=lambda: dict(KIND_PROBS))   # panel kinds, probabilities
    gray_prob: float = 0.1
    jpeg_prob: float = 0.2
    jpeg_quality: tuple[int, int] = (60, 95)
    rescale_prob: float = 0.0
    rescale_range: tuple[float, float] = (0.5, 2.0)
    noise_prob: float = 0.0
    noise_sigma: tuple[float, float] = (1.0, 4.0)
    flat_source_prob: float = 0.0      # a forgery's copied regions may be flat (background laid over content)
    hard_authentic_prob: float = 0.0   # an authentic figure is one of HARD_KINDS, all its panels alike
    realistic_layout: bool = False     # up to 6 panels, varied gutters, real fonts (lib.data.demo.composition)


# authentic figures that look duplicated: similar cells, regular blot lanes, spot arrays, matplotlib
# charts with repeated markers, error bars and legends
HARD_KINDS = ("cells", "blot", "periodic", "chart")

DEMO = Style("demo")
BENCHMARK = Style("benchmark",
                  kinds={"blot": 0.18, "fluorescence": 0.18, "histology": 0.14, "cells": 0.2, "natural": 0.12,
                         "periodic": 0.04, "chart": 0.1, "plot": 0.04},
                  jpeg_prob=0.5, jpeg_quality=(70, 95), rescale_prob=0.3, noise_prob=0.3,
                  flat_source_prob=0.3, hard_authentic_prob=0.5, realistic_layout=True)
