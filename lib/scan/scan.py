"""One document scanned: its figures extracted into a folder of its own (lib.scan.pdf), the
detectors run on them as the predictor runs them (lib.inference.infer.predict_paths: the matcher
with its verifier, and the networks when the settings validated for them say so; both cached by
the content of each figure), and each finding described for people: the source and the copy, the
transform between them, the probability, and the pictures the report shows.

scan_document is what a worker runs, in this process, in a process of a pool or on a Dask worker:
a document path and the settings in, a DocumentResult out (the pictures as bytes, so that the
report is written where the scan was started, whichever machine scanned).
"""
from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..draw import outline
from ..errors import ProjectError, first_line
from ..imageio import header_size, load_image, shown
from ..inference.fusion import UNREADABLE, MatchCache, matcher_of
from ..inference.infer import (ImageResult, Predictor, matcher_threshold, predict_paths, predictor_of,
                               result_instances)
from ..matching import describe_operation
from ..options import PostConfig, PredictorOptions
from .pdf import MIN_SIDE, DocumentError, Extraction, Figure, Unreadable, extract_pdf, is_pdf

log = logging.getLogger(__name__)

SOURCE_RGB = (0, 114, 178)       # blue and vermillion (Okabe-Ito): apart for every kind of colour vision
COPY_RGB = (213, 94, 0)
REGION_RGB = (204, 121, 167)     # reddish purple: a region the networks found (no source, no copy)
PICTURE_SIDE = 720               # pixels: the longer side of a finding's picture in the report
THUMB_SIDE = 160
JPEG_QUALITY = 85


@dataclass(frozen=True)
class ScanSettings:
    """What runs on every figure: the predictor's options, the post-processing (validated; its
    fusion rule resolved), the models' folder (checkpoints, verifier, cache)."""

    options: PredictorOptions
    post: PostConfig
    models_dir: Path


@dataclass
class Finding:
    """One duplication found in a figure: the source and the copy (boxes x0, y0, x1, y1 in the
    figure's pixels, ends excluded), what the transform between them does, and its probability.
    A region the segmentation networks found has no transform: its box is the source's, no copy."""

    probability: float
    source_box: tuple[int, int, int, int]
    copy_box: tuple[int, int, int, int] | None
    operation: str               # 'moved', 'rotated by 90 degrees', 'mirrored, scaled by 0.80'; '' for a region


@dataclass
class FigureResult:
    page: int                    # 0 for an image file
    index: int
    height: int
    width: int
    probability: float           # the figure's evidence: its best candidate's probability
    findings: list[Finding] = field(default_factory=list)
    picture: bytes = b""         # flagged figures: JPEG with source and copy outlined
    thumbnail: bytes = b""
    original: bytes = b""        # flagged figures: the image file as extracted
    suffix: str = ".png"

    @property
    def flagged(self) -> bool:
        return bool(self.findings)


@dataclass
class DocumentResult:
    """What a scan of one document found; `error` says why a document was not scanned."""

    document: Path
    pages: int = 0
    figures: list[FigureResult] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    tiny: int = 0
    repeated: int = 0
    error: str = ""
    seconds: float = 0.0

    @property
    def probability(self) -> float:
        """The document's highest figure probability (0 without figures)."""
        return max((f.probability for f in self.figures), default=0.0)

    @property
    def flagged(self) -> list[FigureResult]:
        return [f for f in self.figures if f.flagged]

    def not_scanned(self) -> list[str]:
        """One line per image not scanned, naming the document (an image file's own reason does)."""
        return [f"{shown(self.document)}: {u.reason}" if u.page else u.reason for u in self.unreadable]


_predictors: dict[str, Predictor] = {}      # per process: the networks are loaded once, not per document


def _predictor(settings: ScanSettings) -> Predictor | None:
    if settings.post.fusion == "matcher":
        return None
    key = repr((settings.options, settings.models_dir))
    if key not in _predictors:
        _predictors[key] = predictor_of(settings.options, settings.models_dir)
    return _predictors[key]


