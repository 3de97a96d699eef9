"""Torch datasets and sampling weights built from manifest rows (see lib.data.manifest), and the
hard-negative file that the mining step writes and the fine-tuning steps read.

Datasets keep their rows as plain lists: DataLoader workers pickle the dataset, and a
list of strings pickles faster and smaller than a DataFrame. An image or mask that cannot be
read although the manifest found it good (changed since, or corrupt past its header) is one
warning naming it, and the next readable item of the same label takes its place: a training run
does not end on one bad file. Nothing is replaced by a zero tensor.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from ..data.augment import MAPS
from ..data.manifest import FORGED
from ..draw import grid, outline_instances
from ..errors import DataError, first_line
from ..fileio import atomic_path
from ..imageio import load_image, load_mask
from ..inference.selfcorr import network_input
from ..models.variants import SampleWeights
from .distributed import ShardedWeightedSampler

log = logging.getLogger(__name__)

HARD_NEGATIVES_COMMAND = "python bin/find_hard_negatives.py"
_BARE_ID_SOURCE = "authentic"                   # a bare case id in the file means authentic/<id>


class UnreadableItem(DataError):
    """An image or mask of a training set that cannot be read: the set puts another in its place."""


class _ManifestDataset(Dataset):
    """Images of manifest rows, loaded as RGB uint8 and passed through an albumentations transform."""

    _columns = ("image_path", "label")

    def __init__(self, data_dir: Path, rows: pd.DataFrame, transform: Callable):
        missing = [c for c in self._columns if c not in rows.columns]
        if missing:
            raise ValueError(f"manifest rows lack the column(s) {', '.join(missing)}")
        self.data_dir = Path(data_dir)
        self.transform = transform
        self.image_paths: list[str] = rows["image_path"].astype(str).tolist()
        self.labels: list[int] = rows["label"].astype(int).tolist()
        self.unreadable: set[int] = set()

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int):
        """The item `index` (`_item`); an unreadable one is skipped, said once per file and
        process, and the next readable item of the same label stands in (of another label when
        none of its label can be read)."""
        order = [i % len(self) for i in range(index, index + len(self))]
        for candidate in sorted(order, key=lambda i: self.labels[i] != self.labels[index]):   # stable
            if candidate in self.unreadable:
                continue
            try:
                return self._item(candidate)
            except UnreadableItem as exc:
                if candidate not in self.unreadable:
                    self.unreadable.add(candidate)
                    log.warning("%s; skipped (%d unreadable training file(s) so far in this process), "
                                "another image in its place", first_line(exc), len(self.unreadable))
        raise DataError(f"{self.data_dir}: no image of this set ({len(self)}) can be read")

    def _item(self, index: int):
        raise NotImplementedError

    def _image(self, index: int) -> np.ndarray:
        try:
            return load_image(self.data_dir / self.image_paths[index])
        except DataError as exc:
            raise UnreadableItem(str(exc)) from None


class SegmentationDataset(_ManifestDataset):
    """Item: (image float32 (3, S, S), mask float32 (1, S, S) in {0, 1}): the union of the
    forgery instances for forged rows, all zero for authentic rows. With `maps` (a
    lib.inference.selfcorr.SelfCorrSource, and a transform built with maps=True) the image's
    self-correlation maps follow as 3 more channels, moved by the same geometry: (6, S, S)."""

    _columns = ("image_path", "label", "mask_path")

    def __init__(self, data_dir: Path, rows: pd.DataFrame, transform: Callable,
                 maps: Callable[[Path, tuple[int, int]], np.ndarray] | None = None):
        super().__init__(data_dir, rows, transform)
        self.mask_paths: list[str] = rows["mask_path"].astype(str).tolist()
        self.maps = maps

    def _image_and_instances(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The RGB image and its forgery instances, (n, H, W) bool; n = 0 for authentic rows."""
        image = self._image(index)
        if self.labels[index] != FORGED:
            return image, np.zeros((0, *image.shape[:2]), bool)
        if not self.mask_paths[index]:
            raise UnreadableItem(f"{self.data_dir / self.image_paths[index]}: forged image without a mask")
        try:
            return image, load_mask(self.data_dir / self.mask_paths[index], expected_hw=image.shape[:2]).instances
        except DataError as exc:
            raise UnreadableItem(str(exc)) from None

    def _sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, forged-pixel mask uint8) before the transform."""
        image, instances = self._image_and_instances(index)
        return image, instances.any(axis=0).astype(np.uint8)

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._sample(index)
        if self.maps is None:
            out = self.transform(image=image, mask=mask)
            x = out["image"].float()
        else:
            maps = self.maps(self.data_dir / self.image_paths[index], image.shape[:2])
            out = self.transform(image=image, mask=mask, **{MAPS: maps})
            x = network_input(out)
        return x, torch.as_tensor(out["mask"]).float().unsqueeze(0)


def crop_window(box: tuple[int, int, int, int], hw: tuple[int, int], side: float) -> tuple[int, int, int, int]:
    """A window (y0, y1, x0, x1) of about `side` x `side` centred on `box` = (y0, y1, x0, x1)
    (end-exclusive) and inside an image of `hw`: shifted, not cut, at the borders; never
    smaller than the box on either axis, so the box is always inside; at most the image."""
    window = []
    for lo, hi, size in ((box[0], box[1], hw[0]), (box[2], box[3], hw[1])):
        length = int(min(size, max(round(side), hi - lo)))
        start = int(round((lo + hi - length) / 2))
        start = min(max(start, 0, hi - length), size - length, lo)
        window += [start, start + length]
    return tuple(window)


def forged_region_box(instances: np.ndarray) -> tuple[int, int, int, int]:
    """The box (y0, y1, x0, x1) of one forged region, picked at random (numpy's global
    generator): a random instance, then a random connected component of it. A component, not the
    whole instance: the source and the copy of a pair often lie far apart, and a window around
    both would be the whole image and zoom nothing."""
    instance = instances[np.random.randint(len(instances))].astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(instance, connectivity=8)
    x, y, w, h = stats[1 + np.random.randint(n - 1), :4]
    return int(y), int(y + h), int(x), int(x + w)


class CropAroundForgeryDataset(SegmentationDataset):
    """The specialist's training images (`small`: a lib.models.variants.SmallForgeries): a forged image
    cropped around one of its forged regions (`forged_region_box`), the region always whole
    inside the crop, so that a forgery of 0.3% of the image fills several percent of the training
    input; an authentic image cropped at a random place of similar size; with probability
    1 - crop_probability the whole image. The transform then resizes (preset 'no_crop').
    Randomness comes from numpy's global generator, seeded per epoch and per worker by the loop."""

    def __init__(self, data_dir: Path, rows: pd.DataFrame, transform: Callable, small):
        super().__init__(data_dir, rows, transform)     # no maps: they would need the same crop
        self.small = small

    def crop(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, union mask uint8) of item `index`, cropped; before the transform."""
        image, instances = self._image_and_instances(index)
        hw, mask = image.shape[:2], instances.any(axis=0).astype(np.uint8)
        if np.random.random() >= self.small.crop_probability:
            return image, mask
        if len(instances):
            box = forged_region_box(instances)
            side = max(max(box[1] - box[0], box[3] - box[2]) * np.random.uniform(*self.small.crop_scale),
                       self.small.min_crop)
        else:
            side = np.random.uniform(self.small.min_crop, 4 * self.small.min_crop)
            y, x = np.random.randint(hw[0]), np.random.randint(hw[1])
            box = (y, y + 1, x, x + 1)
        y0, y1, x0, x1 = crop_window(box, hw, side)
        return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]

    _sample = crop


def crop_sheet(dataset: CropAroundForgeryDataset, count: int = 12, seed: int = 0, columns: int = 4) -> np.ndarray:
    """A picture of `count` crops of forged items (evenly spaced over the dataset), the forged
    pixels outlined, captioned with the forged fraction before -> after cropping."""
    forged = [i for i, label in enumerate(dataset.labels) if label == FORGED]
    if not forged:
        raise ValueError("crop_sheet needs a dataset with forged images")
    picks = [forged[i] for i in np.linspace(0, len(forged) - 1, min(count, len(forged))).astype(int)]
    state = np.random.get_state()
    np.random.seed(seed)
    tiles, captions = [], []
    try:
        for index in picks:
            image, mask = dataset.crop(index)
            whole = load_mask(dataset.data_dir / dataset.mask_paths[index]).union
            tiles.append(outline_instances(image, [mask]))
            captions.append(f"{Path(dataset.image_paths[index]).stem} {whole.mean():.2%} -> {mask.mean():.2%} "
                            f"{image.shape[1]}x{image.shape[0]}")
    finally:
        np.random.set_state(state)
    return grid(tiles, captions, columns=columns)


class ClassifierDataset(_ManifestDataset):
    """Item: (image float32 (3, S, S), label float32 scalar: 1 forged, 0 authentic). Loads no mask."""

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.transform(image=self._image(index))
        return out["image"].float(), torch.tensor(self.labels[index], dtype=torch.float32)


def sample_weights(rows: pd.DataFrame, weights: SampleWeights,
                   hard_negatives: AbstractSet[str] = frozenset()) -> np.ndarray:
    """One float64 weight per row: forged rows by the manifest's `forged_fraction` (no mask is
    loaded), authentic rows `authentic`, or `hard_negative` when their image_id is listed."""
    values = [weights.tiny, weights.medium, weights.large, weights.authentic, weights.hard_negative]
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"sample weights must be finite and >= 0, got {weights}")
    if not 0 <= weights.tiny_below <= weights.medium_below:
        raise ValueError(f"need 0 <= tiny_below <= medium_below, got {weights}")
    forged = (rows["label"] == FORGED).to_numpy()
    fraction = rows["forged_fraction"].to_numpy(dtype=np.float64)
    by_area = np.select([fraction < weights.tiny_below, fraction < weights.medium_below],
                        [weights.tiny, weights.medium], default=weights.large)
    hard = ~forged & rows["image_id"].isin(hard_negatives).to_numpy()
    out = np.where(forged, by_area, np.where(hard, weights.hard_negative, weights.authentic))
    return out.astype(np.float64)


def make_sampler(weights: np.ndarray, seed: int = 0, rank: int = 0, world_size: int = 1
                 ) -> WeightedRandomSampler | ShardedWeightedSampler:
    """A reproducible weighted sampler with replacement, len(weights) draws an epoch; reseed per
    epoch through `sampler.generator.manual_seed`. Under torchrun (world_size > 1) every rank
    gets its share of the same draw."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or not len(weights):
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("weights must be finite, >= 0 and not all zero")
    if world_size > 1:
        return ShardedWeightedSampler(weights, rank, world_size, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(torch.from_numpy(weights), len(weights), replacement=True, generator=generator)


# --- the hard-negative file ------------------------------------------------------------------
# Plain text, one image_id per line (`authentic/12345`); blank lines and lines starting with
# '#' are ignored; a bare case id (`12345`) means `authentic/12345`.

def _normalize_id(image_id: str) -> str:
    image_id = image_id.strip()
    return image_id if "/" in image_id else f"{_BARE_ID_SOURCE}/{image_id}"


def read_hard_negatives(path: Path) -> set[str]:
    """The image ids listed in a hard-negative file. Raises DataError naming the file when it is
    missing (and which command makes it), unreadable, or has a line that is not one id."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: hard-negative file not found; {HARD_NEGATIVES_COMMAND} makes it")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read ({first_line(exc)})") from None
    ids = set()
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line.split()) != 1:
            raise DataError(f"{path}, line {number}: expected one image id, got {line[:80]!r}")
        ids.add(_normalize_id(line))
    return ids


def write_hard_negatives(path: Path, image_ids: Iterable[str], header: str = "") -> None:
    """Write a hard-negative file atomically: `header` lines as '# ' comments, then the ids sorted."""
    ids = set()
    for image_id in image_ids:
        if len(str(image_id).split()) != 1:
            raise ValueError(f"{path}: an image id must be one non-empty word, got {image_id!r}")
        ids.add(_normalize_id(str(image_id)))
    lines = [f"# {line}".rstrip() for line in header.splitlines()] + sorted(ids)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
