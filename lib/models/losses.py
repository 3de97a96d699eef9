"""Losses: focal (smp's, alpha-balanced), soft Dice per image, the false-positive penalty on
authentic images, and their weighted sum. Picked by name from LOSSES.

Dice is computed per image and averaged over the images that contain a forgery: a batch
mean would let one large forgery drown a small one (missing a 0.5 % region would cost
almost nothing), while the competition scores every image's F1 equally. Images without
forgery get no Dice term (their Dice is undefined); the focal term and the FP penalty
cover them.
"""
from __future__ import annotations


import torch
from segmentation_models_pytorch.losses import FocalLoss
from torch import nn

from .variants import LossConfig


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
                   per_image: bool = True) -> torch.Tensor:
    """1 - (2|P.T| + smooth) / (|P| + |T| + smooth) on sigmoid probabilities.

    per_image: one Dice per image, averaged over images with a forgery (0 when none has);
    otherwise one Dice over the whole batch (the seeds' formula).
    """
    probs = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    if not per_image:
        dice = (2 * (probs * target).sum() + smooth) / (probs.sum() + target.sum() + smooth)
        return 1 - dice
    dice = (2 * (probs * target).sum(1) + smooth) / (probs.sum(1) + target.sum(1) + smooth)
    has_forgery = target.sum(1) > 0
    if not has_forgery.any():
        return logits.sum() * 0.0  # keeps the graph; nothing to overlap with
    return (1 - dice[has_forgery]).mean()


def fp_penalty_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean forged-probability over the batch's authentic images (all-zero targets), counted
    over every pixel of the batch as in the seeds, so 0 when no image is authentic."""
    probs = torch.sigmoid(logits.float())
    authentic = (target.flatten(1).sum(1) == 0).float().view(-1, *([1] * (probs.dim() - 1)))
    return (probs * authentic).mean()


class CombinedLoss(nn.Module):
    """focal_weight * focal + dice_weight * dice + fp_penalty * FP penalty, on logits (B, 1, H, W)."""

    def __init__(self, config: LossConfig = LossConfig()):
        super().__init__()
        self.config = config
        self.focal = FocalLoss(mode="binary", alpha=config.focal_alpha, gamma=config.focal_gamma)

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three unweighted terms, for logging."""
        return {
            "focal": self.focal(logits.float(), target.float()),
            "dice": soft_dice_loss(logits, target, per_image=self.config.dice_per_image),
            "fp": fp_penalty_loss(logits, target),
        }

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t, c = self.terms(logits, target), self.config
        return c.focal_weight * t["focal"] + c.dice_weight * t["dice"] + c.fp_penalty * t["fp"]


class BCELoss(nn.Module):
    """Binary cross-entropy on logits (the classifier's loss); labels float (B,)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float())


LOSSES = {"combined": CombinedLoss, "bce": BCELoss}


def build_loss(name: str, config: LossConfig | None = None) -> nn.Module:
    """The loss called `name` (CombinedLoss takes `config`). Unknown names list the known ones."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    return CombinedLoss(config or LossConfig()) if name == "combined" else LOSSES[name]()