def scan_document(document: Path, settings: ScanSettings) -> DocumentResult:
    """Scan one PDF or image file; never raises for a bad document (its result's `error` says
    what was wrong)."""
    started = time.perf_counter()
    document = Path(document)
    result = DocumentResult(document)
    with tempfile.TemporaryDirectory(prefix="scan-") as work:    # this call's own folder, removed on return
        try:
            extraction = _extract(document, Path(work))
        except DocumentError as exc:
            result.error = str(exc)
            return result
        result.pages, result.unreadable = extraction.pages, list(extraction.unreadable)
        result.tiny, result.repeated = extraction.tiny, extraction.repeated
        figures = extraction.figures
        if not figures and not result.unreadable:
            result.error = (f"{shown(document)}: no raster image of at least {MIN_SIDE} pixels a side "
                            f"({result.tiny} smaller); nothing to scan")
            return result
        images = _detect([f.path for f in figures], settings) if figures else []
        for figure, image in zip(figures, images):
            if image.error:
                place = f"page {figure.page}, image {figure.index}" if figure.page else shown(document)
                result.unreadable.append(Unreadable(figure.page, figure.index,
                                                    image.error.replace(str(figure.path), place)))
            else:
                result.figures.append(describe_figure(figure, image, settings.post))
    result.seconds = time.perf_counter() - started
    return result


def _extract(document: Path, work: Path) -> Extraction:
    if is_pdf(document):
        return extract_pdf(document, work)
    height, width = header_size(document) or (0, 0)
    return Extraction(pages=0, figures=[Figure(0, 1, document, height, width)])


def _detect(paths: list[Path], settings: ScanSettings) -> list[ImageResult]:
    """The predictor's results for `paths`, one at a time in this process (a scan runs documents
    in parallel, not images); a cache entry from before transforms were kept is matched again
    and replaced."""
    options = replace(settings.options, progress=False, match_workers=1)
    predictor = _predictor(settings)            # loading it says what it left out, once
    with _quiet():
        results, _ = predict_paths(options, settings.models_dir, paths, settings.post.fusion,
                                   gate=settings.post.classifier_threshold, desc="scan", predictor=predictor)
    old = [i for i, r in enumerate(results) if r.match is not None and r.match.matrices is None]
    if old:
        with _quiet():
            again, _ = predict_paths(replace(options, cache=False), settings.models_dir, [paths[i] for i in old],
                                     "matcher", gate=None, desc="scan")
        cache = MatchCache(settings.models_dir / "cache", matcher_of(options, settings.models_dir)[0])
        for i, fresh in zip(old, again):
            results[i].match = fresh.match
            if options.cache and not fresh.match.error:
                cache.put(fresh.match)
    return results


class _InfoOfScans(logging.Filter):
    """Drops the predictor's information lines ('3 images matched in 5.7s') logged by a thread while
    it scans a document: a scan logs per run. Per thread, not by changing the loggers' levels:
    workers that are threads scan side by side, and the rest of the process logs as before."""

    def __init__(self):
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(self.local, "scanning", False):
            return True
        return record.levelno >= logging.WARNING and record.msg != UNREADABLE   # the scan lists those itself


_INFO_OF_SCANS = _InfoOfScans()
for _name in ("lib.inference.fusion", "lib.inference.infer"):   # where the records are made: filters act there
    logging.getLogger(_name).addFilter(_INFO_OF_SCANS)


@contextmanager
def _quiet():
    _INFO_OF_SCANS.local.scanning = True
    try:
        yield
    finally:
        _INFO_OF_SCANS.local.scanning = False


def describe_figure(figure: Figure, image: ImageResult, post: PostConfig) -> FigureResult:
    """The findings of one figure under `post` (the instances submission.csv would hold), each
    with the source and copy of its best matcher event, and the pictures of a flagged figure."""
    match = image.match
    network = _network_probability(image)
    height, width = image.hw
    result = FigureResult(figure.page, figure.index, height, width, match.best if match is not None else network)
    instances = result_instances(image, post)
    if not instances:
        return result
    events = []
    if match is not None:
        threshold = matcher_threshold(match, post)
        keep = [s >= threshold for s in match.scores]
        scores = [s for s in match.scores if s >= threshold]
        events = list(zip(scores, match.masks(keep), match.matrices[np.array(keep, bool)]))
    described = []
    for instance in instances:
        inside = [e for e in events if (e[1] & instance).any()]
        if inside:
            score, mask, matrix = max(inside, key=lambda e: e[0])
            source, copy = split_source_copy(mask & instance, matrix)
            finding = Finding(float(score), _box(source), _box(copy), describe_operation(matrix))
        else:
            source, copy = instance, np.zeros_like(instance)
            finding = Finding(network, _box(instance), None, "")
        described.append((finding, source, copy))
    described.sort(key=lambda d: -d[0].probability)
    result.findings = [d[0] for d in described]
    result.probability = max(result.probability, result.findings[0].probability)
    rgb = load_image(figure.path)
    result.picture, result.thumbnail = draw_findings(rgb, [(source, copy) for _, source, copy in described])
    result.original, result.suffix = figure.path.read_bytes(), figure.path.suffix.lower()
    return result


