"""Timing the batched predictor against the straightforward loop it replaces, on the same
images, with a check that both give the same probabilities (bin/benchmark_inference.py)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..data.demo import make_case
from ..imageio import load_image, write_png
from ..inference.fusion import run_matcher
from ..inference.infer import Member, Predictor, reference_probabilities
from ..matching import MatchConfig, find_candidates, match_image
from ..models.networks import build_model
from ..models.variants import CLASSIFIER, SEGMENTER, V3_VARIANTS

MAP_TOLERANCE = 2e-3     # the predictor stores maps as float16
PROB_TOLERANCE = 1e-5
# under bf16 autocast (CUDA) both paths round to 8 mantissa bits, in kernels chosen by batch size
AMP_MAP_TOLERANCE = AMP_PROB_TOLERANCE = 2e-2


@dataclass
class BenchmarkResult:
    images: int
    batched_s: float
    reference_s: float
    max_map_diff: float
    max_prob_diff: float
    mixed_precision: bool = False

    @property
    def ratio(self) -> float:
        return self.reference_s / max(self.batched_s, 1e-12)

    @property
    def tolerances(self) -> tuple[float, float]:
        return (AMP_MAP_TOLERANCE, AMP_PROB_TOLERANCE) if self.mixed_precision else (MAP_TOLERANCE, PROB_TOLERANCE)

    @property
    def same(self) -> bool:
        map_tolerance, prob_tolerance = self.tolerances
        return self.max_map_diff <= map_tolerance and self.max_prob_diff <= prob_tolerance

    def table(self) -> str:
        rows = [("batched predictor", self.batched_s), ("per-image/flip/model loop", self.reference_s)]
        lines = [f"{'':<28}{'images':>8}{'seconds':>10}{'img/s':>9}"]
        lines += [f"{name:<28}{self.images:>8}{s:>10.2f}{self.images / max(s, 1e-12):>9.2f}" for name, s in rows]
        lines.append(f"speed-up (loop / batched): {self.ratio:.2f}x")
        map_tolerance, prob_tolerance = self.tolerances
        lines.append(f"max |map difference| {self.max_map_diff:.2e} (tolerance {map_tolerance:g}), "
                     f"max |classifier difference| {self.max_prob_diff:.2e} (tolerance {prob_tolerance:g}), "
                     f"{'bf16/fp16 autocast' if self.mixed_precision else 'fp32'}: {'PASS' if self.same else 'FAIL'}")
        return "\n".join(lines)


def random_predictor(img_size: int = 512, classifier_size: int = 384, device: torch.device | None = None,
                     **options) -> Predictor:
    """The default pipeline's shape (four AttentionFPN-b2 members with the variants' weights and an
    efficientnet_b2 classifier) with freshly initialised weights: benchmarks without checkpoints."""
    device = device or torch.device("cpu")
    torch.manual_seed(0)
    segmenters = [Member(Path(f"random_{v.name}"), build_model(SEGMENTER).to(device).eval(), img_size,
                         v.ensemble_weight, f"random{i}") for i, v in enumerate(V3_VARIANTS.values())]
    classifier = Member(Path("random_classifier"), build_model(CLASSIFIER.model).to(device).eval(),
                        classifier_size, 1.0, "random-classifier")
    return Predictor(segmenters, classifier, None, device, **options)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(predictor: Predictor, paths: Sequence[Path], repeat: int = 1) -> BenchmarkResult:
    """Best-of-`repeat` wall time of both paths over `paths` (after one warm-up image each)."""
    predictor.run(paths[:1], progress=False)
    reference_probabilities(predictor, paths[0])
    batched_s = reference_s = float("inf")
    for _ in range(repeat):
        _synchronize(predictor.device)
        started = time.perf_counter()
        results = predictor.run(paths, progress=False)
        _synchronize(predictor.device)
        batched_s = min(batched_s, time.perf_counter() - started)
        started = time.perf_counter()
        references = [reference_probabilities(predictor, p) for p in paths]
        _synchronize(predictor.device)
        reference_s = min(reference_s, time.perf_counter() - started)
    map_diff = max(float(np.abs(r.prob_map.astype(np.float32) - ref).max()) for r, (_, ref) in zip(results, references))
    prob_diff = max((abs(r.classifier_prob - cls) for r, (cls, _) in zip(results, references)
                     if not np.isnan(cls)), default=0.0)
    return BenchmarkResult(len(paths), batched_s, reference_s, map_diff, prob_diff, predictor.amp.enabled)


# --- the copy-move matcher ---------------------------------------------------------------------

def benchmark_matcher(sizes: Sequence[int] = (512, 2000), images: int = 8, workers: int = 2,
                      seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Per matcher (v1's cascade, v2 and v3 with the default verifier) and size: seconds per image
    (every stage, then each stage alone; one at a time) and the throughput of the
    pipeline's run_matcher with `workers` threads (reading the files included), on forged
    synthetic figures of size x size pixels (lib.data.demo), with the fraction it calls forged."""
    rows = []
    for size in sizes:
        cases = [make_case(seed, 99, i, forged=True, min_size=size, max_size=size) for i in range(images)]
        pictures = [c.forged if c.forged.ndim == 3 else np.dstack([c.forged] * 3) for c in cases]
        for matcher, base in (("v1", MatchConfig.cascade()), ("v2", MatchConfig.v2()), ("v3", MatchConfig())):
            row = {"matcher": matcher, "size": size, "images": images}
            alone = {stage: replace(base, **{other: False for other in ("keypoints", "dense", "fine")
                                             if other != stage}) for stage in ("keypoints", "dense", "fine")}
            for name, config in (("s/img", base), *((f"{stage} s/img", c) for stage, c in alone.items()
                                                     if getattr(base, stage))):
                started = time.perf_counter()
                found = [bool(match_image(p, config).instances) for p in pictures]
                row[name] = (time.perf_counter() - started) / images
                if name == "s/img":
                    row["img/s (one at a time)"] = 1.0 / row[name]
                    row["called forged"] = float(np.mean(found))
            with tempfile.TemporaryDirectory() as folder:
                paths = [Path(folder) / f"{i}.png" for i in range(images)]
                for path, picture in zip(paths, pictures):
                    write_png(path, picture)
                started = time.perf_counter()
                run_matcher(paths, base, None, workers, progress=progress, desc=f"match {matcher} {size}px")
                row[f"img/s ({workers} threads)"] = images / (time.perf_counter() - started)
            rows.append(row)
    return pd.DataFrame(rows)


