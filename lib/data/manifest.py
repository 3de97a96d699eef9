"""The Kaggle training data: which folders hold what, and a cached manifest of every image.

The manifest (one CSV row per training image: label, size, forged-area fraction,
instance count) lets training scripts weight and split samples without loading every
mask at start-up. It is rebuilt incrementally: only rows whose image or mask file changed
(size or modification time) are recomputed.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..errors import DataError
from ..fileio import WriteError, atomic_path
from ..imageio import find_images, load_mask, read_image_size
from ..models.variants import SampleWeights
from ..paths import ROOT, Paths, relative

log = logging.getLogger(__name__)

AUTHENTIC, FORGED = 0, 1
MASK_SUFFIX = ".npy"
# Augmented copies are named <case_id>_aug<k>[_<strength>]; they belong to their parent's group.
_AUGMENTED_NAME = re.compile(r"_aug\d+(_[A-Za-z]+)?$")


@dataclass(frozen=True)
class Source:
    """One folder of training images: its label, and where its masks are (forged only)."""

    name: str
    images: str                 # relative to the data dir
    masks: str | None           # relative to the data dir; None for authentic images
    label: int
    recursive: bool = False
    augmented: bool = False


SOURCES = (
    Source("authentic", "train_images/authentic", None, AUTHENTIC),
    Source("forged", "train_images/forged", "train_masks", FORGED),
    Source("supplemental", "supplemental_images", "supplemental_masks", FORGED, recursive=True),
    Source("forged_augmented", "train_images/forged_augmented", "train_masks_augmented", FORGED,
           augmented=True),
    Source("authentic_augmented", "train_images/authentic_augmented", None, AUTHENTIC,
           augmented=True),
)

MANIFEST_COLUMNS = [
    "image_id", "case_id", "group", "source", "label", "augmented", "image_path", "mask_path",
    "height", "width", "n_instances", "forged_area", "forged_fraction",
    "image_bytes", "image_mtime_ns", "mask_bytes", "mask_mtime_ns", "problem",
]
_STAT_COLUMNS = ["image_bytes", "image_mtime_ns", "mask_bytes", "mask_mtime_ns"]


def group_of(case_id: str) -> str:
    """The split group of an image: its case_id, without any augmentation suffix."""
    return _AUGMENTED_NAME.sub("", case_id)


def _stat(path: Path | None) -> tuple[int, int]:
    if path is None:
        return -1, -1
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _scan(data_dir: Path) -> tuple[list[dict], list[str]]:
    """Every training image and orphan mask with its file stats (no decoding), and one line per
    entry named like an image that is no image file (lib.imageio.find_images)."""
    rows, skipped = [], []
    for source in SOURCES:
        listing = find_images(data_dir / source.images, recursive=source.recursive)
        image_paths = listing.paths
        skipped += listing.skipped
        mask_dir = data_dir / source.masks if source.masks else None
        for image_path in image_paths:
            mask_path = mask_dir / f"{image_path.stem}{MASK_SUFFIX}" if mask_dir else None
            if mask_path is not None and not mask_path.is_file():
                mask_path = None
            rows.append(_base_row(data_dir, source, image_path.stem, image_path, mask_path))
        if mask_dir is not None and mask_dir.is_dir():
            stems = {p.stem for p in image_paths}
            for mask_path in sorted(mask_dir.glob(f"*{MASK_SUFFIX}")):
                if mask_path.stem not in stems:
                    rows.append(_base_row(data_dir, source, mask_path.stem, None, mask_path))
    return rows, skipped


def _base_row(data_dir: Path, source: Source, case_id: str, image_path: Path | None,
              mask_path: Path | None) -> dict:
    image_bytes, image_mtime = _stat(image_path)
    mask_bytes, mask_mtime = _stat(mask_path)
    return {
        "image_id": f"{source.name}/{case_id}",
        "case_id": case_id,
        "group": group_of(case_id),
        "source": source.name,
        "label": source.label,
        "augmented": source.augmented,
        "image_path": image_path.relative_to(data_dir).as_posix() if image_path else "",
        "mask_path": mask_path.relative_to(data_dir).as_posix() if mask_path else "",
        "image_bytes": image_bytes, "image_mtime_ns": image_mtime,
        "mask_bytes": mask_bytes, "mask_mtime_ns": mask_mtime,
    }


def _measure(data_dir: Path, row: dict) -> dict:
    """Fill size, instance count and forged area of one scanned row, or its `problem`."""
    row = dict(row, height=-1, width=-1, n_instances=0, forged_area=0, forged_fraction=0.0,
               problem="")
    image_path = data_dir / row["image_path"] if row["image_path"] else None
    mask_path = data_dir / row["mask_path"] if row["mask_path"] else None
    if image_path is None:
        row["problem"] = f"{mask_path}: mask without an image"
        return row
    if row["label"] == FORGED and mask_path is None:
        row["problem"] = f"{image_path}: forged image without a mask"
        return row
    try:
        row["height"], row["width"] = read_image_size(image_path)
        if mask_path is not None:
            masks = load_mask(mask_path, expected_hw=(row["height"], row["width"]))
            if masks.count == 0:
                raise DataError(f"{mask_path}: mask has no forged pixel")
            area = int(np.count_nonzero(masks.union))
            row.update(n_instances=masks.count, forged_area=area,
                       forged_fraction=area / (row["height"] * row["width"]))
    except DataError as exc:
        row["problem"] = str(exc)
    return row


def build_manifest(paths: Paths, previous: pd.DataFrame | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Scan the data dir and return the manifest, re-using rows of `previous` whose files are unchanged."""
    data_dir = paths.data_dir
    scanned, skipped = _scan(data_dir)
    cached: dict[str, dict] = {}
    if previous is not None and len(previous):
        cached = {r["image_id"]: r for r in previous.to_dict("records")}
    rows, todo = [], []
    for row in scanned:
        old = cached.get(row["image_id"])
        same = old is not None and all(
            old[k] == row[k] for k in ("image_path", "mask_path", *_STAT_COLUMNS))
        if same:
            rows.append(old)
        else:
            todo.append(row)
    for row in tqdm(todo, desc="manifest", unit="img", disable=not progress or len(todo) < 50):
        rows.append(_measure(data_dir, row))
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    frame["problem"] = frame["problem"].fillna("").astype(str)
    frame = frame.sort_values("image_id", kind="stable").reset_index(drop=True)
    frame.attrs["skipped"] = skipped      # not rows: they have no case_id to be one
    return frame


