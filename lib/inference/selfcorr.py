"""Self-correlation input: what an image says about itself, as extra input channels of a network.

A network looking at RGB pixels has no direct way to see that two regions are the same (the
learned copy-move detectors that work, BusterNet and its successors, correlate an image's
features with themselves first). The matcher already computes that correlation: its dense stage
finds, for every patch, the best-matching patch elsewhere (under the 8 rotations and mirrors),
and checks whether neighbouring patches agree on one rigid move. Three maps per image, each in
[0, 1]:

- similarity: how well the pixel's patch matches its best match (1 for an exact duplicate, about
  0.37 for a typical patch of that image, 0 without a match: blank paper);
- agreement: the share of its neighbours whose matches agree rigidly with its own (a copied
  region near 1, chance matches near 0);
- candidate: the verifier's probability of the most probable candidate duplication covering the
  pixel (0 where no candidate lies).

The first two are computed with the matcher's candidates and kept in the matcher's cache
(lib.inference.fusion.MatchCache, `MatchOutput.dense_maps`, at most FIELD_MAP_SIDE px a side); the third from the
cached candidates and the verifier when read, so a new verifier needs no re-matching. Training
(lib.training.datasets) and inference (lib.inference.infer) read the maps through `selfcorr_maps`, at the image's
size, and pass them through the same geometric augmentation as the image (lib.data.augment: an
additional target), then `network_input` (image and normalised maps, one tensor). A variant asks
for them with `SELFCORR_INPUTS` in its model config (lib.models.variants).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.augment import MAPS
from ..errors import DataError
from ..matching import FIELD_MAPS, MatchConfig, Verifier, load_verifier, resolve_verifier
from ..models.variants import SELFCORR_CHANNELS
from ..options import usable_cpus
from .fusion import MatchCache, MatchOutput, match_config_key, rescore, run_matcher

MIN_CANDIDATE = 0.01                         # candidates less probable than this add nothing to the map


def candidate_map(packed: np.ndarray, scores, hw: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """float32 (size) map: at each pixel the best score of the candidates covering it. `packed`
    are the candidates' bit-packed masks at `hw` (lib.inference.fusion.MatchOutput), `size` = (h, w) wanted."""
    out = np.zeros(size, np.float32)
    for row, score in zip(packed, scores):
        if score < MIN_CANDIDATE:
            continue
        mask = np.unpackbits(row, count=hw[0] * hw[1]).reshape(hw).astype(np.float32)
        shrunk = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_AREA if size[0] < hw[0]
                            else cv2.INTER_LINEAR)
        np.maximum(out, score * shrunk, out=out)
    return out


def selfcorr_maps(match, hw: tuple[int, int]) -> np.ndarray:
    """float32 (h, w, 3) maps (SELFCORR_CHANNELS) of an image of size `hw` from its matcher output
    `match` (a scored lib.inference.fusion.MatchOutput: the verifier's probabilities); all zero when the
    matcher had no field for it (None, an error, too small or blank)."""
    h, w = hw
    maps = np.zeros((h, w, len(SELFCORR_CHANNELS)), np.float32)
    if match is None or match.error:
        return maps
    field = np.asarray(match.dense_maps)
    if field.ndim == 3 and field.shape[0] == len(FIELD_MAPS) and field.size:
        for channel in range(len(FIELD_MAPS)):
            maps[..., channel] = cv2.resize(field[channel].astype(np.float32) / 255.0, (w, h),
                                            interpolation=cv2.INTER_LINEAR)
    if len(match.scores):
        maps[..., -1] = candidate_map(match.packed, match.scores, tuple(match.hw), (h, w))
    return maps


def network_input(out: dict) -> torch.Tensor:
    """A self-correlation network's input from the output of a transform built with maps=True
    (lib.data.augment): the normalised image, then its maps normalised (normalize_maps), (3 + 3, S, S)."""
    return torch.cat([out["image"].float(), normalize_maps(out[MAPS])])


def normalize_maps(maps) -> torch.Tensor:
    """(3, S, S) float tensor of maps in [0, 1] (an (S, S, 3) array or tensor, as the augmentation
    returns them), centred and scaled to [-1, 1] like the normalised RGB channels' range."""
    tensor = torch.as_tensor(np.asarray(maps, np.float32) if not torch.is_tensor(maps) else maps).float()
    return (tensor.permute(2, 0, 1) - 0.5) / 0.5


def maps_key(config: MatchConfig, verifier: Verifier) -> str:
    """What the maps depend on: the matcher (config and code) and the verifier (its trees and threshold)."""
    digest = hashlib.sha1(json.dumps(verifier.to_json(), sort_keys=True).encode()).hexdigest()[:12]
    return f"{match_config_key(config)}/{digest}"


class SelfCorrSource:
    """The maps of images the matcher has seen: its cached outputs (`cache`), scored by `verifier`.
    Picklable (a folder and a verifier), so DataLoader workers read the cache themselves."""

    def __init__(self, cache: MatchCache, config: MatchConfig, verifier: Verifier):
        self.cache, self.verifier = cache, verifier
        self.key = maps_key(config, verifier)

    def output(self, path: Path) -> MatchOutput:
        output = self.cache.get(path)
        if output is None:
            raise DataError(f"{path}: no matcher output in {self.cache.folder} to make its self-correlation "
                            "maps from (prepare_selfcorr computes them)")
        rescore([output], self.verifier)
        return output

    def __call__(self, path: Path, hw: tuple[int, int]) -> np.ndarray:
        return selfcorr_maps(self.output(path), hw)


def matcher_threads() -> int:
    """Threads for computing maps: the matcher releases the GIL, so one per core."""
    return usable_cpus()


def prepare_selfcorr(paths: Sequence[Path], models_dir: Path, progress: bool = True,
                     workers: int | None = None) -> SelfCorrSource:
    """The maps' source for `paths`: the v2 matcher run (cached under `models_dir/cache`, shared with
    the pipeline's matcher) on every image it has not seen; candidates scored by the verifier the
    pipeline uses (`models_dir`'s own, else the committed default)."""
    config = MatchConfig()
    cache = MatchCache(Path(models_dir) / "cache", config)
    run_matcher(paths, config, cache, workers or matcher_threads(), progress, desc="self-correlation maps",
                score=False)
    return SelfCorrSource(cache, config, load_verifier(resolve_verifier(models_dir, None)))
