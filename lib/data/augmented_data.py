"""Phase 0: augmented copies of the training images, written next to the originals in the Kaggle
layout so that the manifest picks them up (sources forged_augmented / authentic_augmented).

Forged copies (`train_images/forged_augmented/<id>_aug<k>.png` + `train_masks_augmented/<id>_aug<k>.npy`)
move every instance mask with exactly the image's geometry, keep the instances separate, and
are skipped when the transform crops the whole forgery away. Authentic copies
(`train_images/authentic_augmented/<id>_aug<k>_<strength>.png`) cycle through the strengths.

Only training-split images are augmented: copies of a validation image would be excluded from
training anyway (lib.data.split), so making them would waste time and disk. Each copy's random state
comes from (seed, image id, k) alone, so the output does not depend on the number of workers
or the order, and an interrupted run resumes: copies already on disk are kept (unless
`overwrite`). Mask first, image last, each written atomically: a copy exists once its image does.
"""
from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
from tqdm import tqdm

from ..draw import grid, outline_instances
from ..errors import DataError, ProjectError
from ..fileio import atomic_path
from ..imageio import load_image, load_mask, write_png
from ..paths import Paths
from .augment import AUTHENTIC_PRESETS, forged_copy_transforms
from .manifest import MASK_SUFFIX, SOURCES, load_manifest
from .split import load_or_make_split, split_rows

log = logging.getLogger(__name__)

_SOURCE = {s.name: s for s in SOURCES}
FORGED_OUT, AUTHENTIC_OUT = _SOURCE["forged_augmented"], _SOURCE["authentic_augmented"]


@dataclass
class Copy:
    """One augmented copy to make: from which manifest row, under which name, with which seed."""

    image_path: Path
    mask_path: Path | None        # forged only
    name: str                     # output stem
    seed: int
    transforms: Callable[[int, int], list[A.BasicTransform]]   # (height, width) -> transforms


@dataclass
class CopyResult:
    name: str
    status: str                   # written | existing | cropped | failed
    problem: str = ""
    dropped_instances: int = 0    # instances cropped away from a copy that kept others
    sample: tuple | None = None   # (job, image, instances) of a written copy, for the sample sheet


@dataclass
class AugmentReport:
    """What a generation run did, for the log and the script's summary line."""

    kind: str
    originals: int
    held_out: int                 # validation-split images left alone
    counts: dict = field(default_factory=lambda: {"written": 0, "existing": 0, "cropped": 0, "failed": 0})
    dropped_instances: int = 0
    problems: list[str] = field(default_factory=list)
    samples: list[tuple] = field(default_factory=list)   # (Copy, image, instances or None)
    seconds: float = 0.0

    def summary(self) -> str:
        c = self.counts
        line = (f"{self.kind}: {self.originals} training images -> {c['written']} copies written, "
                f"{c['existing']} already there, "
                + (f"{c['cropped']} skipped (forgery cropped away), " if c["cropped"] else "")
                + f"{c['failed']} failed; {self.held_out} validation images not augmented")
        if self.dropped_instances:
            line += f"; {self.dropped_instances} instance(s) cropped out of copies that kept others"
        total = sum(c.values())
        return line + f"; {self.seconds:.1f} s ({total / max(self.seconds, 1e-9):.1f} copies/s)"


def copy_seed(seed: int, image_id: str, k: int) -> int:
    """The random seed of copy k of an image: a function of (seed, image id, k) only."""
    return int(np.random.SeedSequence([seed, zlib.crc32(image_id.encode()), k]).generate_state(1)[0])


def _make_copy(job: Copy, out_images: Path, out_masks: Path | None, overwrite: bool, keep_sample: bool
               ) -> CopyResult:
    image_out = out_images / f"{job.name}.png"
    mask_out = out_masks / f"{job.name}{MASK_SUFFIX}" if out_masks else None
    if not overwrite and image_out.is_file() and (mask_out is None or mask_out.is_file()):
        return CopyResult(job.name, "existing")
    try:
        image = load_image(job.image_path)
        height, width = image.shape[:2]
        compose = A.Compose(job.transforms(height, width), seed=job.seed)
        if job.mask_path is None:
            out, instances = compose(image=image), None
        else:
            masks = load_mask(job.mask_path, expected_hw=(height, width)).instances.astype(np.uint8)
            out = compose(image=image, masks=list(masks))
            moved = np.stack(out["masks"]).astype(bool)
            kept = moved.reshape(len(moved), -1).any(axis=1)
            if not kept.any():
                return CopyResult(job.name, "cropped")
            instances = moved[kept].astype(np.uint8)
            with atomic_path(mask_out) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, instances)
        write_png(image_out, out["image"])
    except (DataError, ProjectError) as exc:
        return CopyResult(job.name, "failed", str(exc))
    dropped = 0 if instances is None else int((~kept).sum())
    return CopyResult(job.name, "written", dropped_instances=dropped,
                      sample=(job, out["image"], instances) if keep_sample else None)


