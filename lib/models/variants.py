"""The training variants, each a small config: what differs between them is here and nowhere else.

The seeds name four v3 segmentation models but train them with one recipe; here each
variant changes something real (loss shape, FP penalty, sampling, augmentation), stated
in its description; a fifth, `selfcorr`, also reads the image's self-correlation maps
(lib.inference.selfcorr). v4 is each v3 variant fine-tuned (v4_of); the specialist trains from scratch on
small forgeries, cropped around them (SmallForgeries).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

# What a network reads: the RGB image, or the image and its self-correlation maps (lib.inference.selfcorr):
# the matcher's dense-field similarity and agreement (lib.matching.FIELD_MAPS) and its candidates.
RGB_INPUTS = "rgb"
SELFCORR_INPUTS = "rgb+selfcorr"             # model config "inputs" of a network that reads the maps
INPUTS = (RGB_INPUTS, SELFCORR_INPUTS)
SELFCORR_CHANNELS = ("similarity", "agreement", "candidate")


def input_channels(inputs: str) -> int:
    """The number of input channels of a network reading `inputs`."""
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; known: {', '.join(INPUTS)}")
    return 3 + (len(SELFCORR_CHANNELS) if inputs == SELFCORR_INPUTS else 0)


@dataclass(frozen=True)
class LossConfig:
    """Weights and shape of CombinedLoss; what the v3 / v4 / specialist variants change."""

    focal_weight: float = 0.5
    dice_weight: float = 0.5
    fp_penalty: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    dice_per_image: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SampleWeights:
    """Sampling weight of a training image by kind; forged images by forged-area fraction."""

    tiny: float = 3.0            # forged, fraction < tiny_below
    medium: float = 2.0          # forged, tiny_below <= fraction < medium_below
    large: float = 1.0           # forged, fraction >= medium_below
    authentic: float = 1.0
    hard_negative: float = 5.0   # authentic images the pipeline called forged (HARD_NEGATIVES_FILE)
    tiny_below: float = 0.01
    medium_below: float = 0.05


@dataclass(frozen=True)
class SmallForgeries:
    """A variant that trains on small forgeries only (the specialist): which images, and how
    they are cropped. Forged training images with a forged fraction under `below` are kept;
    authentic images stay in as negatives. With probability `crop_probability` a forged image is
    cropped around one forged region (a square `crop_scale` times the region's extent, at
    least `min_crop` px, the region always inside) and an authentic one at a random place with
    a side of `min_crop`..4x`min_crop`; otherwise the whole image is used, the scale the
    specialist sees at inference. Validation: the held-out small forgeries and authentic images,
    whole, as in inference."""

    below: float = 0.02
    crop_probability: float = 0.75
    crop_scale: tuple[float, float] = (2.0, 4.0)
    min_crop: int = 128
    min_images: int = 5          # fewer small forgeries in training: refuse to train


@dataclass(frozen=True)
class Variant:
    """One trainable model: architecture, loss, sampling, augmentation and default schedule."""

    name: str
    description: str
    task: str                       # "segmentation" or "classification"
    model: dict                     # the model config stored in checkpoints (lib.models.networks.build_model)
    loss: str = "combined"
    loss_config: LossConfig = LossConfig()
    weights: SampleWeights = field(default_factory=SampleWeights)
    augment: str = "standard"
    img_size: int = 512
    epochs: int = 25
    lr: float = 1e-4
    weight_decay: float = 1e-4      # AdamW's
    batch_size: int = 4
    stage: str = "v3"
    ensemble_weight: float = 1.0    # weight in the inference ensemble
    init_from: str = ""             # stage whose best checkpoint of this variant starts training ("v3")
    small: SmallForgeries | None = None   # train on small forgeries only, cropped around them

    @property
    def inputs(self) -> str:
        """What the network reads: "rgb", or "rgb+selfcorr" (the image and its self-correlation maps)."""
        return self.model.get("inputs", RGB_INPUTS)

    @property
    def run_name(self) -> str:
        """Stem of the variant's files in the models dir: `<name>_<stage>` (or `<name>`)."""
        return f"{self.name}_{self.stage}" if self.stage else self.name

    def as_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> Variant:
        """A copy with some fields changed (flags such as --epochs); None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


SEGMENTER = {"arch": "attention_fpn", "encoder": "timm-efficientnet-b2", "in_channels": 3}
SELFCORR_SEGMENTER = {**SEGMENTER, "in_channels": input_channels(SELFCORR_INPUTS), "inputs": SELFCORR_INPUTS}

V3_VARIANTS = {v.name: v for v in (
    Variant("highres_no_ela", "baseline RGB model (seed 003): focal alpha 0.75 / gamma 3 to weight "
            "forged pixels, FP penalty 2.0, standard augmentation", "segmentation", SEGMENTER,
            loss_config=LossConfig(focal_alpha=0.75, focal_gamma=3.0, fp_penalty=2.0),
            ensemble_weight=1.5),
    Variant("hard_negative", "precision model: FP penalty 3.0, authentic images sampled 1.5x and "
            "hard negatives 10x, RetinaNet focal 0.25 / 2", "segmentation", SEGMENTER,
            loss_config=LossConfig(focal_alpha=0.25, focal_gamma=2.0, fp_penalty=3.0),
            weights=SampleWeights(authentic=1.5, hard_negative=10.0), ensemble_weight=1.2),
    Variant("high_recall", "recall model: Dice-heavy loss (0.3 focal / 0.7 dice), focal alpha 0.75, "
            "FP penalty 1.0, tiny forgeries sampled 4x and medium 2.5x", "segmentation", SEGMENTER,
            loss_config=LossConfig(focal_weight=0.3, dice_weight=0.7, focal_alpha=0.75,
                                   focal_gamma=2.0, fp_penalty=1.0),
            weights=SampleWeights(tiny=4.0, medium=2.5), ensemble_weight=1.0),
    Variant("enhanced_aug", "robustness model: the 'strong' augmentation preset (JPEG, affine, "
            "stronger colour and noise), otherwise the seeds' recipe", "segmentation", SEGMENTER,
            augment="strong", ensemble_weight=0.8),
    Variant("selfcorr", "self-correlation model: the image and what it says about itself (lib.inference.selfcorr: "
            "the matcher's best-match similarity, rigid agreement and candidate probability, 3 more input "
            "channels moved with the image by the standard augmentation); the baseline's loss", "segmentation",
            SELFCORR_SEGMENTER, loss_config=LossConfig(focal_alpha=0.75, focal_gamma=3.0, fp_penalty=2.0),
            ensemble_weight=1.5),
)}

V4_FP_PENALTY = 4.0      # the seeds' v4 loss: FP penalty doubled
V4_HARD_NEGATIVE = 5.0   # hard negatives sampled 5x in every v4 variant


def v4_of(v3: Variant) -> Variant:
    """The v4 recipe of a v3 variant: fine-tuned from its v3 checkpoint with the hard negatives
    sampled 5x and the FP penalty 4.0; everything else (loss shape, forged images weighted by
    area, augmentation, schedule) as in v3."""
    return replace(v3, stage="v4", init_from="v3",
                   description=f"v3 {v3.name} fine-tuned with hard negatives x{V4_HARD_NEGATIVE:g}, "
                               f"FP penalty {V4_FP_PENALTY:g}",
                   loss_config=replace(v3.loss_config, fp_penalty=V4_FP_PENALTY),
                   weights=replace(v3.weights, hard_negative=V4_HARD_NEGATIVE))


V4_VARIANTS = {name: v4_of(v) for name, v in V3_VARIANTS.items()}

CLASSIFIER = Variant(
    "binary_classifier", "forged/authentic gate of pass 1: efficientnet_b2 + MLP head, BCE, "
    "hard negatives sampled 3x", "classification",
    {"arch": "classifier", "encoder": "efficientnet_b2", "in_channels": 3},
    loss="bce", weights=SampleWeights(tiny=1.0, medium=1.0, large=1.0, hard_negative=3.0),
    img_size=384, epochs=15, batch_size=16, stage="")


SPECIALIST_RUN = "small_forgery_specialist"   # its checkpoint: <models>/small_forgery_specialist_best.safetensors

SPECIALIST = Variant(
    SPECIALIST_RUN, "small-forgery specialist (seed 004): forgeries under 2% of the area only, "
    "cropped around a forged region, tiny (<0.5%) sampled 5x and small 2x, focal alpha 0.85 / gamma 4, "
    "trained from scratch", "segmentation", SEGMENTER,
    loss_config=LossConfig(focal_alpha=0.85, focal_gamma=4.0, fp_penalty=2.0),
    weights=SampleWeights(tiny=5.0, medium=2.0, large=2.0, tiny_below=0.005, medium_below=0.02),
    augment="no_crop", epochs=40, lr=1e-4, stage="", small=SmallForgeries())