def benchmark_matcher_figures(paths: Sequence[Path], progress: bool = True) -> pd.DataFrame:
    """v2 and v3 on real figure files, one at a time (the candidates and their masks: no verifier,
    no file reading timed): one row per figure with each matcher's seconds, to set v3's cost
    against v2's where it matters (figures of every size and kind), and name the slowest."""
    rows = []
    for path in tqdm(paths, desc="figures", unit="img", disable=not progress):
        image = load_image(path)
        row = {"figure": Path(path).name, "width": image.shape[1], "height": image.shape[0]}
        for matcher, config in (("v2", MatchConfig.v2()), ("v3", MatchConfig())):
            started = time.perf_counter()
            find_candidates(image, config)
            row[f"{matcher} s"] = time.perf_counter() - started
        rows.append(row)
    return pd.DataFrame(rows)


def startup_seconds(root: Path, scripts: Sequence[str], repeat: int = 3, args: Sequence[str] = ("--help",)
                    ) -> dict[str, float]:
    """Wall seconds of `python <root>/bin/<script> --help` for each script, the best of `repeat`
    runs (what a user waits for before the usage appears); a script that fails or is missing: nan."""
    times = {}
    for script in scripts:
        path, runs = Path(root) / "bin" / script, []
        for _ in range(repeat if path.is_file() else 0):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, str(path), *args], capture_output=True, cwd=root)
            if done.returncode != 0:
                runs = []
                break
            runs.append(time.perf_counter() - started)
        times[script] = min(runs) if runs else float("nan")
    return times


def startup_table(times: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row a script, one column a checkout (seconds), and the ratio of the first to the last."""
    table = pd.DataFrame(times)
    if table.shape[1] > 1:
        table["ratio (first / this)"] = table.iloc[:, 0] / table.iloc[:, -1]
    return table.rename_axis("script").reset_index()
