"""Every flag the scripts share, declared in one module that imports no heavy library.

A script builds its parser from these groups and parses its command line before it imports
torch, albumentations or scikit-learn, so `--help` and a mistyped flag answer at once. The
option dataclasses and constants that the flags' defaults and help read live here too
(TrainOptions; the mixed-precision modes, TTA aggregations, matcher versions, the verifier's file
name); the modules that use them import them from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .paths import BEST_SUFFIX, HARD_NEGATIVES_FILE, LAST_SUFFIX
from .postprocess import AUTO, FUSIONS, INSTANCE_MODES, PostConfig

AMP_MODES = ("auto", "bf16", "fp16", "off")    # --amp
AGGREGATIONS = ("max", "mean")                 # --aggregate: how flip-TTA probabilities combine
MATCHERS = ("v2", "v1")                        # --matcher
VERIFIER_NAME = "match_verifier.json"          # the fitted verifier in the models dir
DEFAULT_VERIFIER = Path(__file__).parent / "matching" / "default_verifier.json"   # the committed one
VERIFIER_NEGATIVES = 200                       # synthetic hard negatives added to the verifier's training figures
AUTHENTIC_STRENGTHS = ("light", "medium", "strong")   # authentic augmentation presets (lib.augment)
KAGGLE_PYTHON = "3.11"                         # Python of Kaggle's notebook image (make_kaggle_package.py)


@dataclass
class TrainOptions:
    """Run settings from the command line; None means 'the variant's default'."""

    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    img_size: int | None = None
    workers: int = 2
    seed: int = 42
    device: str = "auto"
    encoder_weights: str = "imagenet"
    limit: int | None = None          # at most this many train and val images (smoke runs)
    resume: bool = False
    overwrite: bool = False           # archive an earlier run of the same name to <models>/previous/ and start anew
    use_hard_negatives: bool = True
    use_augmented: bool = True        # the phase-0 copies of training images, when there are any
    weight_decay: float = 1e-4
    val_threshold: float = 0.5        # probability threshold of the validation score
    progress: bool = True
    # GPU speed paths (no effect on CPU)
    amp: str = "auto"                 # auto (bf16 where supported, else fp16 + scaler) | bf16 | fp16 | off
    channels_last: bool = True
    compile: bool = False             # torch.compile the model (slow first epoch, faster after)
    cudnn_benchmark: bool = True
    persistent_workers: bool = False  # faster epoch starts; a resumed run then draws other augmentations
    tensorboard: bool = False         # also TensorBoard event files under <logs>/tensorboard/<run>/


def add_training_args(parser) -> None:
    """The flags every training script shares (argparse parser)."""
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=None, help="epochs (default: the variant's)")
    group.add_argument("--lr", type=float, default=None, help="learning rate (default: the variant's)")
    group.add_argument("--batch-size", type=int, default=None, help="batch size (default: the variant's)")
    group.add_argument("--img-size", type=int, default=None,
                       help="square training size, a multiple of 32 (default: the variant's)")
    group.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: 2)")
    group.add_argument("--seed", type=int, default=42, help="seed of python, numpy, torch (default: 42)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--encoder-weights", default="imagenet",
                       help="imagenet (download), none, or a local weights file (default: imagenet)")
    group.add_argument("--limit", type=int, default=None,
                       help="use at most N training and N validation images (smoke runs)")
    group.add_argument("--resume", action="store_true", help=f"continue from <run>{LAST_SUFFIX}")
    group.add_argument("--overwrite", action="store_true",
                       help="start anew over an earlier run of the same name (its files move to "
                            "<models-dir>/previous/)")
    group.add_argument("--no-hard-negatives", action="store_true",
                       help=f"ignore <data-dir>/{HARD_NEGATIVES_FILE}")
    group.add_argument("--no-augmented", action="store_true",
                       help="leave out the augmented copies (bin/generate_*_augmented.py) from training")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    gpu = parser.add_argument_group("GPU speed (no effect on CPU)")
    gpu.add_argument("--amp", default="auto", choices=AMP_MODES,
                     help="mixed precision: auto = bf16 where supported, else fp16 with a gradient scaler (default)")
    gpu.add_argument("--no-channels-last", action="store_true", help="keep the NCHW memory layout")
    gpu.add_argument("--compile", action="store_true", help="torch.compile the model (slow first epoch)")
    gpu.add_argument("--no-cudnn-benchmark", action="store_true", help="no cuDNN autotuning")
    gpu.add_argument("--persistent-workers", action="store_true",
                     help="keep DataLoader workers between epochs (a resumed run then draws other augmentations)")
    group.add_argument("--tensorboard", action="store_true",
                       help="also write TensorBoard event files to <logs-dir>/tensorboard/<run>/ (needs the "
                            "tensorboard package; <run>_history.csv and <run>_curves.png are written beside the "
                            "checkpoints anyway)")


