"""Every flag the scripts share, declared in one module that imports no heavy library.

A script builds its parser from these groups and parses its command line before it imports
torch, albumentations or scikit-learn, so `--help` and a mistyped flag answer at once. The
option dataclasses and constants that the flags' defaults and help read live here too
(TrainOptions, PredictorOptions, the post-processing's PostConfig; the mixed-precision modes,
TTA aggregations, matcher versions, the verifier's file name); the modules that use them import
them from here, so this module sits at the bottom of lib's import graph (flags and paths only).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .flags import Flag, add_args, add_flag, flag, flagged, from_args
from .paths import BEST_SUFFIX, HARD_NEGATIVES_FILE, LAST_SUFFIX

AMP_MODES = ("auto", "bf16", "fp16", "off")    # --amp
AGGREGATIONS = ("max", "mean")                 # --aggregate: how flip-TTA probabilities combine
MATCHERS = ("v3", "v2", "v1")                  # --matcher
VERIFIER_NAME = "match_verifier.json"          # the fitted verifier in the models dir
DEFAULT_VERIFIER = Path(__file__).parent / "matching" / "default_verifier.json"   # the committed one
VERIFIER_NEGATIVES = 200                       # synthetic hard negatives added to the verifier's training figures
AUTHENTIC_STRENGTHS = ("light", "medium", "strong")   # authentic augmentation presets (lib.data.augment)
KAGGLE_PYTHON = "3.11"                         # Python of Kaggle's notebook image (make_kaggle_package.py)

# post-processing: the choices lib.inference.postprocess applies, here so that flags need not import cv2
INSTANCE_MODES = ("all", "similar", "components")
FUSIONS = ("network", "matcher", "first", "union")   # see lib.inference.fusion
AUTO = "auto"          # --fusion auto: the settings validated for the models (lib.inference.tuned)


@dataclass(frozen=True)
class PostConfig:
    """Every post-processing choice of the pipeline, with the seeds' inference defaults."""

    classifier_threshold: float = flag(0.25, "--classifier-threshold",
                                       "pass 1 gate: below this probability of forgery the image is authentic")
    seg_threshold: float = flag(0.35, "--seg-threshold", "base pixel threshold, adapted by brightness")
    min_area: int = flag(300, "--min-area", "drop regions smaller than this many pixels (original size)")
    adaptive: bool = flag(True, "--no-adaptive", "no brightness-adaptive threshold (adaptive_threshold)")
    instance_mode: str = flag("all", "--instances", "instance forming: one instance of all regions, regions "
                              "grouped by similarity, or one per region", choices=INSTANCE_MODES)
    similarity: float = 0.5              # NCC above which two regions are one event (`similar`)
    fusion: str = flag("network", "--fusion", "segmentation networks alone, the copy-move matcher alone, the "
                       "matcher first with the networks where it finds nothing, their union (lib.inference.fusion), or "
                       "auto: the rule and thresholds validated for these models (<models-dir>/postprocess.json, "
                       "written by validate_test.py --compare-fusion / --sweep; the matcher alone where there is "
                       "none)", choices=(*FUSIONS, AUTO))
    matcher_threshold: float | None = flag(None, "--matcher-threshold", "matcher events of at least this "
                                           "probability of being a real copy count (default: the verifier's own "
                                           "threshold, chosen on held-out figures when it was fitted; --matcher "
                                           "v1: the fine-detail correlation, 0.85)", type=float)

    def __post_init__(self):
        given = {"classifier_threshold": self.classifier_threshold, "seg_threshold": self.seg_threshold,
                   "similarity": self.similarity, "matcher_threshold": self.matcher_threshold}
        for name, value in given.items():    # what a settings file holds is checked too: "0.3" is no number
            if not (value is None and name == "matcher_threshold") and (
                    not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.min_area, numbers.Integral) or isinstance(self.min_area, bool):
            raise ValueError(f"min_area must be an integer, got {self.min_area!r}")
        if type(self.adaptive) is not bool:
            raise ValueError(f"adaptive must be true or false, got {self.adaptive!r}")
        if self.instance_mode not in INSTANCE_MODES:
            raise ValueError(f"unknown instance mode {self.instance_mode!r}; known: {', '.join(INSTANCE_MODES)}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; known: {', '.join(FUSIONS)}")
        thresholds = (self.seg_threshold, self.classifier_threshold,
                      0.5 if self.matcher_threshold is None else self.matcher_threshold)
        if not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError("thresholds must lie in [0, 1]")
        if self.min_area < 0:
            raise ValueError(f"min_area must be >= 0, got {self.min_area}")

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs and reports."""
        seg = f"seg {self.seg_threshold:g}" + (" (brightness-adaptive)" if self.adaptive else "")
        network = (f"classifier {self.classifier_threshold:g} | {seg} | min area {self.min_area} | "
                   f"instances {self.instance_mode}")
        matcher = ("matcher: the verifier's threshold" if self.matcher_threshold is None
                   else f"matcher score >= {self.matcher_threshold:g}")
        return {"network": network, "matcher": matcher}.get(self.fusion,
                                                            f"fusion {self.fusion}: {matcher} | {network}")


POST_FIELDS = frozenset(f.name for f in dataclasses.fields(PostConfig))


# flags several option sets and scripts share, each declared here once
PROGRESS = Flag("--no-progress", "no progress bars")
CACHE = Flag("--no-cache", "neither read nor write the result caches (networks' and matcher's)")
WORKERS = Flag("--workers", "DataLoader worker processes")
MATCH_WORKERS = Flag("--match-workers", "images the copy-move matcher works on at a time, in threads")
DEVICE = Flag("--device", "auto, cpu, cuda or cuda:N")
SEED = Flag("--seed", "the seed of everything random in the run")
JOBS = Flag("--jobs", "things worked on at a time: images made or augmented, documents scanned (threads or "
                      "processes)")


def usable_cpus() -> int:
    """The cores this process may run on (its affinity, where the system says), at least 1."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


