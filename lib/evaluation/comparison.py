"""Networks against the matcher on a benchmark (bin/make_benchmark.py): one table on its test split.

Rows: answering `authentic` everywhere; the copy-move matcher v2 alone; each network alone; and
each network fused with the matcher. Whatever a row chooses is chosen on the validation split (the
held-out split of the benchmark's training images, lib.data.split): a network's post-processing
thresholds by the sweep (lib.evaluation.evaluate.sweep, fusion `network`), then the fusion rule, each rule at
its own best network thresholds and the matcher at its verifier's threshold throughout
(choose_fusion), ties going to the simpler rule (lib.inference.fusion.best_fusion, as `--fusion auto`
does). The test split is scored once with those choices and chooses nothing.

Columns: the competition score, image recall, FP rate, pixel F1 over the forged figures (the
predicted union against the true union; 0 for a missed figure) and the mean score of the forged
figures by the texture group of their events (events.csv; a figure with events of two groups
counts under both).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from ..data.demo.saving import TEXTURE_GROUPS
from ..data.manifest import load_manifest
from ..data.split import load_or_make_split, split_rows
from ..data.truths import Truth, truths_from_manifest, truths_from_solution
from ..inference.fusion import MatchCache, MatchOutput, best_fusion, run_matcher
from ..inference.infer import ImageResult, Predictor, ResultCache, folder_images, load_member, result_of_match
from ..inference.selfcorr import maps_key
from ..matching import MatchConfig, load_verifier, resolve_verifier
from ..options import FUSIONS, PostConfig
from ..paths import BEST_SUFFIX, Paths
from .evaluate import best_config, compare_fusions, evaluate, sweep
from .groups import read_meta

log = logging.getLogger(__name__)

MATCHER_ROW = "matcher v2 alone"
AUTHENTIC_ROW = "all authentic"
# The networks' thresholds searched here: wider than validate_test's sweep (lib.evaluation.evaluate), whose grid
# (seg 0.15-0.40, min area 25-300) suits the seeds' ensemble; a network that reads the matcher's maps
# is confident where it is wrong, and its best thresholds lay on that grid's edge. No classifier here.
SEG_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_AREA_GRID = (25, 100, 300, 1000, 3000)


def _sweep(results: Sequence[ImageResult], truths: Sequence[Truth], fusion: str, base: PostConfig) -> PostConfig:
    """`base` with the network thresholds that score best on `results` under `fusion` (network or
    first), the brightness-adaptive threshold on or off (on, it caps a bright figure's threshold at
    0.5: lib.inference.postprocess). The matcher keeps its verifier's threshold (chosen out of fold when the
    verifier was fitted): tuned here, `first` would beat `matcher` with a network that adds nothing."""
    verifier_threshold = next((r.match.threshold for r in results if r.match is not None), 0.5)
    best = None
    for adaptive in (True, False):
        table = sweep(results, truths, replace(base, adaptive=adaptive, fusion=fusion),
                      classifier_thresholds=(base.classifier_threshold,), seg_thresholds=SEG_GRID,
                      min_areas=MIN_AREA_GRID, matcher_thresholds=(verifier_threshold,), progress=False)
        if best is None or table["score"].iloc[0] > best[0]:
            best = (table["score"].iloc[0], replace(best_config(table, replace(base, adaptive=adaptive)),
                                                    matcher_threshold=None))
    return best[1]


@dataclass
class Split:
    """The figures of one split, their truths and the matcher's scored outputs."""

    name: str
    truths: list[Truth]
    matches: list[MatchOutput]

    @property
    def paths(self) -> list[Path]:
        return [t.image_path for t in self.truths]


def benchmark_splits(paths: Paths, match_workers: int = 2, progress: bool = True) -> tuple[Split, Split, str]:
    """(validation, test, matcher key): the held-out split of the training images and the test
    images with solution.csv, each with the matcher v2's outputs (cached in the models dir)."""
    manifest = load_manifest(paths, progress=progress)
    val_rows = split_rows(manifest, load_or_make_split(paths, manifest))[1]
    val = truths_from_manifest(paths.data_dir, val_rows)
    test = truths_from_solution(paths.data_dir / "solution.csv", folder_images(paths.data_dir / "test_images"))
    config = MatchConfig()
    verifier = load_verifier(resolve_verifier(paths.models_dir))
    cache = MatchCache(paths.models_dir / "cache", config)
    splits = [Split(name, truths, run_matcher([t.image_path for t in truths], config, cache, match_workers,
                                              progress, desc=f"{name}: match", verifier=verifier))
              for name, truths in (("validation", val), ("test", test))]
    return splits[0], splits[1], maps_key(config, verifier)


def figure_textures(meta_path: Path) -> dict[str, set[str]]:
    """case_id -> the texture groups of its events (events.csv beside meta.csv)."""
    _, events = read_meta(meta_path)
    textures: dict[str, set[str]] = {}
    for case_id, group in zip(events["case_id"], events["texture_group"]):
        textures.setdefault(str(case_id), set()).add(str(group))
    return textures


