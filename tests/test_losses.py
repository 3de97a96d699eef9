"""Losses on hand-computed cases: the seeds' focal and Dice examples, the FP penalty, the Dice choice."""
import math

import pytest
import torch

from lib.models.losses import CombinedLoss, LossConfig, build_loss, fp_penalty_loss, soft_dice_loss


def logits(*probs):
    return torch.logit(torch.tensor(probs, dtype=torch.float32))


def pixel(p, label, alpha=0.25, gamma=2.0):
    loss = CombinedLoss(LossConfig(focal_alpha=alpha, focal_gamma=gamma)).focal
    return float(loss(logits(p).view(1, 1, 1, 1), torch.full((1, 1, 1, 1), float(label))))


def test_focal_matches_the_seeds_worked_example():
    # seed 002: p=0.9 on a forged pixel -> 0.25 * 0.1^2 * 0.105 = 0.0003; p=0.3 -> 0.147
    assert pixel(0.9, 1) == pytest.approx(0.25 * 0.1 ** 2 * -math.log(0.9), rel=1e-4)
    assert pixel(0.9, 1) == pytest.approx(0.000263, abs=1e-6)
    assert pixel(0.3, 1) == pytest.approx(0.25 * 0.7 ** 2 * -math.log(0.3), rel=1e-4)
    assert pixel(0.3, 1) == pytest.approx(0.147, abs=1e-3)


def test_focal_is_alpha_balanced_and_configurable():
    # negatives weigh (1 - alpha): alpha 0.85 / gamma 4 (the specialist) favours forged pixels
    assert pixel(0.1, 0) == pytest.approx(0.75 * 0.1 ** 2 * -math.log(0.9), rel=1e-4)
    assert pixel(0.3, 1, 0.85, 4.0) == pytest.approx(0.85 * 0.7 ** 4 * -math.log(0.3), rel=1e-4)
    assert pixel(0.7, 0, 0.85, 4.0) == pytest.approx(0.15 * 0.7 ** 4 * -math.log(0.3), rel=1e-4)


def test_dice_matches_the_seeds_worked_example():
    # true [1,1,0,0], pred [0.9,0.8,0.2,0.1]: Dice = 2*1.7/4.0 = 0.85
    pred, true = logits(0.9, 0.8, 0.2, 0.1).view(1, 1, 2, 2), torch.tensor([1., 1, 0, 0]).view(1, 1, 2, 2)
    assert float(soft_dice_loss(pred, true, smooth=0.0)) == pytest.approx(0.15, abs=1e-5)
    assert float(soft_dice_loss(pred, true, smooth=1.0)) == pytest.approx(1 - 4.4 / 5.0, abs=1e-5)


def test_dice_per_image_keeps_a_small_forgery_from_drowning():
    # image 0: a 400-pixel forgery found exactly; image 1: a 4-pixel forgery missed entirely
    target = torch.zeros(2, 1, 32, 32)
    target[0, 0, :20, :20] = 1
    target[1, 0, 30:, 30:] = 1
    pred = torch.where(target[:1].bool(), 20.0, -20.0)
    pred = torch.cat([pred, torch.full((1, 1, 32, 32), -20.0)])
    per_image = float(soft_dice_loss(pred, target, smooth=0.0, per_image=True))
    batch = float(soft_dice_loss(pred, target, smooth=0.0, per_image=False))
    assert per_image == pytest.approx(0.5, abs=1e-3)       # the missed image counts fully
    assert batch == pytest.approx(1 - 800 / 804, abs=1e-3)  # ~0.005: the miss is invisible


def test_dice_ignores_authentic_images_and_keeps_the_graph():
    pred = torch.zeros(2, 1, 4, 4, requires_grad=True)
    loss = soft_dice_loss(pred, torch.zeros(2, 1, 4, 4))
    assert loss.item() == 0.0
    loss.backward()
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 0, 0] = 1
    both = float(soft_dice_loss(torch.zeros(2, 1, 4, 4), target, smooth=0.0))
    only = float(soft_dice_loss(torch.zeros(1, 1, 4, 4), target[:1], smooth=0.0))
    assert both == pytest.approx(only)


def test_fp_penalty_only_counts_authentic_images():
    target = torch.zeros(2, 1, 4, 4)
    target[1, 0, 0, 0] = 1                                    # image 1 is forged
    pred = torch.full((2, 1, 4, 4), float(torch.logit(torch.tensor(0.8))))
    assert float(fp_penalty_loss(pred, target)) == pytest.approx(0.8 * 16 / 32, rel=1e-5)
    assert float(fp_penalty_loss(pred, torch.ones(2, 1, 4, 4))) == 0.0


def test_combined_is_the_weighted_sum_of_its_terms():
    config = LossConfig(focal_weight=0.3, dice_weight=0.7, fp_penalty=4.0, focal_alpha=0.75, focal_gamma=3.0)
    loss = CombinedLoss(config)
    torch.manual_seed(0)
    pred, target = torch.randn(3, 1, 8, 8), torch.zeros(3, 1, 8, 8)
    target[0, 0, 2:5, 2:5] = 1
    terms = loss.terms(pred, target)
    expected = 0.3 * terms["focal"] + 0.7 * terms["dice"] + 4.0 * terms["fp"]
    assert float(loss(pred, target)) == pytest.approx(float(expected))
    assert all(float(t) > 0 for t in terms.values())


def test_unknown_loss_lists_known_names():
    with pytest.raises(ValueError, match="known: bce, combined"):
        build_loss("dice")
    assert isinstance(build_loss("combined"), CombinedLoss)