SHARED = {"progress": PROGRESS, "cache": CACHE, "workers": WORKERS, "match_workers": MATCH_WORKERS, "jobs": JOBS,
          "device": DEVICE, "seed": SEED}


def add_switches(parser, *names: str) -> None:
    """The shared on/off flags `names` ("progress": --no-progress, "cache": --no-cache), on by default."""
    for name in names:
        add_shared(parser, name, True)


def add_shared(parser, name: str, default, *old: str) -> None:
    """The shared flag `name` (a key of SHARED) with this script's default, and the script's
    earlier spellings of it (accepted, hidden, warned about)."""
    add_flag(parser, name, dataclasses.replace(SHARED[name], aliases=old), default)


@dataclass
class TrainOptions:
    """A training run's settings from the command line; None means 'the variant's default'."""

    epochs: int | None = flag(None, "--epochs", "epochs (default: the variant's)", type=int)
    lr: float | None = flag(None, "--lr", "learning rate (default: the variant's)", type=float)
    batch_size: int | None = flag(None, "--batch-size", "batch size (default: the variant's)", type=int)
    img_size: int | None = flag(None, "--img-size", "square training size, a multiple of 32 (default: the "
                                "variant's)", type=int)
    encoder: str | None = flag(None, "--encoder", "the network's encoder: an smp name for a segmenter "
                               "(timm-efficientnet-b2, resnet18, ...), a timm name for the classifier "
                               "(efficientnet_b2, resnet18, ...) (default: the variant's; v4 keeps its v3 "
                               "checkpoint's)")
    workers: int = flag(2, WORKERS)
    seed: int = flag(42, SEED)
    device: str = flag("auto", DEVICE)
    encoder_weights: str = flag("imagenet", "--encoder-weights", "imagenet (download), none, or a local weights file")
    limit: int | None = flag(None, "--limit", "use at most N training and N validation images (smoke runs)",
                             type=int, metavar="N")
    resume: bool = flag(False, "--resume", f"continue from <run>{LAST_SUFFIX}")
    overwrite: bool = flag(False, "--overwrite", "start anew over an earlier run of the same name (its files move "
                           "to <models-dir>/previous/ once the new run has its first checkpoint)")
    keep_previous: int = flag(1, "--keep-previous", "earlier runs of a name kept in <models-dir>/previous/ (the "
                              "oldest beyond this are deleted)", type=int, metavar="N")
    keep_last: bool = flag(False, "--keep-last", f"keep <run>{LAST_SUFFIX}, the resume state (about 100 MB), when "
                           "the run finishes (to --resume it for more epochs later); by default it is removed")
    use_hard_negatives: bool = flag(True, "--no-hard-negatives", f"ignore <data-dir>/{HARD_NEGATIVES_FILE}")
    use_augmented: bool = flag(True, "--no-augmented", "leave out the augmented copies (bin/generate_*_augmented.py) "
                               "from training")
    progress: bool = flag(True, PROGRESS)
    tensorboard: bool = flag(False, "--tensorboard", "also write TensorBoard event files to <logs-dir>/tensorboard/"
                             "<run>/ (needs the tensorboard package; <run>_history.csv and <run>_curves.png are "
                             "written beside the checkpoints anyway)")
    # GPU speed paths (no effect on CPU)
    amp: str = flag("auto", "--amp", "mixed precision: auto = bf16 where supported, else fp16 with a gradient "
                    "scaler", choices=AMP_MODES)
    channels_last: bool = flag(True, "--no-channels-last", "keep the NCHW memory layout")
    compile: bool = flag(False, "--compile", "torch.compile the model (slow first epoch)")
    cudnn_benchmark: bool = flag(True, "--no-cudnn-benchmark", "no cuDNN autotuning")
    persistent_workers: bool = flag(False, "--persistent-workers", "keep DataLoader workers between epochs (a "
                                    "resumed run then draws other augmentations)")


