"""Cases and datasets: a figure drawn, forged, finished (grayscale, JPEG) and written in the
exact Kaggle layout, with a solution CSV for the test images."""
from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from ...errors import ProjectError
from ...fileio import atomic_path
from ...imageio import write_png
from ...competition.metric import area_bucket_names
from ...competition.rle import rle_encode_instances
from ...competition.submission import write_csv
from .composition import MIN_PANEL, Panel, draw_figure
from .forgeries import Event, forge
from .style import BENCHMARK, DEMO, HARD_KINDS, Style

# Folders and files this module writes under its output folder (and deletes on overwrite).
GENERATED = ("train_images", "train_masks", "supplemental_images", "supplemental_masks",
             "test_images", "solution.csv", "sample_submission.csv", "train_manifest.csv")

# Per-image generator streams: adding test images never changes a training image.
_STREAM_TRAIN, _STREAM_SUPPLEMENTAL, _STREAM_TEST, _STREAM_IDS = 0, 1, 2, 3

# Real training masks: 1 instance ~68 %, 2 ~25 %, 3 ~6 %.
EVENT_COUNTS, EVENT_PROBS = (1, 2, 3), (0.65, 0.25, 0.10)



@dataclass
class Case:
    """One generated case: the authentic image (the twin), and for a forgery its forged image,
    masks and events. Images are RGB (H, W, 3) or grayscale (H, W) uint8, already finished as
    saved (grayscale, rescaled, noised, JPEG-degraded where drawn); masks (n, H, W) at that size.
    `info` says what was drawn and done (see `figure_info`); `texture` holds each event's median
    7x7 local grey-level std in the copied region, measured before finishing."""

    authentic: np.ndarray
    forged: np.ndarray | None = None
    masks: np.ndarray | None = None
    events: list[Event] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    texture: list[float] = field(default_factory=list)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    gray = image.ndim == 2
    bgr = image if gray else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    return decoded if gray else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def _finish(rng: np.random.Generator, image: np.ndarray, gray: bool, style: Style,
            scale: float = 1.0, noise: float = 0.0, noise_rng: np.random.Generator | None = None
            ) -> tuple[np.ndarray, int]:
    """The image as saved: grayscale if the case is, rescaled by `scale`, `noise` (sigma) added,
    then JPEG re-compressed with probability style.jpeg_prob. Returns (image, JPEG quality or 0)."""
    if gray:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if noise > 0:
        image = np.clip(image + noise_rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    quality = 0
    if rng.random() < style.jpeg_prob:
        quality = int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1))
        image = _jpeg(image, quality)
    return image, quality