def _network_probability(image: ImageResult) -> float:
    """The networks' evidence for a figure: the classifier's probability, or without one the
    highest pixel probability of the map (0 when the networks did not run)."""
    if not math.isnan(image.classifier_prob):
        return float(image.classifier_prob)
    return float(image.prob_map.max()) if image.prob_map is not None else 0.0


def split_source_copy(mask: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The source and the copy inside an event's mask (both together): the copy is where the
    transform takes the mask, the source where its inverse does. A mask the transform does not
    map onto itself (an edit of the mask) stays whole as the source."""
    h, w = mask.shape
    m8 = mask.astype(np.uint8)
    forward = cv2.warpAffine(m8, np.asarray(matrix, np.float64), (w, h), flags=cv2.INTER_NEAREST) > 0
    backward = cv2.warpAffine(m8, cv2.invertAffineTransform(np.asarray(matrix, np.float64)), (w, h),
                              flags=cv2.INTER_NEAREST) > 0
    copy, source = mask & forward, mask & backward
    if not copy.any() or not source.any():
        return mask, np.zeros_like(mask)
    return source, copy


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def draw_findings(rgb: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[bytes, bytes]:
    """(picture, thumbnail) as JPEG bytes: the figure at PICTURE_SIDE with each finding's source
    outlined in blue and its copy in vermillion, an arrow from one to the other, and its number
    (from 1, in the order of `parts`) where the arrow starts; a part without a copy (a region the
    networks found) outlined in reddish purple."""
    h, w = rgb.shape[:2]
    scale = PICTURE_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    picture = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    labels = []
    for source, copy in parts:
        small = [cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for m in (source, copy)]
        picture = outline(picture, small[0], SOURCE_RGB if small[1].any() else REGION_RGB, fill=0.15)
        ax, ay = np.argwhere(small[0]).mean(axis=0)[::-1] if small[0].any() else (0, 0)
        if small[1].any():
            picture = outline(picture, small[1], COPY_RGB, fill=0.15)
            bx, by = np.argwhere(small[1]).mean(axis=0)[::-1]
            for ink, thick in (((255, 255, 255), 4), ((0, 0, 0), 2)):
                cv2.arrowedLine(picture, (int(ax), int(ay)), (int(bx), int(by)), ink, thick, cv2.LINE_AA,
                                tipLength=min(0.3, 18 / max(1.0, float(np.hypot(bx - ax, by - ay)))))
        labels.append((int(ax), int(ay)))
    for number, (x, y) in enumerate(labels, start=1):      # drawn last: no arrow crosses a number
        text = str(number)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        x0, y0 = min(max(0, x - tw // 2 - 4), size[0] - tw - 8), min(max(0, y - th // 2 - 4), size[1] - th - 8)
        cv2.rectangle(picture, (x0, y0), (x0 + tw + 8, y0 + th + 8), (255, 255, 255), -1)
        cv2.rectangle(picture, (x0, y0), (x0 + tw + 8, y0 + th + 8), (0, 0, 0), 1)
        cv2.putText(picture, text, (x0 + 4, y0 + th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    thumb_scale = THUMB_SIDE / max(picture.shape[:2])
    thumb = cv2.resize(picture, (max(1, round(picture.shape[1] * thumb_scale)),
                                 max(1, round(picture.shape[0] * thumb_scale))), interpolation=cv2.INTER_AREA)
    return _jpeg(picture), _jpeg(thumb)


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ProjectError("a report picture could not be encoded as JPEG")
    return data.tobytes()


def failed(document: Path, exc: BaseException) -> DocumentResult:
    """The result of a document whose scan raised (a bug or a worker lost): listed, not fatal."""
    return DocumentResult(Path(document), error=f"{shown(document)}: the scan failed ({type(exc).__name__}: "
                                                 f"{first_line(exc)})")
