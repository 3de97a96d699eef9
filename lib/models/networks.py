"""Models by name: the attention FPN segmenter and the forged/authentic classifier.

A model config is a small dict, e.g. `{"arch": "attention_fpn", "encoder": "timm-efficientnet-b2",
"in_channels": 3}`; `build_model(config)` makes the module. Pretrained encoder weights are a
build-time choice (`imagenet`, `none` or a local file), never part of the config: a checkpoint
(lib.models.checkpoints) always rebuilds with `none` and loads its own weights.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import safetensors.torch
import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from ..errors import ProjectError, first_line
from .variants import INPUTS, RGB_INPUTS, input_channels

log = logging.getLogger(__name__)


class WeightsError(ProjectError):
    """Pretrained weights that cannot be downloaded or loaded."""


class AttentionGate(nn.Module):
    """Spatial attention: multiplies a feature map by a learned (0, 1) map of where to look."""

    def __init__(self, in_channels: int):
        super().__init__()
        hidden1, hidden2 = max(8, in_channels // 2), max(4, in_channels // 4)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden1, kernel_size=1),
            nn.BatchNorm2d(hidden1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden1, hidden2, kernel_size=3, padding=1),
            nn.BatchNorm2d(hidden2),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden2, 1, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv(x)


class AttentionFPN(nn.Module):
    """smp FPN (any smp encoder) whose 1-channel output is refined by an AttentionGate.

    Input (B, in_channels, H, W) with H, W multiples of 32; output logits (B, 1, H, W).
    """

    def __init__(self, encoder: str = "timm-efficientnet-b2", in_channels: int = 3,
                 encoder_weights: str | None = None):
        super().__init__()
        self.base = smp.FPN(encoder_name=encoder, encoder_weights=encoder_weights,
                            in_channels=in_channels, classes=1)
        self.attention = AttentionGate(1)

    @property
    def encoder(self) -> nn.Module:
        return self.base.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.base(x))


class ForgeryClassifier(nn.Module):
    """timm backbone + Linear(256)-ReLU-Dropout(0.3)-Linear(1): one logit per image, (B,)."""

    def __init__(self, backbone: str = "efficientnet_b2", in_channels: int = 3,
                 pretrained: bool = False):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0,
                                          in_chans=in_channels)
        self.classifier = nn.Sequential(
            nn.Linear(self.backbone.num_features, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(256, 1),
        )

    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x)).squeeze(-1)


def _attention_fpn(config: dict, imagenet: bool) -> nn.Module:
    return AttentionFPN(config.get("encoder", "timm-efficientnet-b2"), config.get("in_channels", 3),
                        "imagenet" if imagenet else None)


def _classifier(config: dict, imagenet: bool) -> nn.Module:
    return ForgeryClassifier(config.get("encoder", "efficientnet_b2"), config.get("in_channels", 3),
                             pretrained=imagenet)


MODELS: dict[str, Callable[[dict, bool], nn.Module]] = {
    "attention_fpn": _attention_fpn,
    "classifier": _classifier,
}


def check_model_config(config: dict) -> None:
    """ValueError unless `config` names a known architecture and an encoder the installed smp or
    timm builds from its own code: a config read from a file never makes timm or smp look a name
    up on a model hub or on disk (hf-hub:..., local-dir:...)."""
    arch, encoder, channels = config.get("arch"), config.get("encoder"), config.get("in_channels", 3)
    inputs = config.get("inputs", RGB_INPUTS)
    if arch not in MODELS:
        raise ValueError(f"unknown model arch {arch!r}; known: {', '.join(sorted(MODELS))}")
    if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= 16:
        raise ValueError(f"in_channels {channels!r} is not an int from 1 to 16")
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; known: {', '.join(INPUTS)}")
    if inputs != RGB_INPUTS and channels != input_channels(inputs):
        raise ValueError(f"inputs {inputs!r} need in_channels {input_channels(inputs)}, not {channels}")
    if encoder is None:
        return
    if not isinstance(encoder, str) or ":" in encoder or "/" in encoder:
        raise ValueError(f"encoder {encoder!r} is not a plain encoder name")
    if arch == "classifier":
        known = timm.is_model(encoder)
    else:
        known = encoder in smp.encoders.get_encoder_names() or (
            encoder.startswith("tu-") and timm.is_model(encoder[3:]))
    if not known:
        raise ValueError(f"unknown encoder {encoder!r} for {arch}")


def build_model(config: dict, encoder_weights: str = "none") -> nn.Module:
    """Build the model a config names. `encoder_weights`: 'imagenet' (download), 'none', or a
    path to a local state dict for the encoder. Raises WeightsError with what to do when the
    ImageNet download fails (offline) or the local file does not fit."""
    arch = config.get("arch")
    if arch not in MODELS:
        raise ValueError(f"unknown model arch {arch!r}; known: {', '.join(sorted(MODELS))}")
    weights = str(encoder_weights)
    if weights.lower() == "imagenet":
        try:
            return MODELS[arch](config, True)
        except OSError as exc:  # hub errors, DNS and connection failures are all OSErrors
            raise WeightsError(
                f"cannot download ImageNet weights for encoder {config.get('encoder')!r} "
                f"({first_line(exc)}); offline, pass --encoder-weights none to train from "
                f"scratch or --encoder-weights PATH to load a local weights file") from None
    model = MODELS[arch](config, False)
    if weights.lower() not in ("none", ""):
        load_encoder_weights(model, Path(weights))
    return model


def load_encoder_weights(model: nn.Module, path: Path) -> None:
    """Load a local state dict (safetensors, or a torch file of tensors read with weights_only=True:
    raw, or under 'state_dict' / 'model_state_dict') into the encoder."""
    if not path.is_file():
        raise WeightsError(f"{path}: encoder weights file not found (pass --encoder-weights "
                           f"imagenet, none, or an existing file)")
    try:
        if path.suffix == ".safetensors":
            state = safetensors.torch.load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a corrupt file
        raise WeightsError(f"{path}: not a readable weights file ({first_line(exc)})") from None
    for key in ("model_state_dict", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict")
    own = model.encoder.state_dict()
    fit = {k: v for k, v in state.items()
           if k in own and isinstance(v, torch.Tensor) and v.shape == own[k].shape}
    if not fit:
        raise WeightsError(f"{path}: no tensor of this file fits the encoder "
                           f"({len(state)} tensors, none with a matching name and shape)")
    # nn.Module's own loader: some smp encoders override load_state_dict and return nothing
    nn.Module.load_state_dict(model.encoder, fit, strict=False)
    log.info("%s: loaded %d encoder tensors (%d of the encoder missing, %d of the file unused)",
             path, len(fit), len(own) - len(fit), len(state) - len(fit))


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model
