"""Cases and datasets: a figure drawn, forged, finished (grayscale, JPEG) and written in the
exact Kaggle layout, with a solution CSV for the test images."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import ProjectError
from ..imageio import write_png
from ..rle import rle_encode_instances
from ..submission import write_csv
from .composition import MIN_PANEL, draw_figure
from .forgeries import forge

# Folders and files this module writes under its output folder (and deletes on overwrite).
GENERATED = ("train_images", "train_masks", "supplemental_images", "supplemental_masks",
             "test_images", "solution.csv", "sample_submission.csv", "train_manifest.csv")

# Per-image generator streams: adding test images never changes a training image.
_STREAM_TRAIN, _STREAM_SUPPLEMENTAL, _STREAM_TEST, _STREAM_IDS = 0, 1, 2, 3

# Real training masks: 1 instance ~68 %, 2 ~25 %, 3 ~6 %.
EVENT_COUNTS, EVENT_PROBS = (1, 2, 3), (0.65, 0.25, 0.10)



@dataclass
class Case:
    """One generated case: the authentic image (the twin), and for a forgery its forged image
    and masks. Images are RGB (H, W, 3) or grayscale (H, W) uint8, already JPEG-degraded if drawn."""

    authentic: np.ndarray
    forged: np.ndarray | None = None
    masks: np.ndarray | None = None


def _finish(rng: np.random.Generator, image: np.ndarray, gray: bool, jpeg_prob: float) -> np.ndarray:
    """Convert to grayscale if the case is grayscale; JPEG re-compress with probability jpeg_prob."""
    if gray:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if rng.random() < jpeg_prob:
        quality = int(rng.integers(60, 96))
        bgr = image if gray else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        image = decoded if gray else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return image


def make_case(seed: int, stream: int, index: int, forged: bool, min_size: int = 192,
              max_size: int = 640, jpeg_prob: float = 0.2) -> Case:
    """Draw case `index` of `stream` from its own generator; forge it when `forged`."""
    rng = np.random.default_rng([seed, stream, index])
    h, w = (int(s) for s in rng.integers(min_size, max_size + 1, 2))
    gray = rng.random() < 0.1
    figure = draw_figure(rng, h, w)
    # both JPEG decisions are drawn for every case, so they are independent of each other
    jpeg_rng = np.random.default_rng([seed, stream, index, 1])
    case = Case(_finish(jpeg_rng, figure.render(), gray, jpeg_prob))
    if forged:
        n_events = int(rng.choice(EVENT_COUNTS, p=EVENT_PROBS))
        content, masks, _ = forge(rng, figure.content, figure.panels, n_events)
        case.forged = _finish(jpeg_rng, figure.render(content), gray, jpeg_prob)
        case.masks = masks
    return case


def _case_ids(seed: int, n: int) -> list[int]:
    """n distinct Kaggle-like case ids (integers of 2-5 digits)."""
    rng = np.random.default_rng([seed, _STREAM_IDS])
    return [int(i) for i in rng.choice(np.arange(10, 99_999), n, replace=False)]


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless `overwrite`; then delete only what this module generates."""
    if out.exists() and not out.is_dir():
        raise ProjectError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ProjectError(f"{out}: folder is not empty; pass --overwrite to replace "
                               f"the demo data in it")
        for name in GENERATED:
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
