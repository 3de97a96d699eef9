"""The one predictor every script uses: two-pass inference over a folder of images.

Pass 1: the classifier's probability (at its training size). Pass 2, for images at or above
the gate: the segmentation ensemble (weighted mean of the members' probabilities), each
member with 4x flip TTA computed as one forward batch and aggregated by MAX or MEAN, the
small-forgery specialist joined by union max(p, 0.8 * p_specialist). The result of an
image is its classifier probability, its brightness and its probability map at the
ensemble's input size; post-processing (lib.inference.postprocess) turns that into instances at the
image's own size.

Images are read once, by DataLoader workers, at every size the members need. Per-image
results are cached on disk keyed by the checkpoints' contents and the image file, so
thresholds can be swept and submissions re-made without running a network again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..competition.metric import AUTHENTIC
from ..competition.submission import annotation_from_instances, write_submission
from ..data.augment import IMAGENET_MEAN, IMAGENET_STD, MAPS, build_transforms
from ..device import Amp, resolve_device
from ..errors import DataError, ProjectError, first_line
from ..fileio import NpzCache
from ..flags import from_args
from ..imageio import find_images, list_images, load_image
from ..integrity import package_of, sha256, verify_package
from ..models.checkpoints import find_best, load_model
from ..models.variants import CLASSIFIER, RGB_INPUTS, SELFCORR_INPUTS, SPECIALIST_RUN, V3_VARIANTS, input_channels
from ..options import AGGREGATIONS, AUTO, FUSIONS, POST_FIELDS, PostConfig, PredictorOptions
from ..progress import progress_bar
from ..paths import BEST_SUFFIX, best_checkpoint, checkpoints_elsewhere
from .fusion import MatchCache, MatchOutput, fuse, matcher_identity, matcher_of, run_matcher
from .postprocess import image_brightness, postprocess
from .selfcorr import maps_key, network_input, selfcorr_maps
from .tuned import RETUNE, TUNED_FILE, Tuned, TunedKey, check_tuned, networks_key, read_tuned, split_key

log = logging.getLogger(__name__)

CACHE_VERSION = 1
SPECIALIST_FACTOR = 0.8    # the seeds' union weight: max(p, 0.8 * p_specialist)


# --- members -----------------------------------------------------------------------------

@dataclass
class Member:
    """One loaded checkpoint of the predictor."""

    path: Path
    model: nn.Module
    img_size: int
    weight: float = 1.0
    digest: str = ""
    inputs: str = RGB_INPUTS        # "rgb+selfcorr": the image and its self-correlation maps (lib.inference.selfcorr)

    @property
    def input_key(self) -> str:
        """The key of its input in a batch of ImageFolderDataset."""
        return input_key(self.img_size, self.inputs)

    def describe(self) -> str:
        maps = ", + self-correlation maps" if self.inputs != RGB_INPUTS else ""
        return f"{self.path.name} (w {self.weight:g}, {self.img_size} px{maps})"


def input_key(size: int, inputs: str = RGB_INPUTS) -> str:
    """'x512' (the image at 512 px, normalised) or 'xs512' (+ its self-correlation maps)."""
    return f"x{size}" if inputs == RGB_INPUTS else f"xs{size}"


def load_member(path: Path, device: torch.device, weight: float = 1.0, task: str | None = None) -> Member:
    """Load a checkpoint as a predictor member; `task` checks it is a segmenter or a classifier."""
    model, checkpoint = load_model(path, device)
    arch = checkpoint["model_config"].get("arch")
    if task == "segmentation" and arch == "classifier" or task == "classification" and arch != "classifier":
        raise ProjectError(f"{path}: is a {arch} checkpoint, not a {task} model")
    check_normalization(path, checkpoint)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return Member(Path(path), model, int(checkpoint.get("img_size", 512)), float(weight), sha256(path)[:16],
                  checkpoint["model_config"].get("inputs", RGB_INPUTS))


def check_normalization(path: Path, checkpoint: dict) -> None:
    """The predictor feeds every network the image normalised by ImageNet's mean and std, as
    training does (lib.data.augment); a checkpoint that records another normalisation would be fed
    wrong inputs, so it is refused by name. Checkpoints without the record predate it."""
    recorded = checkpoint.get("normalization")
    if recorded is None:
        return
    try:
        same = (np.allclose(recorded["mean"], IMAGENET_MEAN, atol=1e-6)
                and np.allclose(recorded["std"], IMAGENET_STD, atol=1e-6))
    except (KeyError, TypeError, ValueError):
        same = False
    if not same:
        raise ProjectError(f"{path}: trained on inputs normalised with {recorded}; this predictor normalises "
                           f"with ImageNet's mean {list(IMAGENET_MEAN)} and std {list(IMAGENET_STD)}")


def default_ensemble(models_dir: Path, stage: str = "v4") -> list[tuple[Path, float]]:
    """The v3 variants' best checkpoints at `stage` with their ensemble weights; a variant
    without a v4 checkpoint falls back to v3 (with a warning)."""
    found = []
    for variant in V3_VARIANTS.values():
        wanted = find_best(models_dir, f"{variant.name}_{stage}")
        fallback = find_best(models_dir, f"{variant.name}_v3") if stage != "v3" and wanted is None else None
        name = best_checkpoint(models_dir, f"{variant.name}_{stage}").name
        if wanted is not None:
            found.append((wanted, variant.ensemble_weight))
        elif fallback is not None:
            log.warning("%s not found: using %s", name, fallback.name)
            found.append((fallback, variant.ensemble_weight))
        else:
            log.warning("%s not found: %s left out of the ensemble", name, variant.name)
    if not found:
        wanted = f"*_{stage}{BEST_SUFFIX}" + (f" or *_v3{BEST_SUFFIX}" if stage != "v3" else "")
        elsewhere = checkpoints_elsewhere(models_dir, wanted.split(" or ")[-1])
        raise ProjectError(f"{models_dir}: no segmentation checkpoints ({wanted})"
                           + (elsewhere or "; train them first: python bin/script_1_train_v3.py"))
    return found


def parse_member_spec(spec: str) -> tuple[Path, float]:
    """'path.safetensors' or 'path.safetensors:1.5' -> (path, weight)."""
    path, sep, weight = spec.rpartition(":")
    if not sep:
        return Path(spec), 1.0
    try:
        value = float(weight)
    except ValueError:
        return Path(spec), 1.0          # a colon inside the path
    if not (value > 0 and math.isfinite(value)):
        raise ProjectError(f"--ensemble {spec}: the weight must be a positive finite number")
    return Path(path), value


# --- data --------------------------------------------------------------------------------

WORKING_SIDE = 4096          # the networks' inputs are made from an image of at most this side


def shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """`image` itself when neither side is over `side`, else resized (INTER_AREA) to fit it."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class ImageFolderDataset(Dataset):
    """Images read once and prepared at every size the predictor needs (validation transform:
    resize + ImageNet normalisation, the one the models were validated with): item `x<size>`;
    with `matches` (the matcher's scored outputs, one per path), also `xs<size>` for the sizes
    in `selfcorr_sizes`: the image and its self-correlation maps (lib.inference.selfcorr), as in training.
    An unreadable image yields `error` instead of tensors, so one bad file cannot stop a whole
    submission. An image with a side over WORKING_SIDE is first shrunk to it (INTER_AREA, as the
    transform's own resize): the networks see at most 512 px, and the float copies the transforms
    and self-correlation maps make of a 100-megapixel image would take gigabytes."""

    def __init__(self, paths: Sequence[Path], sizes: Sequence[int], selfcorr_sizes: Sequence[int] = (),
                 matches: Sequence[MatchOutput] | None = None):
        self.paths = [str(p) for p in paths]
        self.sizes = sorted(set(int(s) for s in sizes))
        self.selfcorr_sizes = sorted(set(int(s) for s in selfcorr_sizes))
        if self.selfcorr_sizes and (matches is None or len(matches) != len(self.paths)):
            raise ValueError("self-correlation inputs need the matcher's output of every image")
        self.matches = matches
        self.transforms = {s: build_transforms("standard", s, train=False) for s in self.sizes}
        self.map_transforms = {s: build_transforms("standard", s, train=False, maps=True) for s in self.selfcorr_sizes}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        item = {"index": index, "error": "", "hw": torch.zeros(2, dtype=torch.long), "brightness": 0.0}
        try:
            image = load_image(Path(self.paths[index]))
        except DataError as exc:
            item["error"] = first_line(exc)
            for size in self.sizes:
                item[input_key(size)] = torch.zeros(3, size, size)
            for size in self.selfcorr_sizes:
                item[input_key(size, SELFCORR_INPUTS)] = torch.zeros(input_channels(SELFCORR_INPUTS), size, size)
            return item
        item["hw"] = torch.tensor(image.shape[:2])
        item["brightness"] = image_brightness(image)
        image = shrunk(image, WORKING_SIDE)
        for size, transform in self.transforms.items():
            item[input_key(size)] = transform(image=image)["image"]
        if self.selfcorr_sizes:
            maps = selfcorr_maps(self.matches[index], image.shape[:2])
            for size, transform in self.map_transforms.items():
                item[input_key(size, SELFCORR_INPUTS)] = network_input(transform(image=image, **{MAPS: maps}))
        return item


