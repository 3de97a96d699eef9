"""Results by group on the benchmark (bin/make_benchmark.py): where a detector fails.

For every figure column of meta.csv (label, content kind (a compound figure counts under each
kind it shows), hard authentic kind, events, panels, gray, JPEG, rescale, noise, size), each
group's competition score, image recall, FP rate and mask F1 (mean score of the true-positive
rows), computed by the metric's own `summarize_scores` on that group's rows. For every event
column of events.csv (texture group, area bucket, operation (the first copy's), kind, content,
placement, copies, feathered, rescale), each group's event recall: an event counts as found when
one predicted instance covers it with pixel F1 of at least FOUND_F1. Instance k of a solution
row is event k of events.csv (the generator writes both in the same order).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..competition.metric import AREA_BUCKET_NAMES, AUTHENTIC, parse_shape, pixel_f1, summarize_scores
from ..competition.rle import rle_decode_instances
from ..data.demo.saving import TEXTURE_GROUPS
from ..errors import ProjectError

FOUND_F1 = 0.5
FIGURE_COLUMNS = ("label", "content", "hard", "events", "panels", "gray", "jpeg", "rescale", "noise", "size")
EVENT_COLUMNS = ("texture_group", "area_bucket", "operation", "kind", "content", "placement", "copies", "feathered",
                 "rescale")
EVENTS_FILE = "events.csv"


def read_meta(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """meta.csv and the events.csv beside it, case_id as text; a one-line error when unusable."""
    path = Path(path)
    frames = []
    for file, needed in ((path, {"case_id", "image", "label"}), (path.parent / EVENTS_FILE, {"case_id", "event"})):
        try:
            frame = pd.read_csv(file, dtype={"case_id": str}, keep_default_na=False)
        except FileNotFoundError:
            raise ProjectError(f"{file}: not found (bin/make_benchmark.py writes meta.csv and events.csv "
                               f"together)") from None
        except (OSError, ValueError) as exc:
            raise ProjectError(f"{file}: not a readable CSV ({exc})") from None
        if needed - set(frame.columns):
            raise ProjectError(f"{file}: lacks the column(s) {', '.join(sorted(needed - set(frame.columns)))}")
        frames.append(frame)
    return frames[0], frames[1]


def _figure_groups(meta: pd.DataFrame) -> pd.DataFrame:
    """The figure columns as groups: numbers binned into named ranges."""
    out = pd.DataFrame({"case_id": meta["case_id"]})
    for column in FIGURE_COLUMNS:
        if column == "size" and {"height", "width"} <= set(meta.columns):
            side = np.maximum(meta["height"].astype(int), meta["width"].astype(int))
            out["size"] = np.select([side < 512, side < 1024], ["<512 px", "512-1023 px"], ">=1024 px")
        elif column not in meta.columns:
            continue
        elif column == "jpeg":
            quality = meta["jpeg"].astype(int)
            out["jpeg"] = np.select([quality == 0, quality < 85], ["none", "q<85"], "q>=85")
        elif column == "rescale":
            out["rescale"] = _rescale_groups(meta["rescale"])
        elif column == "noise":
            out["noise"] = np.where(meta["noise"].astype(float) > 0, "noise", "none")
        else:
            out[column] = meta[column].astype(str).replace("", "none")
    return out


def _rescale_groups(values: pd.Series) -> np.ndarray:
    factor = values.astype(float)
    return np.select([factor == 1.0, factor < 1.0], ["none", "down (0.5-1x)"], "up (1-2x)")


# groups with a natural order are listed in it; the others alphabetically (numbers by value)
ORDERS = {"texture_group": TEXTURE_GROUPS, "area_bucket": AREA_BUCKET_NAMES,
          "rescale": ("none", "down (0.5-1x)", "up (1-2x)"), "jpeg": ("none", "q<85", "q>=85"),
          "size": ("<512 px", "512-1023 px", ">=1024 px")}


def _ordered_groups(frame: pd.DataFrame, column: str) -> list[tuple[str, pd.DataFrame]]:
    values = frame[column].astype(str)
    order = ORDERS.get(column, ())
    def key(value: str) -> tuple:
        return (order.index(value) if value in order else len(order),
                float(value) if value.replace(".", "", 1).isdigit() else math.inf, value)
    return [(value, frame[values == value]) for value in sorted(values.unique(), key=key)]


def figure_report(rows: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Per figure column and group: images, score, recall, FP rate, mask F1. `rows` is the per-row
    table of `metric.score_frame` (case_id, annotation, prediction, score); `meta` is matched by
    the image's case_id and file (test rows, one image per case_id)."""
    test = meta[meta["image"].str.startswith("test_images/")]
    groups = _figure_groups(test).merge(rows[["case_id", "annotation", "prediction", "score"]], on="case_id")
    if not len(groups):
        raise ProjectError("meta.csv has no row for any scored image (is it the meta.csv of this test set?)")
    records = []
    for column in [c for c in FIGURE_COLUMNS if c in groups.columns]:
        # a compound figure counts under each kind of content it shows
        table = groups.assign(content=groups["content"].str.split("+")).explode("content") \
            if column == "content" else groups
        for value, part in _ordered_groups(table, column):
            report = summarize_scores(part["score"].to_numpy(), (part["annotation"] != AUTHENTIC).to_numpy(),
                                      (part["prediction"] != AUTHENTIC).to_numpy())
            records.append({"column": column, "group": value, "images": report.n_rows, "forged": report.n_forged,
                            "score": report.score, "recall": report.recall, "fp_rate": report.fp_rate,
                            "mask_f1": report.mask_f1})
    return pd.DataFrame(records)


