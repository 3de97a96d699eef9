"""Panels and text of a compound figure (lib.matching.panels): a figure built from textured panels
on a white, grey or black ground is split into exactly its panels, in reading order, headers and
margins left out; a figure without gutters is one panel; panel_labels says which panel a pixel
is in; text_mask marks letters, words, scale bars and matplotlib text on flat ground, drawn dark
on light or light on dark, and leaves textures and blurred spots alone."""
import cv2
import numpy as np
import pytest

from lib.matching.panels import panel_labels, split_panels, text_fraction, text_mask


def texture(rng, h, w, std=30.0):
    """A micrograph-like panel: noise blurred with sigma 1, scaled to `std`, around a random level."""
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)
    level = rng.uniform(70, 190)
    return np.clip(level + noise / noise.std() * std, 0, 255).astype(np.uint8)


def compound(boxes, shape, ground, seed=0):
    """A figure of `shape` on a `ground` grey level with a texture panel in each (y0, x0, y1, x1)."""
    rng = np.random.default_rng(seed)
    figure = np.full(shape, ground, np.uint8)
    for y0, x0, y1, x1 in boxes:
        figure[y0:y1, x0:x1] = texture(rng, y1 - y0, x1 - x0)
    return figure


# 2 x 2 panels of different sizes, 10 px gutters and margins; the bottom row's columns do not
# line up with the top row's, so the figure must be cut into rows first
GRID = [(10, 10, 130, 170), (10, 180, 130, 290), (140, 10, 230, 110), (140, 120, 230, 290)]
# a wide panel spanning both columns above two panels
SPANNING = [(10, 10, 110, 290), (120, 10, 230, 140), (120, 150, 230, 290)]


def assert_same_boxes(found, truth, slack=2):
    assert len(found) == len(truth), f"{len(found)} boxes for {len(truth)} panels: {found}"
    for box, true in zip(found, truth):             # in reading order
        assert np.abs(np.subtract(box, true)).max() <= slack, f"{box} is not the panel {true}"


@pytest.mark.parametrize("boxes, ground", [(GRID, 255), (GRID, 0), (GRID, 180), (SPANNING, 180)],
                         ids=["white", "black", "grey", "grey-spanning"])
def test_compound_figure_splits_into_its_panels(boxes, ground):
    figure = compound(boxes, (240, 300), ground)
    assert_same_boxes(split_panels(figure), boxes)


