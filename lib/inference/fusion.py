"""The matcher as a member of the pipeline: run it over a folder (in parallel, cached), and fuse
its instances with the segmentation networks'.

Fusion rules (PostConfig.fusion):
  network  the segmentation ensemble alone (the seeds' pipeline);
  matcher  the matcher alone (no network is loaded);
  first    the matcher's instances where it finds any, the networks' elsewhere;
  union    the matcher's instances, each absorbing the network regions it touches, plus the
           remaining network regions as one more instance.
Matcher events carry a score (the verifier's probability that the event is a real copy; v1's
cascade: the correlation of the fine detail of source and copy); events at or above
PostConfig.matcher_threshold form the matcher's instances, and they count even
where the classifier gate says authentic: the gate is there to stop networks hallucinating,
and a verified copy is direct evidence.
"""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import DataError, ProjectError, first_line
from ..fileio import NpzCache
from ..imageio import load_image, write_png
from ..integrity import package_of, verify_package
from ..matching import (DEFAULT_VERIFIER, FEATURES, MatchConfig, Verifier, debug_image, default_verifier, field_maps,
                        find_candidates, load_verifier, merge_events, resolve_verifier, score_events)
from ..options import FUSIONS, PredictorOptions
from ..progress import progress_bar
from .tuned import matcher_key

log = logging.getLogger(__name__)

V1_THRESHOLD = 0.85                      # v1's default: the fine-detail correlation of an exact copy
UNREADABLE = "%s; no match, its row: authentic"     # the warning of an unreadable image (a scan says it its way)


@dataclass
class MatchOutput:
    """What the pipeline keeps of the matcher's work on one image: every candidate event's mask
    (bit-packed: a liberal matcher proposes many), features and score (the verifier's
    probability, or v1's fine-detail correlation under the cascade)."""

    path: Path
    hw: tuple[int, int]
    packed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))   # (events, bits)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURES)), np.float32))
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    threshold: float = 0.5               # the decision's own threshold (the verifier's; v1: V1_THRESHOLD)
    dense_maps: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.uint8))  # dense.field_maps
    # each event's transform source -> copy (events, 2, 3); None in a cache entry written before they were kept
    matrices: np.ndarray | None = field(default_factory=lambda: np.zeros((0, 2, 3), np.float32))

    @classmethod
    def of(cls, path: Path, hw: tuple[int, int], masks: Sequence[np.ndarray], scores: Sequence[float],
           features: np.ndarray | None = None, seconds: float = 0.0, dense_maps: np.ndarray | None = None,
           matrices: Sequence[np.ndarray] = ()) -> MatchOutput:
        # packed one mask at a time: stacking full-size masks first would hold them all twice
        packed = (np.stack([np.packbits(np.asarray(m, bool).ravel()) for m in masks]) if len(masks)
                  else np.zeros((0, 0), np.uint8))
        if features is None:
            features = np.zeros((len(masks), len(FEATURES)), np.float32)
        output = cls(Path(path), tuple(hw), packed, np.asarray(features, np.float32), [float(s) for s in scores],
                     seconds)
        if dense_maps is not None:
            output.dense_maps = np.asarray(dense_maps, np.uint8)
        if len(matrices):
            output.matrices = np.stack([np.asarray(m, np.float32) for m in matrices])
        return output

    def masks(self, keep: Sequence[bool] | None = None) -> list[np.ndarray]:
        """The events' masks, (H, W) bool each (with `keep`, those of the events it marks True)."""
        return [np.unpackbits(row, count=self.hw[0] * self.hw[1]).view(bool).reshape(self.hw)
                for i, row in enumerate(self.packed[:len(self.scores)]) if keep is None or keep[i]]

    def above(self, threshold: float) -> list[np.ndarray]:
        """The instances of the events scoring at least `threshold` (sharing pixels: merged)."""
        keep = [s >= threshold for s in self.scores]
        if not any(keep):
            return []
        return merge_events(self.masks(keep), [s for s in self.scores if s >= threshold], threshold)[0]

    @property
    def best(self) -> float:
        """The best event's score (0 without events): the figure's evidence of a copy."""
        return max(self.scores, default=0.0)


# files of lib/matching that do not change what the matcher finds (the verifier is applied on reading)
_NOT_MATCHING = {"__init__.py", "debug.py", "treemodel.py", "verifier.py"}