def table_row(name: str, frame: pd.DataFrame, textures: dict[str, set[str]], chosen: str = "") -> dict:
    """One row of the table from lib.evaluation.evaluate.evaluate's per-figure frame."""
    forged, authentic = frame[frame["forged"]], frame[~frame["forged"]]
    row = {"system": name, "score": frame["score"].mean(),
           "recall": forged["predicted"].mean() if len(forged) else math.nan,
           "fp_rate": authentic["predicted"].mean() if len(authentic) else math.nan,
           "pixel_f1": forged["pixel_f1"].mean() if len(forged) else math.nan}
    for group in TEXTURE_GROUPS:
        part = forged[[group in textures.get(c, ()) for c in forged["case_id"]]]
        row[f"forged {group}"] = part["score"].mean() if len(part) else math.nan
    row["chosen on validation"] = chosen
    return row


def run_labels(checkpoints: Sequence[Path]) -> list[str]:
    """A row name per checkpoint: its run name (`selfcorr_v3`), with its folder when two share one."""
    names = [Path(c).name.removesuffix(BEST_SUFFIX) for c in checkpoints]
    return [f"{Path(c).parent.name}/{n}" if names.count(n) > 1 else n for c, n in zip(checkpoints, names)]


def network_results(member_path: Path, device: torch.device, splits: Sequence[Split], models_dir: Path,
                    key_of_maps: str, progress: bool = True, tta: bool = True) -> list[list[ImageResult]]:
    """One checkpoint's results on each split (cached in the models dir), the matcher's attached."""
    predictor = Predictor([load_member(member_path, device)], device=device, tta=tta, maps_key=key_of_maps)
    cache = ResultCache(models_dir / "cache", predictor.key())
    out = []
    for split in splits:
        results = predictor.run(split.paths, cache=cache, progress=progress, desc=f"{member_path.stem}: {split.name}",
                                matches=split.matches)
        for result, match in zip(results, split.matches):
            result.match = match
        out.append(results)
    return out


def compare_on_benchmark(paths: Paths, checkpoints: Sequence[Path], device: torch.device, match_workers: int = 2,
                         progress: bool = True, tta: bool = True) -> pd.DataFrame:
    """The table (module docstring) for `checkpoints` on the benchmark in paths.data_dir."""
    val, test, key_of_maps = benchmark_splits(paths, match_workers, progress)
    textures = figure_textures(paths.data_dir / "meta.csv")
    base = PostConfig()
    rows = []
    nothing = [ImageResult(t.image_path, (0, 0), 0.0, math.nan) for t in test.truths]
    rows.append(table_row(AUTHENTIC_ROW, evaluate(nothing, test.truths, PostConfig(fusion="network"))[1], textures))
    matched = [result_of_match(m) for m in test.matches]
    rows.append(table_row(MATCHER_ROW, evaluate(matched, test.truths, PostConfig(fusion="matcher"))[1], textures,
                          "the verifier's threshold"))
    for checkpoint, name in zip(checkpoints, run_labels(checkpoints)):
        on_val, on_test = network_results(checkpoint, device, (val, test), paths.models_dir, key_of_maps, progress,
                                          tta)
        config = _sweep(on_val, val.truths, "network", base)
        thresholds = config.summary()
        rows.append(table_row(f"{name} alone", evaluate(on_test, test.truths, config)[1], textures,
                              thresholds))
        fused, rules = choose_fusion(on_val, val.truths, config)
        log.info("%s on the validation split (%d figures), each rule at its own thresholds:\n%s", name,
                 len(val.truths), rules.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        rows.append(table_row(f"{name} + matcher", evaluate(on_test, test.truths, fused)[1], textures,
                              fused.summary() if fused.fusion in ("first", "union")
                              else f"fusion {fused.fusion}: {fused.summary()}"))
    return pd.DataFrame(rows)


def choose_fusion(results: Sequence[ImageResult], truths: Sequence[Truth], network: PostConfig
                  ) -> tuple[PostConfig, pd.DataFrame]:
    """The fusion of a network with the matcher that scores best on (validation) `results`, and the
    table it was chosen from. Each rule at its own best thresholds: `network` at `network`'s (the
    sweep of the network alone), `matcher` at the verifier's threshold, `first` with the network's
    thresholds swept for the fused score (the matcher at its threshold), `union` at `network`'s (not
    swept: lib.evaluation.evaluate.sweep). Ties go to the simpler rule (lib.inference.fusion.best_fusion): a network
    that adds nothing leaves the matcher alone."""
    configs = {"network": network, "matcher": replace(network, fusion="matcher", matcher_threshold=None),
               "first": _sweep(results, truths, "first", network),
               "union": replace(network, fusion="union")}
    table = compare_fusions(results, truths, network, FUSIONS, configs=configs)
    table["at"] = [configs[rule].summary() for rule in table["fusion"]]
    return configs[best_fusion(table)], table


def format_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