GPU_TRAINING = ("amp", "channels_last", "compile", "cudnn_benchmark", "persistent_workers")


def add_training_args(parser) -> None:
    """The flags every training script shares (argparse parser)."""
    names = [f.name for f, _ in flagged(TrainOptions)]
    add_args(TrainOptions, parser, "training", only=[n for n in names if n not in GPU_TRAINING])
    add_args(TrainOptions, parser, "GPU speed (no effect on CPU)", only=GPU_TRAINING)


def options_from_args(args) -> TrainOptions:
    """TrainOptions from parsed `add_training_args` flags."""
    return from_args(TrainOptions, args)


@dataclass
class PredictorOptions:
    """What the predictor runs and how (the networks, their test-time augmentation, the matcher
    beside them), and the switches of a predicting script."""

    ensemble: list[str] | None = flag(None, "--ensemble", "segmentation checkpoint and its weight (repeatable; "
                                      "default: the variants' <name>_<stage>" + BEST_SUFFIX + " in --models-dir "
                                      "with their weights)", append=True, metavar="PATH[:WEIGHT]")
    stage: str = flag("v4", "--stage", "which default checkpoints to use; v4 falls back to v3 per variant",
                      choices=("v4", "v3"))
    aggregate: str = flag("max", "--aggregate", "flip TTA aggregation", choices=AGGREGATIONS)
    tta: bool = flag(True, "--no-tta", "no flip TTA")
    classifier: bool = flag(True, "--no-classifier", "skip pass 1 (every image to pass 2)")
    specialist: bool = flag(True, "--no-specialist", "leave the small-forgery specialist out")
    batch_size: int = flag(4, "--batch-size", "images per batch")
    workers: int = flag(2, WORKERS)
    device: str = flag("auto", DEVICE)
    match_workers: int = flag(2, MATCH_WORKERS)
    matcher: str = flag("v3", "--matcher", "v3: liberal candidates (small copies too) judged by the learned "
                        "verifier; v2: v3 without its fine stage for small copies; v1: the hand-set cascade of "
                        "cut-offs; both kept to compare", choices=MATCHERS)
    match_verifier: Path | None = flag(None, "--match-verifier", "the verifier's JSON file (default: <models-dir>/"
                                       + VERIFIER_NAME + " when the pipeline fitted one, else the committed "
                                       "default)", type=Path, metavar="PATH")
    cache: bool = flag(True, CACHE)
    progress: bool = flag(True, PROGRESS)


# what a Kaggle package records of the predictor (make_kaggle_package.py; the rest is the machine's)
PACKAGED = ("ensemble", "stage", "aggregate", "tta", "classifier", "specialist", "batch_size")


def add_inference_args(parser, post: bool = True, **post_defaults) -> None:
    """The predictor's flags (and the post-processing thresholds when `post`, with `post_defaults`
    overriding PostConfig's defaults, e.g. fusion=AUTO)."""
    add_args(PredictorOptions, parser, "predictor")
    if post:
        add_post_args(parser, **post_defaults)


def add_post_args(parser, **defaults) -> None:
    """The post-processing flags (PostConfig's), with `defaults` overriding the config's."""
    add_args(PostConfig, parser, "post-processing", defaults=defaults)


def add_matcher_args(parser) -> None:
    """--matcher and --match-verifier, for every script that runs the matcher."""
    add_args(PredictorOptions, parser, only=("matcher", "match_verifier"))


def add_generation_args(parser) -> None:
    """The flags both augmenters share (argparse parser)."""
    group = parser.add_argument_group("generation")
    add_shared(group, "jobs", 2, "--workers")
    add_shared(group, "seed", 42)           # copy k of an image depends only on (seed, image, k)
    group.add_argument("--overwrite", action="store_true",
                       help="remake copies that exist (default: keep them, so an interrupted run resumes)")
    group.add_argument("--limit", type=int, default=None, help="augment only the first N images (smoke runs)")
    group.add_argument("--samples", type=int, default=8,
                       help="copies shown in the sample sheet written next to the log (default: 8; 0: none)")
    add_switches(group, "progress")
