"""A gallery of failures to open in a browser: `<dir>/index.html` with thumbnails of the worst
false negatives (forged figures missed or badly segmented) and false positives (authentic
figures flagged), the truth outlined in green and the prediction in red, each linked to its
full-size picture and to the copy-move matcher's debug picture for that image (run again on it:
its candidates, and every rejected one with its reason).
"""
from __future__ import annotations

import html
import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..competition.metric import AUTHENTIC, parse_shape
from ..competition.rle import rle_decode_instances
from ..draw import outline
from ..fileio import atomic_write_text
from ..imageio import list_images, load_image, write_png
from ..inference.fusion import match_file
from ..matching import MatchConfig, Verifier
from .groups import read_meta

log = logging.getLogger(__name__)

TRUTH_RGB, PREDICTION_RGB = (40, 200, 60), (230, 30, 40)
THUMB = 320
POOR_SCORE = 0.5          # a forged row scoring under this is a false negative of the gallery


def failures(rows: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(false negatives, false positives): forged rows scoring under POOR_SCORE, lowest first
    (ties: larger forgeries first, the most visible misses), and authentic rows predicted forged,
    the largest predicted area first; at most `n` each. `rows` is metric.score_frame's table."""
    rows = rows.copy()
    forged, flagged = rows["annotation"] != AUTHENTIC, rows["prediction"] != AUTHENTIC
    rows["true_area"] = [_area(a, s) for a, s in zip(rows["annotation"], rows["shape"])]
    rows["pred_area"] = [_area(p, s) if s != AUTHENTIC else 0.0 for p, s in zip(rows["prediction"], rows["shape"])]
    missed = rows[forged & (rows["score"] < POOR_SCORE)].sort_values(["score", "true_area"], ascending=[True, False])
    false_pos = rows[~forged & flagged].sort_values("pred_area", ascending=False)
    return missed.head(n), false_pos.head(n)


def _area(annotation: str, shape: str) -> float:
    if annotation == AUTHENTIC:
        return 0.0
    masks = rle_decode_instances(annotation, parse_shape(shape))
    return float(np.any(masks, axis=0).mean())


def write_gallery(rows: pd.DataFrame, images_dir: Path, out_dir: Path, meta_path: Path | None = None,
                  n: int = 12, match_config: MatchConfig | None = None, verifier: Verifier | None = None) -> Path:
    """Write the gallery of `rows` (metric.score_frame's table, the solution's `shape` included)
    for the images in `images_dir`, the matcher's debug pictures drawn with `match_config` and
    `verifier` (the defaults when None); returns the index.html path."""
    out_dir = Path(out_dir)
    images = {p.stem: p for p in list_images(images_dir)}
    meta = events = None
    if meta_path is not None:
        meta, events = read_meta(meta_path)
        meta = meta[meta["image"].str.startswith("test_images/")].set_index("case_id")
    missed, false_pos = failures(rows, n)
    sections = []
    for title, part in (("False negatives: forged figures missed or badly segmented", missed),
                        ("False positives: authentic figures flagged", false_pos)):
        cards = [_card(row, images, out_dir, meta, events, match_config or MatchConfig(), verifier)
                 for row in part.itertuples() if row.case_id in images]
        sections.append(f"<h2>{html.escape(title)} ({len(cards)})</h2>\n<div class='grid'>\n"
                        + "\n".join(cards) + "\n</div>")
    total = len(rows)
    summary = (f"{total} images, {int((rows['annotation'] != AUTHENTIC).sum())} forged; mean score "
               f"{rows['score'].mean():.4f}. Truth outlined in green, prediction in red; click a picture for "
               f"full size, 'matcher' for the matcher's debug picture (its rejected candidates with reasons).")
    page = _PAGE.format(title="Failures", summary=html.escape(summary), body="\n".join(sections))
    index = out_dir / "index.html"
    atomic_write_text(index, page)
    log.info("gallery: %s (%d false negatives, %d false positives)", index, len(missed), len(false_pos))
    return index


def _card(row, images: dict, out_dir: Path, meta, events, config: MatchConfig, verifier: Verifier | None) -> str:
    cid = row.case_id
    image = load_image(images[cid])
    hw = image.shape[:2]
    picture = image
    if row.annotation != AUTHENTIC:
        picture = outline(picture, np.any(rle_decode_instances(row.annotation, hw), axis=0), TRUTH_RGB, 0.2)
    if row.prediction != AUTHENTIC:
        picture = outline(picture, np.any(rle_decode_instances(row.prediction, hw), axis=0), PREDICTION_RGB, 0.3)
    write_png(out_dir / "full" / f"{cid}.png", picture)
    scale = THUMB / max(hw)
    thumb = cv2.resize(picture, (max(1, round(hw[1] * scale)), max(1, round(hw[0] * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else picture
    write_png(out_dir / "thumbs" / f"{cid}.png", thumb)
    match_file(images[cid], config, debug_dir=out_dir / "matcher", verifier=verifier)
    lines = [f"<b>{html.escape(cid)}</b> score {row.score:.3f}",
             f"truth {row.true_area:.2%} of the image, predicted {row.pred_area:.2%}"]
    if meta is not None and cid in meta.index:
        m = meta.loc[cid]
        lines.append(f"{m['content']} | {m['panels']} panel(s) | jpeg {m['jpeg'] or 'none'} | rescale {m['rescale']} "
                     f"| noise {m['noise']}" + (f" | hard: {m['hard']}" if m["hard"] else ""))
    if events is not None:
        for e in events[events["case_id"] == cid].itertuples():
            lines.append(f"event {e.event}: {e.operation}, {e.content}, {e.placement}, {e.area_bucket}, "
                         f"texture {e.texture} ({e.texture_group})")
    caption = "<br>".join(html.escape(line) if not line.startswith("<b>") else line for line in lines)
    return (f"<figure><a href='full/{cid}.png'><img src='thumbs/{cid}.png' alt='{cid}'></a>"
            f"<figcaption>{caption}<br><a href='matcher/{cid}.png'>matcher</a></figcaption></figure>")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; background: #fafafa; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }}
figure {{ margin: 0; padding: 8px; background: white; border: 1px solid #ddd; }}
img {{ max-width: 320px; max-height: 320px; display: block; }}
figcaption {{ font-size: 12px; line-height: 1.4; margin-top: 4px; }}
</style></head>
<body><h1>{title}</h1><p>{summary}</p>
{body}
</body></html>
"""