def read_manifest_csv(path: Path) -> pd.DataFrame | None:
    """Read a cached manifest, or None when it is missing or from another version of the columns."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={"case_id": str, "group": str, "image_id": str},
                            keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("%s: unreadable manifest cache, rebuilding (%s)", path, exc)
        return None
    if list(frame.columns) != MANIFEST_COLUMNS:
        return None
    return frame


def load_manifest(paths: Paths, progress: bool = True, include_problems: bool = False,
                  report: bool = True) -> pd.DataFrame:
    """The manifest of the training data, rebuilt only where files changed since the cache.

    Images with a problem (forged without mask, mask without image, shape mismatch,
    unreadable file) are reported once per call, one line each, and left out unless
    `include_problems`. Raises DataError when the data dir holds no training image.
    """
    cache = paths.manifest
    previous = read_manifest_csv(cache)
    manifest = build_manifest(paths, previous, progress=progress)
    if len(manifest) and (previous is None or not manifest.equals(previous)):   # no images: nothing to keep
        try:
            with atomic_path(cache) as tmp:
                manifest.to_csv(tmp, index=False)
        except WriteError as exc:
            log.warning("%s; continuing without the manifest cache", exc)
    problems = manifest[manifest["problem"] != ""]
    if report:
        for line in manifest.attrs.get("skipped", []):
            log.warning("%s", line)
        for message in problems["problem"].head(20):
            log.warning("%s (skipped)", message)
        if len(problems) > 20:
            log.warning("... and %d more problems, listed in the 'problem' column of %s",
                        len(problems) - 20, cache)
    usable = manifest if include_problems else manifest[manifest["problem"] == ""]
    if not len(manifest[manifest["problem"] == ""]):
        elsewhere = [folder for folder in sorted(ROOT.iterdir()) if folder.is_dir() and folder != paths.data_dir
                     and (folder / "train_images").is_dir()]
        hint = (f"; training data is in {relative(elsewhere[0])}/: pass --data-dir {relative(elsewhere[0])}"
                if elsewhere else "; see README for how to fetch the data or make demo data")
        raise DataError(f"{paths.data_dir}: no usable training image found "
                        f"(expected train_images/authentic, train_images/forged and train_masks){hint}")
    return usable.reset_index(drop=True)


# Two bucketings of the forged area, no more: the sampler's three (SampleWeights' edges, which the
# held-out split also stratifies by) and the reports' five (lib.competition.metric.AREA_BUCKET_EDGES).
AREA_BUCKETS = (0.0, SampleWeights.tiny_below, SampleWeights.medium_below, 1.0)


def area_bucket(fraction: pd.Series) -> pd.Series:
    """Label forged-area fractions by the sampler's buckets: '<1%', '1-5%' or '>5%'."""
    labels = [f"<{AREA_BUCKETS[1]:.0%}", f"{AREA_BUCKETS[1]:.0%}-{AREA_BUCKETS[2]:.0%}".replace("%-", "-"),
              f">{AREA_BUCKETS[2]:.0%}"]
    return pd.cut(fraction, bins=list(AREA_BUCKETS), labels=labels, include_lowest=True).astype(str)


def summarize_manifest(manifest: pd.DataFrame) -> str:
    """A short human-readable table of a manifest: images per source, instances, area buckets, problems."""
    ok = manifest[manifest["problem"] == ""]
    forged = ok[ok["label"] == FORGED]
    lines = ["images per source:"]
    for source, count in ok.groupby("source", sort=False).size().items():
        lines.append(f"  {source:<22}{count:>7}")
    twins = len(set(forged["group"]) & set(ok.loc[ok["label"] == AUTHENTIC, "group"]))
    lines.append(f"forged images with an authentic twin (same case_id): {twins} of {len(forged)}")
    if len(forged):
        counts = forged["n_instances"].value_counts().sort_index()
        lines.append("instances per forged image: "
                     + ", ".join(f"{n}: {c}" for n, c in counts.items()))
        buckets = area_bucket(forged["forged_fraction"]).value_counts()
        lines.append("forged area: " + ", ".join(f"{b}: {buckets.get(b, 0)}" for b in ("<1%", "1-5%", ">5%"))
                     + f" (median {forged['forged_fraction'].median():.2%})")
    if len(ok):
        lines.append(f"image sizes (H x W): {ok['height'].min()}-{ok['height'].max()} x "
                     f"{ok['width'].min()}-{ok['width'].max()}")
    bad = manifest[manifest["problem"] != ""]
    lines.append(f"skipped with a problem: {len(bad)}")
    lines += [f"  {p}" for p in bad["problem"].head(20)]
    return "\n".join(lines)