def _run(kind: str, jobs: list[Copy], originals: int, held_out: int, out_images: Path, out_masks: Path | None,
         workers: int, overwrite: bool, progress: bool, samples: int) -> AugmentReport:
    out_images.mkdir(parents=True, exist_ok=True)
    if out_masks:
        out_masks.mkdir(parents=True, exist_ok=True)
    report = AugmentReport(kind, originals, held_out)
    started = time.perf_counter()
    # samples: the first copy of evenly spaced originals (deterministic, whatever the worker count)
    spaced = np.linspace(0, len(jobs) - 1, min(samples, len(jobs))).astype(int) if jobs else []
    wanted = {jobs[i].name for i in spaced}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(lambda j: _make_copy(j, out_images, out_masks, overwrite, j.name in wanted), jobs)
        for result in tqdm(results, total=len(jobs), desc=kind, unit="copy", disable=not progress):
            report.counts[result.status] += 1
            report.dropped_instances += result.dropped_instances
            if result.problem:
                report.problems.append(result.problem)
                log.warning("%s", result.problem)
            if result.sample is not None:
                report.samples.append(result.sample)
    report.seconds = time.perf_counter() - started
    log.info("%s", report.summary())
    return report


def _training_originals(paths: Paths, source: str, progress: bool) -> tuple[pd.DataFrame, int]:
    """Usable original rows of `source` in the training split, and how many it has in validation."""
    manifest = load_manifest(paths, progress=progress)
    train_rows, val_rows = split_rows(manifest, load_or_make_split(paths, manifest))
    rows = train_rows[(train_rows["source"] == source) & (train_rows["problem"] == "")]
    return rows.reset_index(drop=True), int((val_rows["source"] == source).sum())


def generate_forged(paths: Paths, copies: int = 3, seed: int = 42, workers: int = 2, overwrite: bool = False,
                    limit: int | None = None, progress: bool = True, samples: int = 8) -> AugmentReport:
    """`copies` augmented copies of each training-split forged image, masks moved with them."""
    if copies < 1:
        raise ProjectError(f"--copies {copies}: must be at least 1")
    rows, held_out = _training_originals(paths, "forged", progress)
    rows = rows.head(limit) if limit else rows
    jobs = [Copy(paths.data_dir / row.image_path, paths.data_dir / row.mask_path, f"{row.case_id}_aug{k}",
                 copy_seed(seed, row.image_id, k), forged_copy_transforms)
            for row in rows.itertuples() for k in range(copies)]
    return _run("forged copies", jobs, len(rows), held_out, paths.data_dir / FORGED_OUT.images,
                paths.data_dir / FORGED_OUT.masks, workers, overwrite, progress, samples)


def parse_strengths(text: str | Sequence[str]) -> list[str]:
    """'light,medium' -> ['light', 'medium']; unknown names list the known ones."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in AUTHENTIC_PRESETS]
    if unknown or not names:
        raise ProjectError(f"--strengths {','.join(names) or repr(text)}: use names from "
                           f"{', '.join(AUTHENTIC_PRESETS)}")
    return names


def generate_authentic(paths: Paths, multiplier: int = 3, strengths: Sequence[str] = tuple(AUTHENTIC_PRESETS),
                       seed: int = 42, workers: int = 2, overwrite: bool = False, limit: int | None = None,
                       progress: bool = True, samples: int = 8) -> AugmentReport:
    """`multiplier` copies of each training-split authentic image; copy k uses strength
    strengths[k % len(strengths)] (the default gives one light, one medium, one strong)."""
    if multiplier < 1:
        raise ProjectError(f"--copies {multiplier}: must be at least 1")
    strengths = parse_strengths(strengths)
    rows, held_out = _training_originals(paths, "authentic", progress)
    rows = rows.head(limit) if limit else rows
    jobs = []
    for row in rows.itertuples():
        for k in range(multiplier):
            strength = strengths[k % len(strengths)]
            recipe = AUTHENTIC_PRESETS[strength]
            jobs.append(Copy(paths.data_dir / row.image_path, None, f"{row.case_id}_aug{k}_{strength}",
                             copy_seed(seed, row.image_id, k), lambda h, w, recipe=recipe: recipe()))
    return _run("authentic copies", jobs, len(rows), held_out, paths.data_dir / AUTHENTIC_OUT.images,
                None, workers, overwrite, progress, samples)


def sample_sheet(report: AugmentReport, columns: int = 4) -> np.ndarray | None:
    """Each sampled original beside its copy, forged ones with their instances outlined; None
    when the run wrote no copy."""
    if not report.samples:
        return None
    tiles, captions = [], []
    for job, image, instances in report.samples:
        original = load_image(job.image_path)
        if job.mask_path is not None:
            original = outline_instances(original, load_mask(job.mask_path).instances)
            image = outline_instances(image, instances)
        tiles += [original, image]
        captions += [f"{job.image_path.stem} original", job.name]
    return grid(tiles, captions, columns=columns)


def finish(report: AugmentReport, log_file: Path | None) -> int:
    """Write the sample sheet beside the log, print the summary; exit code 1 if any copy failed."""
    sheet = sample_sheet(report)
    if sheet is not None and log_file is not None:
        sheet_path = log_file.with_name(f"{log_file.stem}_samples.png")
        write_png(sheet_path, sheet)
        log.info("sample sheet (originals beside their copies): %s", sheet_path)
    print(report.summary())
    if report.problems:
        print(f"{len(report.problems)} image(s) could not be augmented, first: {report.problems[0]}")
    return 1 if report.problems else 0
