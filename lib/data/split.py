"""The one held-out validation split of the project, made once and written to the data dir.

Training, hard-negative mining and threshold sweeps all read `split.csv` (group, split), so
nothing is ever tuned on the images it is scored on. A group is a case_id: an authentic
image, its forged twin and their augmented copies always fall on the same side.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ..competition.submission import read_csv_strict, write_csv
from ..errors import DataError, SubmissionError
from ..paths import Paths
from .manifest import FORGED, area_bucket

log = logging.getLogger(__name__)

SPLIT_FILE = "split.csv"                 # in the data dir
SPLIT_COLUMNS = ["group", "split"]
TRAIN, VAL = "train", "val"
TRAIN_ONLY_SOURCES = ("supplemental",)   # the competition gives these for training only


def _group_strata(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per group: `stratum` ('authentic' or 'forged <bucket>'), or '' for groups that
    always train (only supplemental or only augmented images)."""
    original = manifest[~manifest["augmented"].astype(bool)]
    forged = original[original["label"] == FORGED]
    fraction = forged.groupby("group")["forged_fraction"].max()
    stratum = pd.Series("authentic", index=pd.Index(original["group"].unique(), name="group"))
    stratum[fraction.index] = "forged " + area_bucket(fraction)
    train_only = original.groupby("group")["source"].agg(lambda s: s.isin(TRAIN_ONLY_SOURCES).all())
    stratum[train_only[train_only].index] = ""
    out = pd.DataFrame({"group": sorted(manifest["group"].unique())})
    out["stratum"] = out["group"].map(stratum).fillna("")
    return out


def _merge_rare(stratum: pd.Series, n_splits: int) -> pd.Series:
    """Merge strata with fewer than n_splits groups: area buckets into 'forged', then into the
    largest stratum, so that every fold can get a member of every stratum."""
    def rare(s: pd.Series) -> pd.Series:
        return s.map(s.value_counts()) < n_splits

    stratum = stratum.where(~rare(stratum), stratum.str.split(" ").str[0])
    return stratum.where(~rare(stratum), stratum.value_counts().idxmax())


def make_split(manifest: pd.DataFrame, val_fraction: float = 0.2, seed: int = 42) -> pd.DataFrame:
    """Assign every group of the manifest to 'train' or 'val' (columns group, split, sorted by group).

    StratifiedGroupKFold with round(1 / val_fraction) folds over the non-augmented images,
    stratified by the group's label and forged-area bucket; fold 0 is validation.
    Supplemental-only groups always train. On tiny data rare strata are merged and the fold
    count lowered, so that with >= 2 splittable groups both sides get at least one.
    """
    if not 0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction must be in (0, 0.5], got {val_fraction}")
    manifest = manifest.assign(group=manifest["group"].astype(str))
    groups = _group_strata(manifest)
    split = pd.Series(TRAIN, index=groups.index)
    candidates = groups[groups["stratum"] != ""]
    n_splits = min(round(1 / val_fraction), len(candidates))
    if n_splits >= 2:
        stratum = _merge_rare(candidates.set_index("group")["stratum"], n_splits)
        images = manifest[~manifest["augmented"].astype(bool) & manifest["group"].isin(stratum.index)]
        images = images.sort_values(["group", "image_id"], kind="stable")
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, val_index = next(folds.split(images, images["group"].map(stratum), images["group"]))
        val_groups = set(images["group"].iloc[val_index])
        # the greedy fold filling gives no such guarantee on a handful of groups: keep both sides
        pick = str(np.random.default_rng(seed).choice(sorted(stratum.index)))
        if not val_groups:
            val_groups = {pick}
        elif len(val_groups) == len(stratum):
            val_groups.discard(pick)
        split[groups["group"].isin(val_groups)] = VAL
    return pd.DataFrame({"group": groups["group"], "split": split}).reset_index(drop=True)


def split_path(paths: Paths) -> Path:
    """Where the split of a data dir lives."""
    return paths.data_dir / SPLIT_FILE


def read_split(path: Path) -> pd.DataFrame:
    """Read and validate a split file; a broken one is a DataError that says to delete it."""
    fix = f"delete {path} to make a new split"
    try:
        frame = read_csv_strict(path, SPLIT_COLUMNS)
    except SubmissionError as exc:
        raise DataError(f"{exc}; {fix}") from None
    bad = frame[~frame["split"].isin([TRAIN, VAL]) | (frame["group"] == "")]
    if len(bad):
        row = bad.iloc[0]
        raise DataError(f"{path}: row {bad.index[0] + 2} has group {row['group']!r} and split "
                        f"{row['split']!r} (split must be '{TRAIN}' or '{VAL}'); {fix}")
    duplicated = frame["group"][frame["group"].duplicated()]
    if len(duplicated):
        raise DataError(f"{path}: group {duplicated.iloc[0]!r} is listed twice; {fix}")
    return frame


def load_or_make_split(paths: Paths, manifest: pd.DataFrame, val_fraction: float = 0.2,
                       seed: int = 42) -> pd.DataFrame:
    """The data dir's fixed split: read from `split.csv` when it exists (the file wins over
    `val_fraction` and `seed`), else made with them and written. Groups of the manifest that the
    file lacks (new data) are added as 'train', with one warning."""
    path = split_path(paths)
    if path.is_file():
        split = read_split(path)
        log.info("%s: using the existing split (%d train / %d val groups); val_fraction and seed "
                 "apply only to a new split (delete the file to re-split)", path,
                 (split["split"] == TRAIN).sum(), (split["split"] == VAL).sum())
        new = sorted(set(manifest["group"].astype(str)) - set(split["group"]))
        if new:
            log.warning("%s: %d group(s) of the data are not in the split file and train "
                        "(e.g. %s); delete %s to re-split", path, len(new), new[0], path)
            split = pd.concat([split, pd.DataFrame({"group": new, "split": TRAIN})], ignore_index=True)
        return split
    split = make_split(manifest, val_fraction, seed)
    try:
        write_csv(path, SPLIT_COLUMNS, split.itertuples(index=False))
    except OSError as exc:
        # A read-only data dir (a Kaggle input) must not stop training; the split is
        # deterministic for the same data and seed, so the next run makes the same one.
        log.warning("%s: cannot write the split (%s); using it without saving", path, exc.strerror or exc)
    train_rows, val_rows = split_rows(manifest, split)
    log.info("%s: new split (val_fraction %g, seed %d): %d train / %d val groups, %d / %d images",
             path, val_fraction, seed, (split["split"] == TRAIN).sum(), (split["split"] == VAL).sum(),
             len(train_rows), len(val_rows))
    return split


def split_rows(manifest: pd.DataFrame, split: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train rows, val rows) of the manifest, index reset. Validation holds only original,
    non-supplemental images; augmented copies of a validation group are in neither (no leak).
    Groups that `split` does not list count as train."""
    val_groups = set(split.loc[split["split"] == VAL, "group"].astype(str))
    in_val = manifest["group"].astype(str).isin(val_groups)
    original = ~manifest["augmented"].astype(bool) & ~manifest["source"].isin(TRAIN_ONLY_SOURCES)
    return (manifest[~in_val].reset_index(drop=True),
            manifest[in_val & original].reset_index(drop=True))
