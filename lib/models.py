"""Models by name: the attention FPN segmenter, the forged/authentic classifier, and checkpoints
that carry their own config, so `load_model(path)` needs nothing else.

A model config is a small dict, e.g. `{"arch": "attention_fpn", "encoder": "timm-efficientnet-b2",
"in_channels": 3}`; `build_model(config)` makes the module. Pretrained encoder weights are a
build-time choice (`imagenet`, `none` or a local file), never part of the config: a checkpoint
always rebuilds with `none` and loads its own weights.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from .errors import ProjectError, first_line
from .fileio import atomic_path

log = logging.getLogger(__name__)


class CheckpointError(ProjectError):
    """A checkpoint that is missing, corrupt, or does not fit the model it claims to be."""


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
    """Load a local state dict (raw, or under 'state_dict' / 'model_state_dict') into the encoder."""
    if not path.is_file():
        raise WeightsError(f"{path}: encoder weights file not found (pass --encoder-weights "
                           f"imagenet, none, or an existing file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
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


def save_checkpoint(path: Path, model: nn.Module, model_config: dict, **fields: Any) -> None:
    """Write a checkpoint atomically: `model_state_dict`, `model_config` and any other fields
    (epoch, optimizer_state_dict, loss, val_score, train_config, ...)."""
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"model_state_dict": state, "model_config": dict(model_config), **fields}, tmp)


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint dict on the CPU, with a one-line error naming the file when it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, pickle errors, wrong file type
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(exc)})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model_state_dict"), dict) \
            or not isinstance(checkpoint.get("model_config"), dict):
        raise CheckpointError(f"{path}: not a checkpoint of this project "
                              f"(needs model_state_dict and model_config)")
    return checkpoint


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes, load its weights, move it to `device`, eval mode.
    Returns (model, checkpoint dict)."""
    checkpoint = read_checkpoint(path)
    config = checkpoint["model_config"]
    try:
        model = build_model(config, "none")
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except Exception as exc:   # unknown encoder (smp KeyError), unknown timm backbone, ...
        raise CheckpointError(f"{path}: cannot build the model {config} it describes ({first_line(exc)})") from None
    try:
        model.load_state_dict(checkpoint["model_state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit model {config} "
                              f"({first_line(exc)})") from None
    return model.to(device).eval(), checkpoint


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model