def _resize_masks(masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Instance masks (n, H, W) at another size, nearest neighbour (0/1 stays 0/1)."""
    if masks.shape[1:] == tuple(hw):
        return masks
    return np.stack([cv2.resize(m, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST) for m in masks])


def local_texture(image: np.ndarray, mask: np.ndarray) -> float:
    """Median over `mask` of the 7x7 local standard deviation of the grey levels: under 3 is a flat
    region, 3-8 weakly textured, 8 and over textured (TEXTURE_GROUPS)."""
    gray = (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image).astype(np.float32)
    mean = cv2.blur(gray, (7, 7))
    var = np.maximum(cv2.blur(gray * gray, (7, 7)) - mean * mean, 0)
    return float(np.median(np.sqrt(var[mask.astype(bool)]))) if mask.any() else 0.0


def make_case(seed: int, stream: int, index: int, forged: bool, min_size: int = 192,
              max_size: int = 640, jpeg_prob: float | None = None, style: Style = DEMO) -> Case:
    """Draw case `index` of `stream` from its own generator in `style`; forge it when `forged`.
    `jpeg_prob` overrides the style's."""
    if jpeg_prob is not None:
        style = replace(style, jpeg_prob=jpeg_prob)
    rng = np.random.default_rng([seed, stream, index])
    h, w = (int(s) for s in rng.integers(min_size, max_size + 1, 2))
    gray = rng.random() < style.gray_prob
    # the saving decisions come from generators of their own, so the figure drawn does not depend
    # on them; both JPEG decisions are drawn for every case, so they are independent of each other
    jpeg_rng = np.random.default_rng([seed, stream, index, 1])
    save_rng = np.random.default_rng([seed, stream, index, 2])
    rescaled = save_rng.random() < style.rescale_prob
    scale = float(np.exp(save_rng.uniform(*np.log(style.rescale_range)))) if rescaled else 1.0
    noise = float(save_rng.uniform(*style.noise_sigma)) if save_rng.random() < style.noise_prob else 0.0
    hard = ""
    kinds = style.kinds
    if not forged and save_rng.random() < style.hard_authentic_prob:
        hard = str(HARD_KINDS[save_rng.integers(len(HARD_KINDS))])
        kinds = {hard: 1.0}
    figure = draw_figure(rng, h, w, kinds, style.realistic_layout)
    authentic, quality = _finish(jpeg_rng, figure.render(), gray, style, scale, noise, save_rng)
    case = Case(authentic, panels=figure.panels)
    twin_quality = quality
    if forged:
        n_events = int(rng.choice(EVENT_COUNTS, p=EVENT_PROBS))
        min_texture = 0.0 if save_rng.random() < style.flat_source_prob else 8.0
        content, masks, case.events = forge(rng, figure.content, figure.panels, n_events, min_texture)
        case.forged, quality = _finish(jpeg_rng, figure.render(content), gray, style, scale, noise, save_rng)
        case.masks = _resize_masks(masks, case.forged.shape[:2])
        case.texture = [local_texture(figure.content, e.source) for e in case.events]
    shown = case.forged if forged else case.authentic
    case.info = {"gray": gray, "jpeg": quality, "rescale": round(scale, 3), "noise": round(noise, 2), "hard": hard,
                 "height": int(shown.shape[0]), "width": int(shown.shape[1]),
                 "content": "+".join(sorted({p.kind for p in figure.panels})), "panels": len(figure.panels),
                 "twin_jpeg": twin_quality}
    return case


def _case_ids(seed: int, n: int) -> list[int]:
    """n distinct Kaggle-like case ids (integers of 2-5 digits)."""
    rng = np.random.default_rng([seed, _STREAM_IDS])
    return [int(i) for i in rng.choice(np.arange(10, 99_999), n, replace=False)]


def _prepare_out(out: Path, overwrite: bool, generated: tuple[str, ...] = GENERATED) -> None:
    """Refuse a non-empty folder unless `overwrite`; then delete only what this module generates."""
    if out.exists() and not out.is_dir():
        raise ProjectError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ProjectError(f"{out}: folder is not empty; pass --overwrite to replace "
                               f"the generated data in it")
        for name in generated:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    for folder in ("train_images/authentic", "train_images/forged", "train_masks",
                   "supplemental_images", "supplemental_masks", "test_images"):
        (out / folder).mkdir(parents=True, exist_ok=True)


def _check_args(n_forged: int, twin_fraction: float, n_test: int, test_forged_fraction: float,
                n_supplemental: int, min_size: int, max_size: int, jpeg_prob: float) -> None:
    if min(n_forged, n_test, n_supplemental) < 0:
        raise ProjectError("image counts must be >= 0")
    fractions = {"twin_fraction": twin_fraction, "test_forged_fraction": test_forged_fraction,
                 "jpeg_prob": jpeg_prob}
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ProjectError(f"{name} must be between 0 and 1, got {value}")
    if not MIN_PANEL <= min_size <= max_size:
        raise ProjectError(f"need {MIN_PANEL} <= min_size <= max_size, got {min_size} and {max_size}")


def make_demo_dataset(out_dir: str | Path, n_forged: int = 60, twin_fraction: float = 0.85,
                      n_test: int = 24, test_forged_fraction: float = 0.5, n_supplemental: int = 4,
                      min_size: int = 192, max_size: int = 640, seed: int = 0, jpeg_prob: float = 0.2,
                      overwrite: bool = False, progress: bool = True) -> dict:
    """Write a synthetic dataset in the Kaggle layout under `out_dir` (see the module docstring).

    Returns a summary: files per folder ("counts"), forged test images ("test_forged"), forged
    images per instance count ("instances", over train, supplemental and test), and the min and
    max fraction of an image that its masks cover ("area_fraction")."""
    _check_args(n_forged, twin_fraction, n_test, test_forged_fraction, n_supplemental,
                min_size, max_size, jpeg_prob)
    out = Path(out_dir)
    _prepare_out(out, overwrite)
    ids = _case_ids(seed, n_forged + n_supplemental + n_test)
    train_ids, supp_ids, test_ids = (ids[:n_forged], ids[n_forged:n_forged + n_supplemental],
                                     ids[n_forged + n_supplemental:])
    pick = np.random.default_rng([seed, _STREAM_IDS, 1])
    twins = set(pick.permutation(n_forged)[:round(twin_fraction * n_forged)].tolist())
    test_forged = set(pick.permutation(n_test)[:round(test_forged_fraction * n_test)].tolist())
    jobs = ([(_STREAM_TRAIN, i, cid, True) for i, cid in enumerate(train_ids)]
            + [(_STREAM_SUPPLEMENTAL, i, cid, True) for i, cid in enumerate(supp_ids)]
            + [(_STREAM_TEST, i, cid, i in test_forged) for i, cid in enumerate(test_ids)])
    counts = dict.fromkeys(("train_images/forged", "train_images/authentic", "train_masks",
                            "supplemental_images", "supplemental_masks", "test_images"), 0)
    n_test_forged = 0
    instances: dict[int, int] = {}
    fractions: list[float] = []
    solution: list[tuple[int, str, str]] = []
    for stream, index, cid, forged in tqdm(jobs, desc="demo images", disable=not progress):
        case = make_case(seed, stream, index, forged, min_size, max_size, jpeg_prob)
        if forged:
            instances[len(case.masks)] = instances.get(len(case.masks), 0) + 1
            fractions.append(float(case.masks.any(axis=0).mean()))
        if stream == _STREAM_TEST:
            image = case.forged if forged else case.authentic
            write_png(out / "test_images" / f"{cid}.png", image)
            annotation = rle_encode_instances(list(case.masks)) if forged else "authentic"
            solution.append((cid, annotation, json.dumps(list(image.shape[:2]))))
            counts["test_images"] += 1
            n_test_forged += int(forged)
            continue
        images, masks = (("train_images/forged", "train_masks") if stream == _STREAM_TRAIN
                         else ("supplemental_images", "supplemental_masks"))
        write_png(out / images / f"{cid}.png", case.forged)
        np.save(out / masks / f"{cid}.npy", case.masks)
        counts[images] += 1
        counts[masks] += 1
        if stream == _STREAM_TRAIN and index in twins:
            write_png(out / "train_images/authentic" / f"{cid}.png", case.authentic)
            counts["train_images/authentic"] += 1
    solution.sort()
    write_csv(out / "solution.csv", ["case_id", "annotation", "shape"],
               [[str(cid), annotation, shape] for cid, annotation, shape in solution])
    write_csv(out / "sample_submission.csv", ["case_id", "annotation"],
               [[str(cid), "authentic"] for cid, _, _ in solution])
    return {"counts": counts, "test_forged": n_test_forged, "instances": dict(sorted(instances.items())),
            "area_fraction": (min(fractions), max(fractions)) if fractions else (0.0, 0.0)}


def format_summary(summary: dict, out_dir: str | Path, seconds: float) -> str:
    """The few lines bin/make_demo_data.py prints after generating."""
    counts = summary["counts"]
    lo, hi = summary["area_fraction"]
    lines = [f"wrote {out_dir}:"]
    lines += [f"  {name:<24}{n}" for name, n in counts.items()]
    lines.append(f"  {'solution.csv':<24}{counts['test_images']} rows ({summary['test_forged']} forged)")
    lines.append("  instances per forged image: "
                 + ", ".join(f"{k}: {v}" for k, v in summary["instances"].items()))
    lines.append(f"  forged area fraction: {100 * lo:.1f} % .. {100 * hi:.1f} %")
    lines.append(f"  done in {seconds:.1f} s")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the benchmark

_STREAM_BENCHMARK = 4
# the texture of a copied region (local_texture): flat, weakly textured, textured
TEXTURE_EDGES = (3.0, 8.0)
TEXTURE_GROUPS = ("flat <3", "weak 3-8", "textured >=8")
BENCHMARK_FILES = ("meta.csv", "events.csv")


def texture_group(value: float) -> str:
    return TEXTURE_GROUPS[int(np.searchsorted(TEXTURE_EDGES, value, side="right"))]


def _panel_at(panels: list[Panel], mask: np.ndarray) -> Panel | None:
    """The panel holding most of `mask`."""
    counts = [int(mask[p.y0:p.y1, p.x0:p.x1].sum()) for p in panels]
    return panels[int(np.argmax(counts))] if panels and max(counts) else None


def event_rows(cid: str, case: Case) -> list[dict]:
    """One row per duplication event of a forged case (see make_benchmark)."""
    rows = []
    h, w = case.masks.shape[1:]
    for k, (event, texture) in enumerate(zip(case.events, case.texture)):
        source = _panel_at(case.panels, event.source)
        targets = [_panel_at(case.panels, c.mask) for c in event.copies]
        fraction = float(case.masks[k].mean())
        rows.append({"case_id": cid, "event": k + 1, "kind": event.kind,
                     "operation": "+".join(c.transform for c in event.copies),
                     "matrix": json.dumps(np.round(event.copies[0].matrix, 4).tolist()),
                     "content": source.kind if source else "",
                     "placement": "within panel" if all(t == source for t in targets) else "across panels",
                     "copies": len(event.copies), "feathered": event.feathered, "area_fraction": round(fraction, 5),
                     "area_bucket": str(area_bucket_names(np.array([fraction]))[0]),
                     "texture": round(texture, 2), "texture_group": texture_group(texture),
                     "rescale": case.info["rescale"], "height": h, "width": w})
    return rows


def _benchmark_job(job: tuple) -> tuple[list[dict], list[dict], list]:
    """Draw and write one benchmark case; returns (meta rows, event rows, solution row or [])."""
    out, seed, index, cid, test, forged, twin, min_size, max_size, style = job
    cv2.setNumThreads(1)
    case = make_case(seed, _STREAM_BENCHMARK, index, forged, min_size, max_size, style=style)
    info = {k: v for k, v in case.info.items() if k != "twin_jpeg"}
    split = "test" if test else "train"
    meta, solution = [], []

    def record(image: str, label: str, twin: bool, events: int, jpeg: int) -> None:
        meta.append({"case_id": cid, "image": image, "split": split, "label": label, "twin": twin,
                     "events": events, **info, "jpeg": jpeg})

    if test:
        image = case.forged if forged else case.authentic
        write_png(out / "test_images" / f"{cid}.png", image)
        annotation = rle_encode_instances(list(case.masks)) if forged else "authentic"
        solution = [cid, annotation, json.dumps(list(image.shape[:2]))]
        record(f"test_images/{cid}.png", "forged" if forged else "authentic", False, len(case.events), info["jpeg"])
    elif forged:
        write_png(out / "train_images" / "forged" / f"{cid}.png", case.forged)
        np.save(out / "train_masks" / f"{cid}.npy", case.masks)
        record(f"train_images/forged/{cid}.png", "forged", False, len(case.events), info["jpeg"])
    if not test and (twin or not forged):
        write_png(out / "train_images" / "authentic" / f"{cid}.png", case.authentic)
        record(f"train_images/authentic/{cid}.png", "authentic", forged, 0, case.info["twin_jpeg"])
    return meta, (event_rows(cid, case) if forged else []), solution


def make_benchmark(out_dir: str | Path, n: int = 1000, seed: int = 0, test_fraction: float = 0.4,
                   forged_fraction: float = 0.5, twin_fraction: float = 0.85, min_size: int = 256,
                   max_size: int = 1024, workers: int = 2, overwrite: bool = False, progress: bool = True,
                   style: Style = BENCHMARK) -> dict:
    """Write a development benchmark of `n` figures (cases) under `out_dir` in the Kaggle layout:
    about `test_fraction` of the cases as test_images/ + solution.csv, the rest as train_images/
    (forged with train_masks/, and their authentic twins under the same case_id) for training and
    validation; plus meta.csv (one row per image file: what was drawn and how it was saved) and
    events.csv (one row per duplication event: operation, matrix, content, placement, area
    bucket, texture of the copied region). Each case's figure depends on (seed, its index) only,
    not on the split, `n` or `workers`. Returns counts."""
    if n < 2:
        raise ProjectError(f"--n {n}: a benchmark needs at least 2 figures")
    for name, value in (("test_fraction", test_fraction), ("forged_fraction", forged_fraction),
                        ("twin_fraction", twin_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ProjectError(f"{name} must be between 0 and 1, got {value}")
    out = Path(out_dir)
    _prepare_out(out, overwrite, GENERATED + BENCHMARK_FILES)
    ids = _case_ids(seed, n)
    pick = np.random.default_rng([seed, _STREAM_IDS, 2])
    test = set(pick.permutation(n)[:round(test_fraction * n)].tolist())
    forged = pick.random(n) < forged_fraction
    twins = pick.random(n) < twin_fraction
    jobs = [(out, seed, i, str(cid), i in test, bool(forged[i]), bool(twins[i]), min_size, max_size, style)
            for i, cid in enumerate(ids)]
    meta, events, solution = [], [], []
    # spawned, not forked: a fork of a process whose threads (torch, OpenCV) hold locks can hang
    with ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn")) as pool:
        for rows, event_list, row in tqdm(pool.map(_benchmark_job, jobs, chunksize=4), total=len(jobs),
                                          desc="benchmark figures", disable=not progress):
            meta += rows
            events += event_list
            if row:
                solution.append(row)
    solution.sort(key=lambda r: int(r[0]))
    write_csv(out / "solution.csv", ["case_id", "annotation", "shape"], solution)
    write_csv(out / "sample_submission.csv", ["case_id", "annotation"], [[r[0], "authentic"] for r in solution])
    meta_frame = pd.DataFrame(meta)
    meta_frame = meta_frame.iloc[np.lexsort((meta_frame["image"], meta_frame["case_id"].astype(int),
                                             meta_frame["split"]))].reset_index(drop=True)
    event_frame = pd.DataFrame(events)
    for name, frame in (("meta.csv", meta_frame), ("events.csv", event_frame)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    return {"figures": n, "test": len(solution), "test_forged": sum(r[1] != "authentic" for r in solution),
            "train_images": int((meta_frame["split"] == "train").sum()),
            "train_forged": int(((meta_frame["split"] == "train") & (meta_frame["label"] == "forged")).sum()),
            "events": len(event_frame),
            "texture": event_frame["texture_group"].value_counts().to_dict() if len(event_frame) else {}}