# --- results and cache -------------------------------------------------------------------

@dataclass
class ImageResult:
    """What the predictor knows of one image. `prob_map` is None when pass 2 did not run."""

    path: Path
    hw: tuple[int, int]
    brightness: float
    classifier_prob: float              # NaN without a classifier
    prob_map: np.ndarray | None = None  # float16 (S, S), S = the ensemble's input size
    error: str = ""
    match: MatchOutput | None = None    # the matcher's instances (lib.inference.fusion), when it ran

    @property
    def case_id(self) -> str:
        return self.path.stem

    def passes_gate(self, threshold: float) -> bool:
        """Pass 1's decision: go on to pass 2 (always, without a classifier)."""
        return math.isnan(self.classifier_prob) or self.classifier_prob >= threshold


class ResultCache(NpzCache):
    """Per-image results on disk under `root/<predictor key>/`, one .npz per image, keyed by a
    hash of the image's bytes (lib.fileio.file_key). Written atomically; unreadable images are
    not stored."""

    def __init__(self, root: Path, predictor_key: str):
        super().__init__(Path(root) / predictor_key)

    def get(self, path: Path) -> ImageResult | None:
        data = self.read(path)
        try:
            prob_map = data["prob_map"] if data["has_map"] else None
            return ImageResult(Path(path), tuple(int(v) for v in data["hw"]), float(data["brightness"]),
                               float(data["classifier_prob"]), prob_map, str(data["error"]))
        except (TypeError, KeyError, ValueError):
            return None   # no entry, or one of another layout: recompute it

    def put(self, result: ImageResult) -> None:
        if result.error:       # not stored: found again at once, and its message names this file
            return
        self.write(result.path, hw=np.array(result.hw), brightness=result.brightness,
                   classifier_prob=result.classifier_prob, error=result.error, has_map=result.prob_map is not None,
                   prob_map=result.prob_map if result.prob_map is not None else np.zeros((0, 0), np.float16))