def options_from_args(args) -> TrainOptions:
    """TrainOptions from parsed `add_training_args` flags."""
    return TrainOptions(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, img_size=args.img_size,
                        workers=args.workers, seed=args.seed, device=args.device,
                        encoder_weights=args.encoder_weights, limit=args.limit, resume=args.resume,
                        overwrite=args.overwrite,
                        use_hard_negatives=not args.no_hard_negatives, use_augmented=not args.no_augmented,
                        progress=not args.no_progress, amp=args.amp, channels_last=not args.no_channels_last,
                        compile=args.compile, cudnn_benchmark=not args.no_cudnn_benchmark,
                        persistent_workers=args.persistent_workers, tensorboard=args.tensorboard)


def add_inference_args(parser, post: bool = True) -> None:
    """The predictor's flags (and the post-processing thresholds when `post`)."""
    group = parser.add_argument_group("predictor")
    group.add_argument("--ensemble", action="append", default=None, metavar="PATH[:WEIGHT]",
                       help="segmentation checkpoint and its weight (repeatable; default: the "
                            f"variants' <name>_<stage>{BEST_SUFFIX} in --models-dir with their weights)")
    group.add_argument("--stage", default="v4", choices=["v4", "v3"],
                       help="which default checkpoints to use; v4 falls back to v3 per variant (default v4)")
    group.add_argument("--aggregate", default="max", choices=AGGREGATIONS, help="flip TTA aggregation")
    group.add_argument("--no-tta", action="store_true", help="no flip TTA")
    group.add_argument("--no-classifier", action="store_true", help="skip pass 1 (every image to pass 2)")
    group.add_argument("--no-specialist", action="store_true", help="leave the small-forgery specialist out")
    group.add_argument("--batch-size", type=int, default=4, help="images per batch (default 4)")
    group.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    group.add_argument("--match-workers", type=int, default=2,
                       help="images the copy-move matcher works on at a time, in threads (default 2)")
    add_matcher_args(group)
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the result caches")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    if post:
        add_post_args(parser)


def add_post_args(parser) -> None:
    defaults = PostConfig()
    group = parser.add_argument_group("post-processing")
    group.add_argument("--classifier-threshold", type=float, default=defaults.classifier_threshold,
                       help=f"pass 1 gate (default {defaults.classifier_threshold})")
    group.add_argument("--seg-threshold", type=float, default=defaults.seg_threshold,
                       help=f"base pixel threshold (default {defaults.seg_threshold})")
    group.add_argument("--min-area", type=int, default=defaults.min_area,
                       help=f"drop regions smaller than this many pixels (default {defaults.min_area})")
    group.add_argument("--no-adaptive", action="store_true", help="no brightness-adaptive threshold")
    group.add_argument("--instances", default=defaults.instance_mode, choices=INSTANCE_MODES,
                       help="instance forming: one instance of all regions (default), regions grouped "
                            "by similarity, or one per region")
    group.add_argument("--fusion", default=defaults.fusion, choices=(*FUSIONS, AUTO),
                       help="segmentation networks alone (default), the copy-move matcher alone, the "
                            "matcher first with the networks where it finds nothing, their union, or auto: "
                            "the rule the newest validate_test.py --compare-fusion preferred on the held-out "
                            "split (network when there is none)")
    group.add_argument("--matcher-threshold", type=float, default=defaults.matcher_threshold,
                       help="matcher events of at least this probability of being a real copy count (default: "
                            "the verifier's own threshold, chosen on held-out figures when it was fitted; "
                            "--matcher v1: the fine-detail correlation, default 0.85)")


def add_matcher_args(group) -> None:
    """--matcher and --match-verifier, for every script that runs the matcher."""
    group.add_argument("--matcher", default="v2", choices=MATCHERS,
                       help="v2: liberal candidates judged by the learned verifier (default); v1: the hand-set "
                            "cascade of cut-offs, kept to compare")
    group.add_argument("--match-verifier", type=Path, default=None, metavar="PATH",
                       help=f"the verifier's JSON file (default: <models-dir>/{VERIFIER_NAME} when the pipeline "
                            "fitted one, else the committed default)")


def add_generation_args(parser) -> None:
    """The flags both augmenters share (argparse parser)."""
    group = parser.add_argument_group("generation")
    group.add_argument("--workers", type=int, default=2, help="parallel threads (default: 2)")
    group.add_argument("--seed", type=int, default=42,
                       help="seed; copy k of an image depends only on (seed, image, k) (default: 42)")
    group.add_argument("--overwrite", action="store_true",
                       help="remake copies that exist (default: keep them, so an interrupted run resumes)")
    group.add_argument("--limit", type=int, default=None, help="augment only the first N images (smoke runs)")
    group.add_argument("--samples", type=int, default=8,
                       help="copies shown in the sample sheet written next to the log (default: 8; 0: none)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
