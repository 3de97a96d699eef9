"""Augmentation pipelines (albumentations 2.x), training and validation in one module.

A preset is a name in `AUGMENT_PRESETS` that gives the training-only transforms for an
image size; `build_transforms` appends the shared tail (ImageNet normalisation, tensor
conversion). Masks passed as `mask=` follow every geometric transform with
nearest-neighbour interpolation, so they stay binary.

Geometric transforms never pad by reflection: a mirrored border is duplicated content
that the mask does not mark, i.e. a fake copy-move forgery labelled authentic.
"""
from __future__ import annotations

from collections.abc import Callable

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

IMAGENET_MEAN: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)

# Downscale images with INTER_AREA (large figures shrunk to a few hundred pixels alias badly
# with bilinear); masks keep albumentations' nearest-neighbour default.
_AREA = "image"


def _crop_and_flips(size: int) -> list[A.BasicTransform]:
    return [
        A.RandomResizedCrop(size=(size, size), scale=(0.7, 1.0), area_for_downscale=_AREA, p=1.0),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
    ]


def _light(size: int) -> list[A.BasicTransform]:
    """Crop and flips only."""
    return _crop_and_flips(size)


def _rotations_colour_noise() -> list[A.BasicTransform]:
    return [
        A.RandomRotate90(p=0.5),
        A.OneOf([
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1, p=1.0),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
        ], p=0.5),
        A.GaussianBlur(blur_limit=(3, 5), p=0.2),
        A.GaussNoise(std_range=(0.01, 0.03), p=0.2),
    ]


def _standard(size: int) -> list[A.BasicTransform]:
    """The seeds' recipe: crop, flips, 90-degree rotations, mild colour, blur and noise."""
    return [*_crop_and_flips(size), *_rotations_colour_noise()]


def _no_crop(size: int) -> list[A.BasicTransform]:
    """The standard preset with a plain resize instead of the random crop: for a dataset that
    crops itself (the specialist's crop-around-forgery), where a second crop could cut the forgery."""
    return [A.Resize(size, size, area_for_downscale=_AREA), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5),
            *_rotations_colour_noise()]


def _strong(size: int) -> list[A.BasicTransform]:
    """The standard preset plus small affine warps, stronger colour and noise, and JPEG re-compression
    (figures reach the competition re-saved by journals and authors)."""
    return [
        *_crop_and_flips(size),
        A.RandomRotate90(p=0.5),
        A.Affine(scale=(0.9, 1.1), rotate=(-10, 10), border_mode=cv2.BORDER_CONSTANT, fill=0,
                 fill_mask=0, p=0.3),
        A.OneOf([
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1, p=1.0),
            A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=1.0),
            A.RandomGamma(gamma_limit=(70, 130), p=1.0),
        ], p=0.7),
        A.GaussianBlur(blur_limit=(3, 5), p=0.3),
        A.GaussNoise(std_range=(0.02, 0.06), p=0.3),
        # last, as in reality: compression happens when the finished figure is saved
        A.ImageCompression(quality_range=(50, 95), p=0.3),
    ]


AUGMENT_PRESETS: dict[str, Callable[[int], list[A.BasicTransform]]] = {
    "standard": _standard,
    "strong": _strong,
    "light": _light,
    "no_crop": _no_crop,
}


MAPS = "maps"   # the extra target of build_transforms(maps=True): (H, W, C) float maps (lib.inference.selfcorr)


def compose(transforms: list[A.BasicTransform], seed: int | None = None, maps: bool = False) -> A.Compose:
    """Compose `transforms` with the shared tail: ImageNet normalisation and conversion to tensors
    (image float32 (3, H, W); a 2-D mask stays (H, W) with its dtype). With `maps`, the call also
    takes `maps=` (H, W, C) float maps that follow the image's geometry like a mask (nearest
    neighbour) and nothing else (no colour, noise or normalisation); they come back (S, S, C)."""
    return A.Compose([*transforms, A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()],
                     seed=seed, additional_targets={MAPS: "mask"} if maps else None)


def build_transforms(preset: str, img_size: int, train: bool, seed: int | None = None,
                     maps: bool = False) -> A.Compose:
    """The pipeline of one dataset: `preset`'s training transforms when `train`, else a plain
    resize to (img_size, img_size) (the preset is then ignored); both normalised to tensors.
    `maps`: see compose."""
    if int(img_size) != img_size or img_size < 1:
        raise ValueError(f"img_size must be a positive integer, got {img_size!r}")
    if not train:
        return compose([A.Resize(img_size, img_size, area_for_downscale=_AREA)], seed=seed, maps=maps)
    if preset not in AUGMENT_PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; known: {', '.join(AUGMENT_PRESETS)}")
    return compose(AUGMENT_PRESETS[preset](int(img_size)), seed=seed, maps=maps)


