"""Synthetic scientific figures with copy-move forgeries, in the exact Kaggle layout: the demo
data and the tests' data come from this one generator.

Figures are drawn procedurally: western blots and gels, fluorescence and histology
micrographs, line and bar plots, and compound figures of 2-4 panels with panel letters,
scale bars and labels. Forged images get 1-3 copy-move events (translation, rotation,
scaling, flips; hard or feathered edges) whose masks follow the competition's convention:
one channel per duplication event, holding the source region and all its copies.
Every image has its own generator `default_rng([seed, stream, index])`, so a file does not
change when the number of other files does.

Modules, one idea each: content (what panels show), composition (panels, layout and the
overlay of letters and scale bars), forgeries (copy-move events and their masks), saving
(cases, and the dataset on disk).
"""
from .composition import Figure, Panel, draw_figure
from .content import PANEL_KINDS
from .forgeries import Copy, Event, forge
from .saving import Case, format_summary, make_benchmark, make_case, make_demo_dataset

__all__ = ["Case", "Copy", "Event", "Figure", "PANEL_KINDS", "Panel", "draw_figure", "forge", "format_summary",
           "make_benchmark", "make_case", "make_demo_dataset"]