def event_matches(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The events of the scored forged rows, each with `best_f1` (the best pixel F1 of a predicted
    instance against it) and `found` (best_f1 >= FOUND_F1)."""
    table = rows.set_index("case_id")
    events = events[events["case_id"].isin(table.index)].copy()
    best = []
    decoded: dict[str, tuple[list, list]] = {}
    for cid, k in zip(events["case_id"], events["event"].astype(int)):
        if cid not in decoded:
            row = table.loc[cid]
            hw = parse_shape(row["shape"], cid)
            true = rle_decode_instances(row["annotation"], hw)
            pred = [] if row["prediction"] == AUTHENTIC else rle_decode_instances(row["prediction"], hw)
            decoded[cid] = (true, pred)
        true, pred = decoded[cid]
        if not 1 <= k <= len(true):
            raise ProjectError(f"events.csv: case {cid} event {k}, but its solution row has {len(true)} instance(s)")
        best.append(max((pixel_f1(p, true[k - 1]) for p in pred), default=0.0))
    events["best_f1"] = best
    events["found"] = events["best_f1"] >= FOUND_F1
    return events


def event_report(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per event column and group: events, found, event recall."""
    matched = event_matches(rows, events)
    if "rescale" in matched.columns:
        matched["rescale"] = _rescale_groups(matched["rescale"])
    if "operation" in matched.columns:      # an event with two copies: the first copy's (its matrix is recorded)
        matched["operation"] = matched["operation"].astype(str).str.split("+").str[0]
    records = []
    for column in [c for c in EVENT_COLUMNS if c in matched.columns]:
        for value, part in _ordered_groups(matched, column):
            records.append({"column": column, "group": value, "events": len(part), "found": int(part["found"].sum()),
                            "event_recall": float(part["found"].mean())})
    return pd.DataFrame(records)


def format_reports(figures: pd.DataFrame, events: pd.DataFrame) -> str:
    """Both tables as text, one block per column, for the console and the log."""
    lines = ["by figure (score, image recall, FP rate, mask F1 of the true-positive rows):"]
    for column, part in figures.groupby("column", sort=False):
        lines.append(f"  {column}")
        for r in part.itertuples():
            lines.append(f"    {str(r.group):<28} {r.images:>5} img ({r.forged:>4} forged)  score {r.score:.3f}  "
                         f"recall {r.recall:.3f}  FP rate {r.fp_rate:.3f}  mask F1 {r.mask_f1:.3f}")
    return "\n".join(lines + [format_event_report(events)])


def format_event_report(events: pd.DataFrame, found: str = "a predicted instance") -> str:
    """event_report as text, one block per column."""
    lines = [f"by event (found: {found} with pixel F1 >= {FOUND_F1}):"]
    for column, part in events.groupby("column", sort=False):
        lines.append(f"  {column}")
        for r in part.itertuples():
            lines.append(f"    {str(r.group):<28} {r.events:>5} events  found {r.found:>4}  "
                         f"event recall {r.event_recall:.3f}")
    return "\n".join(lines)


def report_by_group(rows: pd.DataFrame, meta_path: Path) -> str:
    """What `--meta` prints in score_submission.py and validate_test.py: both reports of `rows`
    (metric.score_frame's per-row table) against a benchmark's meta.csv and events.csv."""
    meta, events = read_meta(meta_path)
    return format_reports(figure_report(rows, meta), event_report(rows, events))