# --- offline copies (bin/generate_*_augmented.py) ----------------------------------------------
# Full-resolution copies written to disk, so: no normalisation, output near the input's size,
# constant (black) fill where a rotation or warp uncovers the border, and masks (one per
# instance, passed as `masks=`) moved by exactly the image's geometry.

_FILL = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)


def forged_copy_transforms(height: int, width: int) -> list[A.BasicTransform]:
    """The seeds' forged-image augmentation for an image of (height, width): one of flip /
    90-degree rotation / rotation up to 15 degrees (p 0.8), a crop of 80-100% resized back or a
    rescale by +-20% (p 0.3), colour (p 0.5), blur / noise / JPEG 85-95 (p 0.3)."""
    return [
        A.OneOf([
            A.HorizontalFlip(p=1.0),
            A.VerticalFlip(p=1.0),
            A.RandomRotate90(p=1.0),
            A.Rotate(limit=15, **_FILL, p=1.0),
        ], p=0.8),
        A.OneOf([
            A.RandomResizedCrop(size=(height, width), scale=(0.8, 1.0), area_for_downscale=_AREA, p=1.0),
            A.RandomScale(scale_limit=(-0.2, 0.2), area_for_downscale=_AREA, p=1.0),
        ], p=0.3),
        A.OneOf([
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=1.0),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
            A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=20, p=1.0),
        ], p=0.5),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 5), p=1.0),
            A.GaussNoise(std_range=(0.01, 0.02), p=1.0),
            A.ImageCompression(quality_range=(85, 95), p=1.0),
        ], p=0.3),
    ]


def _authentic_light() -> list[A.BasicTransform]:
    return [
        A.OneOf([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0), A.Rotate(limit=15, **_FILL, p=1.0)], p=0.5),
        A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=1.0),
            A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=10, val_shift_limit=10, p=1.0),
        ], p=0.3),
    ]


def _authentic_medium() -> list[A.BasicTransform]:
    return [
        A.OneOf([
            A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0), A.Rotate(limit=30, **_FILL, p=1.0),
            A.Affine(scale=(0.9, 1.1), rotate=(-15, 15), **_FILL, p=1.0),
        ], p=0.6),
        A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=1.0),
            A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=15, val_shift_limit=15, p=1.0),
        ], p=0.5),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 5), p=1.0),
            A.GaussNoise(std_range=(0.01, 0.03), p=1.0),
            A.ISONoise(p=1.0),
        ], p=0.5),
        A.ImageCompression(quality_range=(70, 95), p=0.5),
    ]


def _authentic_strong() -> list[A.BasicTransform]:
    return [
        A.OneOf([
            A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0), A.Rotate(limit=45, **_FILL, p=1.0),
            A.Affine(scale=(0.8, 1.2), rotate=(-30, 30), shear=(-10, 10), **_FILL, p=1.0),
            A.Perspective(scale=(0.02, 0.05), **_FILL, p=1.0),
        ], p=0.7),
        A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
            A.HueSaturationValue(hue_shift_limit=15, sat_shift_limit=25, val_shift_limit=20, p=1.0),
            A.RandomGamma(gamma_limit=(70, 130), p=1.0),
            A.CLAHE(p=1.0),
        ], p=0.6),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 7), p=1.0), A.MotionBlur(blur_limit=(3, 7), p=1.0)], p=0.6),
        A.OneOf([
            A.GaussNoise(std_range=(0.02, 0.06), p=1.0),
            A.ISONoise(p=1.0),
            A.MultiplicativeNoise(multiplier=(0.9, 1.1), p=1.0),
        ], p=0.6),
        A.OneOf([
            A.ImageCompression(quality_range=(50, 90), p=1.0),
            A.Downscale(scale_range=(0.5, 0.9), p=1.0),
        ], p=0.6),
    ]


# named in lib.options.AUTHENTIC_STRENGTHS, which the flags read without importing albumentations
AUTHENTIC_PRESETS: dict[str, Callable[[], list[A.BasicTransform]]] = {
    "light": _authentic_light,
    "medium": _authentic_medium,
    "strong": _authentic_strong,
}