def test_narrow_gutters_noise_and_jpeg():
    # 3 px white gutters, noise on the whole figure and JPEG: the gutters are no longer exactly flat
    boxes = [(3, 3, 120, 148), (3, 151, 120, 297), (123, 3, 237, 297)]
    figure = compound(boxes, (240, 300), 255, seed=1).astype(np.float32)
    figure += np.random.default_rng(2).normal(0, 2, figure.shape)
    _, buffer = cv2.imencode(".jpg", np.clip(figure, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert_same_boxes(split_panels(cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)), boxes)


def test_header_line_is_dropped_and_margin_trimmed():
    figure = compound(GRID, (240, 300), 255)
    figure = np.vstack([np.full((30, 300), 255, np.uint8), figure])     # a header line above
    cv2.putText(figure, "Control   siRNA", (20, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 1, cv2.LINE_AA)
    shifted = [(y0 + 30, x0, y1 + 30, x1) for y0, x0, y1, x1 in GRID]
    assert_same_boxes(split_panels(figure), shifted)


def test_figure_without_gutter_is_one_panel():
    figure = texture(np.random.default_rng(3), 200, 260)
    assert split_panels(figure) == [(0, 0, 200, 260)]
    # one panel in a margin: the box is the panel, not the image
    framed = np.full((240, 300), 255, np.uint8)
    framed[15:215, 20:280] = texture(np.random.default_rng(4), 200, 260)
    assert_same_boxes(split_panels(framed), [(15, 20, 215, 280)], slack=0)
    assert split_panels(np.full((100, 100), 255, np.uint8)) == []


def test_panel_labels_at_centres_and_gutters():
    labels = panel_labels((240, 300), GRID)
    assert labels.dtype == np.int32 and labels.shape == (240, 300)
    for k, (y0, x0, y1, x1) in enumerate(GRID, 1):
        assert labels[(y0 + y1) // 2, (x0 + x1) // 2] == k
        assert (labels[y0:y1, x0:x1] == k).all()
    assert labels[135, :].max() == 0                        # the gutter between the rows
    assert labels[50, 175] == 0 and labels[180, 115] == 0   # the gutters between the columns
    assert labels[:10].max() == 0 and labels[:, -10:].max() == 0   # the margins


# ----------------------------------------------------------------------------- text

def matplotlib_text(text, h, w, size=14):
    """`text` rendered by matplotlib (Agg, TrueType) onto a white h x w grey array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(w / 100, h / 100), dpi=100)
    FigureCanvasAgg(figure)
    figure.text(0.05, 0.3, text, fontsize=size, color="black")
    figure.canvas.draw()
    return cv2.cvtColor(np.asarray(figure.canvas.buffer_rgba())[..., :3], cv2.COLOR_RGB2GRAY)


def labelled_panel():
    """A white panel with a panel letter, a word, a scale bar with its legend and matplotlib text;
    returns (panel, [(name, (y0, x0, y1, x1)) of each label's box])."""
    panel = np.full((240, 420), 255, np.uint8)
    cv2.putText(panel, "A", (8, 38), cv2.FONT_HERSHEY_DUPLEX, 1.2, 0, 2, cv2.LINE_AA)
    cv2.putText(panel, "B", (380, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2, cv2.LINE_AA)
    cv2.putText(panel, "Control", (150, 70), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 0, 1, cv2.LINE_AA)
    cv2.rectangle(panel, (320, 215), (399, 218), 0, -1)
    cv2.putText(panel, "50 um", (335, 207), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
    panel[120:160, 20:220] = matplotlib_text("p-ERK 24 h", 40, 200)
    return panel, [("A", (8, 6, 42, 36)), ("B", (12, 378, 40, 402)), ("Control", (52, 148, 74, 240)),
                   ("bar", (213, 318, 221, 402)), ("50 um", (195, 333, 210, 395)),
                   ("matplotlib", (120, 20, 160, 220))]


def ink_marked(panel, marked, box, paper):
    """Share of the ink pixels (over 60 grey levels from the paper) in `box` that are marked."""
    y0, x0, y1, x1 = box
    ink = np.abs(panel[y0:y1, x0:x1].astype(int) - paper) > 60
    assert ink.sum() > 20, "nothing drawn in the box"
    return marked[y0:y1, x0:x1][ink].mean()


def test_text_mask_marks_letters_words_bars_and_matplotlib_text():
    panel, labels = labelled_panel()
    marked = text_mask(panel)
    assert marked.dtype == bool and marked.shape == panel.shape
    for name, box in labels:
        assert ink_marked(panel, marked, box, 255) >= 0.8, name
    inside = np.zeros(panel.shape, bool)
    for _, (y0, x0, y1, x1) in labels:
        inside[max(y0 - 4, 0):y1 + 4, max(x0 - 4, 0):x1 + 4] = True
    assert marked[~inside].mean() < 0.01                   # and little of the empty paper


def test_text_mask_marks_light_text_on_a_dark_panel():
    rng = np.random.default_rng(5)
    panel = np.clip(30 + rng.normal(0, 3, (200, 300)), 0, 255).astype(np.uint8)   # a dark field
    cv2.putText(panel, "C", (8, 34), cv2.FONT_HERSHEY_DUPLEX, 1.1, 255, 2, cv2.LINE_AA)
    cv2.putText(panel, "DAPI", (220, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 230, 1, cv2.LINE_AA)
    cv2.rectangle(panel, (200, 180), (279, 183), 255, -1)
    marked = text_mask(panel)
    for name, box in [("C", (6, 6, 38, 34)), ("DAPI", (14, 218, 34, 275)), ("bar", (178, 198, 186, 282))]:
        assert ink_marked(panel, marked, box, 30) >= 0.8, name


def test_text_mask_leaves_textures_and_spots_alone():
    rng = np.random.default_rng(6)
    assert text_mask(texture(rng, 300, 400)).mean() < 0.02
    # blurred cells (discs of radius 5-10) on a flat, noisy ground: spots, not characters
    cells = np.full((300, 400), 200, np.float32)
    for _ in range(40):
        cv2.circle(cells, (int(rng.integers(400)), int(rng.integers(300))), int(rng.integers(5, 11)),
                   float(rng.uniform(40, 110)), -1)
    cells = cv2.GaussianBlur(cells, (0, 0), 2.0) + rng.normal(0, 3, cells.shape)
    assert text_mask(np.clip(cells, 0, 255).astype(np.uint8)).mean() < 0.02


def test_text_fraction():
    text = np.zeros((10, 10), bool)
    text[:, :3] = True
    region = np.zeros((10, 10), bool)
    region[:, :6] = True
    assert text_fraction(text, region) == pytest.approx(0.5)
    assert text_fraction(text, ~text) == 0.0
    assert text_fraction(text, np.zeros((10, 10), bool)) == 0.0