def matcher_source_hash(folder: Path = Path(__file__).parents[1] / "matching") -> str:
    """A hash of the matcher's code (its source files parsed, docstrings dropped: comments, layout
    and documentation do not count): a changed matcher never serves stale cached results."""
    digest = hashlib.sha1()
    for file in sorted(Path(folder).glob("*.py")):
        if file.name in _NOT_MATCHING:
            continue
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(file.name.encode() + ast.dump(tree).encode())
    return digest.hexdigest()[:16]


def match_config_key(config: MatchConfig) -> str:
    spec = {"source": matcher_source_hash(), **asdict(config)}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


class MatchCache(NpzCache):
    """Matcher outputs on disk under `root/matcher-<key>/`, one .npz per image, keyed by the
    matcher's config and source code, not by the verifier (applied when read: a new verifier
    needs no re-matching); written atomically."""

    def __init__(self, root: Path, config: MatchConfig):
        super().__init__(Path(root) / f"matcher-{match_config_key(config)}")

    def get(self, path: Path) -> MatchOutput | None:
        data = self.read(path)
        try:
            return MatchOutput(Path(path), tuple(int(v) for v in data["hw"]), data["masks"],
                               data["features"].reshape(-1, len(FEATURES)), [float(s) for s in data["scores"]],
                               float(data["seconds"]), str(data["error"]), dense_maps=data["dense_maps"],
                               matrices=data["matrices"].reshape(-1, 2, 3) if "matrices" in data else None)
        except (TypeError, KeyError, ValueError):
            return None   # no entry, or one of another layout: recompute it

    def put(self, output: MatchOutput) -> None:
        if output.matrices is None:
            return               # read from an older entry: nothing new to store
        self.write(output.path, hw=np.array(output.hw), masks=output.packed, features=output.features,
                   scores=np.array(output.scores, np.float32), seconds=output.seconds, error=output.error,
                   dense_maps=output.dense_maps, matrices=output.matrices)


def match_config_of(matcher: str) -> MatchConfig:
    """The MatchConfig of a matcher version (--matcher: v3, v2 or v1)."""
    return {"v1": MatchConfig.cascade(), "v2": MatchConfig.v2()}.get(matcher, MatchConfig())


def matcher_of(options: PredictorOptions, models_dir: Path) -> tuple[MatchConfig, Verifier | None, str]:
    """(config, verifier, one-line description) of the matcher `options` asks for (its
    `matcher` and `match_verifier`); a packaged verifier is checked against package.json."""
    if options.matcher == "v1":
        if options.match_verifier is not None:
            raise ProjectError("--match-verifier: v1 (--matcher v1) uses no verifier")
        return match_config_of("v1"), None, "copy-move matcher v1 (cascade)"
    path = resolve_verifier(models_dir, options.match_verifier)
    package = package_of(models_dir)
    if package is not None and path != DEFAULT_VERIFIER:
        verify_package(package, [path])     # a package's verifier: the one its package.json records
    verifier = load_verifier(path)
    described = f"copy-move matcher {options.matcher} (verifier {path.name}, threshold {verifier.threshold:g})"
    return match_config_of(options.matcher), verifier, described


def matcher_identity(options: PredictorOptions, models_dir: Path) -> str:
    """The matcher's part of a tuning's key (lib.inference.tuned.matcher_key) for `options`: its
    version, config and code, and its verifier's file."""
    verifier = None if options.matcher == "v1" else resolve_verifier(models_dir, options.match_verifier)
    return matcher_key(options.matcher, match_config_key(match_config_of(options.matcher)), verifier)


def match_file(path: Path, config: MatchConfig, debug_dir: Path | None = None,
               verifier: Verifier | None = None) -> MatchOutput:
    """The matcher on one image file (and its debug picture `debug_dir/<stem>.png`); an
    unreadable file is an output with `error` set."""
    try:
        image = load_image(Path(path))
    except DataError as exc:
        return MatchOutput(Path(path), (0, 0), error=first_line(exc))
    started = time.perf_counter()
    result = find_candidates(image, config)
    seconds = time.perf_counter() - started
    if debug_dir is not None:
        if config.decision == "verifier":
            score_events(result, verifier or default_verifier())
        write_png(Path(debug_dir) / f"{Path(path).stem}.png", debug_image(image, result))
    return MatchOutput.of(path, image.shape[:2], [e.mask for e in result.events], [e.score for e in result.events],
                          np.stack([e.features for e in result.events]) if result.events else None, seconds,
                          field_maps(result.dense), [e.matrix for e in result.events])


def _keep(outputs: list, index: int, output: MatchOutput, cache: MatchCache | None) -> None:
    if output.error:
        log.warning(UNREADABLE, output.error)     # the error names the file
    elif cache is not None:
        cache.put(output)
    outputs[index] = output