# --- the predictor -----------------------------------------------------------------------

@dataclass
class Predictor:
    """Classifier gate + segmentation ensemble (+ specialist), batched, with flip TTA."""

    segmenters: list[Member]
    classifier: Member | None = None
    specialist: Member | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    tta: bool = True
    aggregate: str = "max"
    specialist_factor: float = SPECIALIST_FACTOR
    batch_size: int = 4
    workers: int = 2
    forward_chunk: int | None = None   # images per forward call (None: 1 on CPU, all on CUDA)
    maps_key: str = ""                 # what the self-correlation maps came from (SelfCorrSource.key)

    def __post_init__(self):
        if not self.segmenters:
            raise ProjectError("the predictor needs at least one segmentation model")
        if self.aggregate not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregate!r}; known: {', '.join(AGGREGATIONS)}")
        self.amp = Amp(self.device)
        if self.forward_chunk is None:
            # measured on a 2-core CPU: four batch-1 forwards of AttentionFPN-b2 at 512 px take
            # 0.98 s, one batch of 4 takes 1.48 s (cache effects); on a GPU one big batch wins
            self.forward_chunk = 1 if self.device.type == "cpu" else 1 << 16

    @property
    def map_size(self) -> int:
        return max(m.img_size for m in self.segmenters)

    def key(self) -> str:
        """Cache key: everything that changes the per-image results."""
        spec = {"version": CACHE_VERSION, "tta": self.tta, "aggregate": self.aggregate,
                "segmenters": [(m.digest, m.weight, m.img_size) for m in self.segmenters],
                "classifier": self.classifier and (self.classifier.digest, self.classifier.img_size),
                "specialist": self.specialist and (self.specialist.digest, self.specialist.img_size,
                                                   self.specialist_factor)}
        if self.needs_maps:
            spec["maps"] = self.maps_key
        return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        parts = [f"ensemble of {len(self.segmenters)}: " + ", ".join(m.describe() for m in self.segmenters)]
        parts.append(f"classifier {self.classifier.describe()}" if self.classifier else "no classifier (pass 1 off)")
        if self.specialist:
            parts.append(f"specialist {self.specialist.describe()} (union x{self.specialist_factor:g})")
        parts.append(f"TTA {'4x flips, ' + self.aggregate.upper() if self.tta else 'off'} on {self.device}")
        return "; ".join(parts)

    # -- forward passes --

    def _forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid outputs of `model` on `x`, `forward_chunk` images per call, float32."""
        outputs = []
        for chunk in torch.split(x, self.forward_chunk):
            if self.device.type == "cuda":
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            with self.amp.autocast():
                outputs.append(torch.sigmoid(model(chunk).float()))
        return torch.cat(outputs)

    def _tta(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) probabilities: the four flips as one batch of 4B, flipped back, aggregated."""
        if not self.tta:
            return self._forward(model, x)
        flips = ((), (3,), (2,), (2, 3))
        batch = torch.cat([x.flip(dims) if dims else x for dims in flips])
        probs = self._forward(model, batch).split(len(x))
        stacked = torch.stack([p.flip(dims) if dims else p for p, dims in zip(probs, flips)])
        return stacked.amax(0) if self.aggregate == "max" else stacked.mean(0)

    def _member_probs(self, member: Member, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        probs = self._tta(member.model, inputs[member.input_key])
        if member.img_size != self.map_size:
            probs = F.interpolate(probs, size=(self.map_size,) * 2, mode="bilinear", align_corners=False)
        return probs

    @torch.inference_mode()
    def segment(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        """(B, S, S) ensemble probabilities for a batch given at every member's input (Member.input_key)."""
        inputs = {s: x.to(self.device, non_blocking=True) for s, x in inputs.items()}
        total = sum(m.weight for m in self.segmenters)
        prob = sum(m.weight * self._member_probs(m, inputs) for m in self.segmenters) / total
        if self.specialist is not None:
            prob = torch.maximum(prob, self.specialist_factor * self._member_probs(self.specialist, inputs))
        return prob[:, 0].cpu().numpy()

    @torch.inference_mode()
    def classify(self, x: torch.Tensor) -> np.ndarray:
        """(B,) classifier probabilities (NaN without a classifier)."""
        if self.classifier is None:
            return np.full(len(x), np.nan)
        return self._forward(self.classifier.model, x.to(self.device)).reshape(-1).cpu().numpy()

    # -- a folder --

    def sizes(self, inputs: str = RGB_INPUTS) -> list[int]:
        """The input sizes of the members that read `inputs`."""
        members = self.segmenters + [m for m in (self.classifier, self.specialist) if m is not None]
        return sorted({m.img_size for m in members if m.inputs == inputs})

    @property
    def needs_maps(self) -> bool:
        """Whether a member reads self-correlation maps (run() then needs the matcher's outputs)."""
        return any(m.inputs == SELFCORR_INPUTS for m in self._seg_members())

    def run(self, paths: Sequence[Path], gate: float | None = None, cache: ResultCache | None = None,
            progress: bool = True, desc: str = "predict", matches: Sequence[MatchOutput] | None = None
            ) -> list[ImageResult]:
        """Results for `paths` (in order). With `gate`, pass 2 runs only where the classifier
        says >= gate; with None it runs everywhere (what sweeps need). Cached results are
        reused when they hold what is asked. `matches`: the matcher's scored outputs of `paths`,
        needed when a member reads self-correlation maps (needs_maps)."""
        paths = [Path(p) for p in paths]
        if self.needs_maps and (matches is None or len(matches) != len(paths)):
            raise ProjectError("a member reads self-correlation maps: the predictor needs the matcher's output "
                               "of every image")
        results: list[ImageResult | None] = [None] * len(paths)
        for i, match in enumerate(matches or []):
            if match.error:            # the matcher could not read it either and has said so
                results[i] = ImageResult(paths[i], match.hw, 0.0, math.nan, error=match.error)
        hits = 0
        if cache is not None:
            for i, path in enumerate(paths):
                if results[i] is not None:
                    continue
                hit = cache.get(path)
                if hit is not None and (hit.prob_map is not None or (gate is not None and not hit.passes_gate(gate))):
                    results[i] = hit
                    hits += 1
        if hits:
            log.info("%s: %d of %d images from the cache %s", desc, hits, len(paths), cache.folder)
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            started = time.perf_counter()
            todo_matches = [matches[i] for i in todo] if self.needs_maps else None
            for k, result in self._compute([paths[i] for i in todo], gate, progress, desc, todo_matches):
                if cache is not None:
                    cache.put(result)
                results[todo[k]] = result
            elapsed = time.perf_counter() - started
            log.info("%s: %d images through the network in %.1fs (%.2f img/s)", desc, len(todo), elapsed,
                     len(todo) / max(elapsed, 1e-9))
        return results  # type: ignore[return-value]

    def _compute(self, paths: list[Path], gate: float | None, progress: bool, desc: str,
                 matches: list[MatchOutput] | None):
        dataset = ImageFolderDataset(paths, self.sizes(), self.sizes(SELFCORR_INPUTS), matches)
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda")
        cls_size = self.classifier.img_size if self.classifier else None
        with progress_bar(total=len(paths), desc=desc, unit="img", progress=progress) as bar:
            for batch in loader:
                indices = batch["index"].tolist()
                ok = np.array([not e for e in batch["error"]])
                cls_probs = self.classify(batch[input_key(cls_size)]) if cls_size else np.full(len(indices), np.nan)
                need = ok & (np.isnan(cls_probs) | (cls_probs >= (gate if gate is not None else -1.0)))
                maps = {}
                if need.any():
                    selected = torch.from_numpy(np.flatnonzero(need))
                    inputs = {m.input_key: batch[m.input_key][selected] for m in self._seg_members()}
                    maps = dict(zip(np.flatnonzero(need).tolist(), self.segment(inputs).astype(np.float16)))
                for j, index in enumerate(indices):
                    error = batch["error"][j]
                    if error:
                        log.warning("%s; predicted authentic", error)
                    yield index, ImageResult(paths[index], tuple(batch["hw"][j].tolist()),
                                             float(batch["brightness"][j]),
                                             float(cls_probs[j]) if not error else math.nan, maps.get(j), error)
                bar.update(len(indices))

    def _seg_members(self) -> list[Member]:
        return self.segmenters + ([self.specialist] if self.specialist else [])


def reference_probabilities(predictor: Predictor, path: Path, match: MatchOutput | None = None
                            ) -> tuple[float, np.ndarray]:
    """The straightforward loop the batched predictor must agree with: one image, every
    model, every flip, one forward pass each, at the predictor's precision (bf16 autocast on
    CUDA); `match`: the image's scored matcher output when a member reads self-correlation maps.
    Used by the benchmark and the tests."""
    image = shrunk(load_image(Path(path)), WORKING_SIDE)
    inputs = {input_key(s): build_transforms("standard", s, train=False)(image=image)["image"][None]
              for s in predictor.sizes()}
    if predictor.needs_maps:
        maps = selfcorr_maps(match, image.shape[:2])
        for s in predictor.sizes(SELFCORR_INPUTS):
            out = build_transforms("standard", s, train=False, maps=True)(image=image, **{MAPS: maps})
            inputs[input_key(s, SELFCORR_INPUTS)] = network_input(out)[None]
    inputs = {key: x.to(predictor.device) for key, x in inputs.items()}
    with torch.inference_mode():
        def probs(member: Member) -> torch.Tensor:
            outs = []
            for dims in ((), (3,), (2,), (2, 3)) if predictor.tta else ((),):
                x = inputs[member.input_key]
                with predictor.amp.autocast():
                    out = torch.sigmoid(member.model(x.flip(dims) if dims else x).float())
                outs.append(out.flip(dims) if dims else out)
            stacked = torch.stack(outs)
            out = stacked.amax(0) if predictor.aggregate == "max" else stacked.mean(0)
            if member.img_size != predictor.map_size:
                out = F.interpolate(out, size=(predictor.map_size,) * 2, mode="bilinear", align_corners=False)
            return out

        prob = torch.zeros(1, 1, predictor.map_size, predictor.map_size, device=predictor.device)
        for member in predictor.segmenters:
            prob = prob + member.weight * probs(member)
        prob = prob / sum(m.weight for m in predictor.segmenters)
        if predictor.specialist is not None:
            prob = torch.maximum(prob, predictor.specialist_factor * probs(predictor.specialist))
        cls = math.nan
        if predictor.classifier is not None:
            x = inputs[input_key(predictor.classifier.img_size)]
            with predictor.amp.autocast():
                cls = float(torch.sigmoid(predictor.classifier.model(x).float()).reshape(-1)[0])
    return cls, prob[0, 0].cpu().numpy()


# --- building a predictor and turning results into a submission -------------------------------

def predictor_checkpoints(models_dir: Path, ensemble: Sequence[str] | None = None, stage: str = "v4",
                          use_classifier: bool = True, use_specialist: bool = True
                          ) -> tuple[list[tuple[Path, float]], Path | None, Path | None]:
    """What `load_predictor` loads: the segmentation (path, weight) pairs, and the classifier's
    and the specialist's checkpoints (None when not asked for or not there). A missing
    ensemble checkpoint is an error; a missing classifier a warning (pass 1 then off)."""
    specs = [parse_member_spec(s) for s in ensemble] if ensemble else default_ensemble(models_dir, stage)
    for path, _ in specs:
        if not path.is_file():
            raise ProjectError(f"{path}: checkpoint not found")
    classifier_path = find_best(models_dir, CLASSIFIER.run_name) if use_classifier else None
    if use_classifier and classifier_path is None:
        log.warning("%s not found: pass 1 off, every image goes to the ensemble "
                    "(python bin/script_2_train_classifier.py trains it)",
                    best_checkpoint(models_dir, CLASSIFIER.run_name))
    specialist_path = find_best(models_dir, SPECIALIST_RUN) if use_specialist else None
    return specs, classifier_path, specialist_path


def load_predictor(models_dir: Path, device: str = "auto", ensemble: Sequence[str] | None = None,
                   stage: str = "v4", use_classifier: bool = True, use_specialist: bool = True,
                   **options) -> Predictor:
    """The pipeline's predictor from the checkpoints in `models_dir` (or `ensemble` specs
    'path[:weight]'), with the classifier and the specialist when their checkpoints exist."""
    torch_device = resolve_device(device)
    specs, classifier_path, specialist_path = predictor_checkpoints(models_dir, ensemble, stage, use_classifier,
                                                                    use_specialist)
    package = package_of(models_dir)
    if package is not None:     # a Kaggle package's models: each file as package.json records it
        checked = verify_package(package, [p for p, _ in specs] + [p for p in (classifier_path, specialist_path) if p])
        log.info("%d checkpoint(s) match the sizes and sha256 in %s", checked, package / "package.json")
    segmenters = [load_member(p, torch_device, w, task="segmentation") for p, w in specs]
    classifier = load_member(classifier_path, torch_device, task="classification") if classifier_path else None
    specialist = load_member(specialist_path, torch_device, task="segmentation") if specialist_path else None
    predictor = Predictor(segmenters, classifier, specialist, torch_device, **options)
    log.info("predictor: %s", predictor.describe())
    return predictor


def result_instances(result: ImageResult, config: PostConfig) -> list[np.ndarray]:
    """The predicted instances of one image under `config` ([] means authentic): the networks'
    (gated by the classifier), the matcher's, or both fused (lib.inference.fusion)."""
    if result.error:
        return []
    network = []
    if (config.fusion != "matcher" and result.prob_map is not None
            and result.passes_gate(config.classifier_threshold)):
        image = load_image(result.path) if config.instance_mode == "similar" else None
        network = postprocess(result.prob_map, result.hw, result.brightness, config, image)
    if config.fusion == "network":
        return network
    if result.match is None:
        raise ProjectError(f"{result.path}: fusion {config.fusion!r} needs the matcher's output")
    return fuse(network, result.match.above(matcher_threshold(result.match, config)), config.fusion)


def matcher_threshold(match: MatchOutput, config: PostConfig) -> float:
    """The score a matcher event needs to count under `config`: its own, or the verifier's threshold."""
    return match.threshold if config.matcher_threshold is None else config.matcher_threshold


def predict_annotations(results: Sequence[ImageResult], config: PostConfig,
                        progress: bool = False) -> dict[str, str]:
    """case_id -> submission annotation for every result."""
    return {r.case_id: annotation_from_instances(result_instances(r, config))
            for r in tqdm(results, desc="post-process", unit="img", disable=not progress)}


def post_config_from_args(args, models_dir: Path, given: Collection[str] = ()) -> PostConfig:
    """The post-processing the flags ask for (post_and_tuning_from_args, without the tuning)."""
    return post_and_tuning_from_args(args, models_dir, given)[0]


def post_and_tuning_from_args(args, models_dir: Path, given: Collection[str] = ()
                              ) -> tuple[PostConfig, Tuned | None]:
    """The post-processing the flags ask for, and the tuning it comes from (None unless `--fusion
    auto` found one). `--fusion auto`: the settings validated for the models at hand
    (lib.inference.tuned: <models-dir>/postprocess.json, its key checked against them), or
    without any, the matcher alone at its verifier's threshold (logged either way). `given`: the
    flags' destinations on the command line (lib.flags.given_dests); under auto a
    post-processing flag given as well is an error, since the validated settings would not be
    what runs."""
    try:
        if args.fusion != AUTO:
            return from_args(PostConfig, args), None
        fixed = [name for name in sorted(given) if name in POST_FIELDS and name != "fusion"]
        if fixed:
            spelled = ", ".join("--" + name.replace("_", "-") for name in fixed)
            raise ProjectError(f"{spelled} with --fusion auto: auto runs the settings validated for the models "
                               f"({Path(models_dir) / TUNED_FILE}, or the matcher alone without it); to set them "
                               f"yourself, choose the rule too (--fusion {'|'.join(FUSIONS)})")
        package = package_of(models_dir)
        if package is not None and (Path(models_dir) / TUNED_FILE).exists():
            verify_package(package, [Path(models_dir) / TUNED_FILE])     # a packaged file: as recorded
        tuned = read_tuned(models_dir)
        if tuned is None:
            log.info("--fusion auto: no tuned post-processing for these models (%s; %s writes it): the matcher "
                     "alone at its verifier's threshold", Path(models_dir) / TUNED_FILE, RETUNE)
            return from_args(PostConfig, args, fusion="matcher", matcher_threshold=None), None
        check_tuned(tuned, models_key(from_args(PredictorOptions, args), models_dir, tuned.key.networks is not None,
                                      tuned.key.matcher is not None))
        log.info("--fusion auto: %s", tuned.describe())
        return tuned.post, tuned
    except ValueError as exc:
        raise ProjectError(str(exc)) from None


def models_key(options: PredictorOptions, models_dir: Path, networks: bool, matcher: bool,
               split: Sequence[str] | None = None) -> TunedKey:
    """The key (lib.inference.tuned) of what `options` run from `models_dir`: its networks' part
    when `networks`, its matcher's when `matcher`, and the held-out case_ids `split`."""
    networks_part = matcher_part = None
    if networks:
        specs, classifier, specialist = predictor_checkpoints(models_dir, options.ensemble, options.stage,
                                                              options.classifier, options.specialist)
        networks_part = networks_key(specs, classifier, specialist, options.tta, options.aggregate)
    if matcher:
        matcher_part = matcher_identity(options, models_dir)
    return TunedKey(networks_part, matcher_part, None if split is None else split_key(split))


def predictor_of(options: PredictorOptions, models_dir: Path) -> Predictor:
    """The predictor `options` ask for, from the checkpoints in `models_dir`."""
    if options.batch_size < 1:
        raise ProjectError(f"--batch-size {options.batch_size}: must be at least 1")
    return load_predictor(models_dir, options.device, options.ensemble, options.stage, options.classifier,
                          options.specialist, tta=options.tta, aggregate=options.aggregate,
                          batch_size=options.batch_size, workers=options.workers)


def predict_paths(options: PredictorOptions, models_dir: Path, paths: Sequence[Path], fusion: str,
                  gate: float | None, desc: str = "predict", matcher: bool | None = None,
                  predictor: Predictor | None = None) -> tuple[list[ImageResult], str]:
    """Every member that `options` and the fusion rule (resolved: not auto) ask for, run on
    `paths`: the networks (two-pass, gated at `gate`; not loaded with fusion matcher) and the
    copy-move matcher (with any fusion but `network`, or when `matcher` says so), each with its
    cache (unless options.cache is off). Returns the results and a one-line description of
    what ran. A notebook calls it with options it builds:
    `predict_paths(PredictorOptions(stage="v3"), Path("models"), paths, "first", gate=0.25)`.
    `predictor`: one predictor_of(options, models_dir) loaded before (a caller with many folders)."""
    progress = options.progress
    matcher = fusion != "network" if matcher is None else matcher
    if fusion == "matcher":
        predictor = None
    elif predictor is None:
        predictor = predictor_of(options, models_dir)
    needs_maps = predictor is not None and predictor.needs_maps
    matches = None
    if matcher or needs_maps:
        if options.match_workers < 1:
            raise ProjectError(f"--match-workers {options.match_workers}: must be at least 1")
        config, verifier, matcher_name = matcher_of(options, models_dir)
        if needs_maps and config.decision != "verifier":
            raise ProjectError("the ensemble has a self-correlation member, whose maps come from matcher v2: "
                               "drop --matcher v1")
        cache = MatchCache(models_dir / "cache", config) if options.cache else None
        matches = run_matcher(paths, config, cache, options.match_workers, progress, desc=f"{desc}: match",
                              verifier=verifier)
    if predictor is not None:
        if needs_maps:
            predictor.maps_key = maps_key(config, verifier)
        cache = ResultCache(models_dir / "cache", predictor.key()) if options.cache else None
        results = predictor.run(paths, gate=gate, cache=cache, progress=progress, desc=desc, matches=matches)
        described = predictor.describe()
    else:
        results = [result_of_match(match) for match in matches]
        described = "no networks"
    if matcher:
        for result, match in zip(results, matches):
            result.match = match
        described += f"; {matcher_name}"
    return results, described


def result_of_match(match: MatchOutput) -> ImageResult:
    """The result of an image the matcher alone saw (no network: no map, no classifier)."""
    return ImageResult(match.path, match.hw, 0.0, math.nan, error=match.error, match=match)


def folder_images(folder: Path) -> list[Path]:
    """The images of a test folder; an empty or missing folder, or two images sharing a case_id,
    is a clear error."""
    if not Path(folder).is_dir():
        raise ProjectError(f"{folder}: no such folder")
    listing = find_images(folder)
    for line in listing.skipped:        # no row for these: they are not files a case_id can name
        log.warning("%s", line)
    paths = listing.paths
    if not paths:
        skipped = f"; {len(listing.skipped)} skipped" if listing.skipped else ""
        inside = [(d.name, len(list_images(d))) for d in sorted(Path(folder).iterdir()) if d.is_dir()]
        inside = [f"{name}/ ({n})" for name, n in inside if n]
        hint = (f"; sub-folders are not looked into, and {', '.join(inside)} hold images: pass one as --input-dir"
                if inside else "")
        raise ProjectError(f"{folder}: no images found (expected the Kaggle test_images layout: image files "
                           f"directly in the folder{skipped}){hint}")
    if listing.skipped:
        log.warning("%d entries that look like images skipped (no row for them), %d images to predict",
                    len(listing.skipped), len(paths))
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise ProjectError(f"{path}: shares the case_id {path.stem} with {seen[path.stem]}")
        seen[path.stem] = path
    return paths


def write_predictions(results: Sequence[ImageResult], config: PostConfig, output: Path,
                      progress: bool = False) -> str:
    """Post-process `results` under `config`, write a validated submission to `output`, and
    return the line that says what was written."""
    annotations = predict_annotations(results, config, progress)
    shapes = {r.case_id: (None if r.error else r.hw) for r in results}
    write_submission(annotations, output, shapes)
    forged = sum(a != AUTHENTIC for a in annotations.values())
    unreadable = sum(bool(r.error) for r in results)
    said = f", {unreadable} of them unreadable (one warning each above)" if unreadable else ""
    return (f"{output}: {len(annotations)} rows, {forged} forged, {len(annotations) - forged} authentic{said} "
            f"({config.summary()})")