@contextmanager
def _single_threaded_libraries():
    """OpenCV and torch one thread each while images are matched in parallel threads (the
    heavy work releases the GIL); their settings are restored afterwards."""
    cv2_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(cv2_threads)
        torch.set_num_threads(torch_threads)


def run_matcher(paths: Sequence[Path], config: MatchConfig = MatchConfig(), cache: MatchCache | None = None,
                workers: int = 2, progress: bool = True, desc: str = "match",
                debug_dir: Path | None = None, verifier: Verifier | None = None, score: bool = True
                ) -> list[MatchOutput]:
    """The matcher's outputs for `paths` (in order): cached ones reused (not with `debug_dir`,
    whose pictures need the matcher's intermediate results), the rest computed `workers`
    images at a time in threads; every event scored by `verifier` (the default one when None)
    unless config.decision is the v1 cascade or `score` is False (fitting a verifier). Threads,
    not processes: no start-up (a spawned process re-imports torch and the calling script,
    5-10 s), no fork after threads have run, and
    measured on 2 cores 2.1 img/s at 512 px against 1.7 img/s for one image at a time."""
    paths = [Path(p) for p in paths]
    outputs: list[MatchOutput | None] = [cache.get(p) if cache and debug_dir is None else None for p in paths]
    todo = [i for i, o in enumerate(outputs) if o is None]
    if len(todo) < len(paths):
        log.info("%s: %d of %d images from the cache %s", desc, len(paths) - len(todo), len(paths),
                 cache.folder if cache else "")
    if todo:
        started = time.perf_counter()
        with progress_bar(total=len(todo), desc=desc, unit="img", progress=progress) as bar:
            if workers <= 1:
                for index in todo:
                    _keep(outputs, index, match_file(paths[index], config, debug_dir, verifier), cache)
                    bar.update()
            else:
                with _single_threaded_libraries(), ThreadPoolExecutor(workers) as pool:
                    done = pool.map(lambda index: (index, match_file(paths[index], config, debug_dir, verifier)),
                                    todo)
                    for index, output in done:
                        _keep(outputs, index, output, cache)
                        bar.update()
        elapsed = time.perf_counter() - started
        log.info("%s: %d images matched in %.1fs (%.2f img/s with %d thread(s))", desc, len(todo), elapsed,
                 len(todo) / max(elapsed, 1e-9), max(1, workers))
    if config.decision == "verifier" and score:
        rescore(outputs, verifier or default_verifier())   # cached events: scored by this verifier
    elif config.decision == "cascade":
        for output in outputs:
            output.threshold = V1_THRESHOLD
    return outputs  # type: ignore[return-value]


def rescore(outputs: Sequence[MatchOutput], verifier: Verifier) -> None:
    """Score every event of `outputs` with `verifier` (in place)."""
    for output in outputs:
        output.threshold = verifier.threshold
        if len(output.scores):
            output.scores = [float(p) for p in verifier.probabilities(output.features)]


# --- which fusion: the one the held-out split prefers ----------------------------------------

def _ranked(table) -> list[dict]:
    """compare_fusions' rows, best first: highest score; ties go to the simpler rule, in FUSIONS order."""
    return sorted(table.to_dict("records"), key=lambda r: (-r["score"], FUSIONS.index(r["fusion"])))


def best_fusion(table) -> str:
    """The rule a table of lib.evaluation.evaluate.compare_fusions prefers."""
    return str(_ranked(table)[0]["fusion"])


def fuse(network: list[np.ndarray], matched: list[np.ndarray], mode: str) -> list[np.ndarray]:
    """Combine the networks' instances and the matcher's under fusion rule `mode` (FUSIONS)."""
    if mode not in FUSIONS:
        raise ValueError(f"unknown fusion {mode!r}; known: {', '.join(FUSIONS)}")
    if mode == "network":
        return network
    if mode == "matcher" or (mode == "first" and matched):
        return matched
    if mode == "first" or not matched:
        return network
    # union: network regions touching a matched instance join it; the others form one instance
    instances = [m.copy() for m in matched]
    rest = np.zeros_like(matched[0])
    regions = np.any(network, axis=0) if network else rest
    count, labels = cv2.connectedComponents(regions.astype(np.uint8), connectivity=8)
    for label in range(1, count):
        region = labels == label
        touching = [k for k, m in enumerate(matched) if (m & region).any()]
        if touching:
            best = max(touching, key=lambda k: int((matched[k] & region).sum()))
            instances[best] |= region
        else:
            rest |= region
    return instances + ([rest] if rest.any() else [])
