"""The one training loop of the project: every variant (the v3 segmenters, the classifier,
later v4 and the specialist) is a `Variant` config run by `train_variant`.

AdamW + cosine annealing, mixed precision on CUDA, a progress bar per epoch, one log line
per epoch, the best checkpoint chosen on the held-out split's competition score (AUC for
the classifier), a last checkpoint every epoch for `--resume`, atomic writes, and seeds
set per epoch so that a resumed run follows the same path as an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from ..competition.metric import score_image, summarize_scores
from ..data.augment import IMAGENET_MEAN, IMAGENET_STD, build_transforms
from ..data.manifest import FORGED, load_manifest
from ..data.split import load_or_make_split, split_rows
from ..data.truths import truths_from_manifest
from ..device import Amp
from ..errors import ProjectError, counted, first_line
from ..fileio import atomic_write_text, remove_stale_temporaries
from ..inference.postprocess import instances_from_probability, resize_probability
from ..inference.selfcorr import SelfCorrSource, prepare_selfcorr
from ..models.checkpoints import (find_best, load_model, read_checkpoint, read_resume_state, save_checkpoint,
                                  save_resume_state)
from ..models.losses import build_loss
from ..models.networks import build_model, check_model_config
from ..models.variants import SELFCORR_INPUTS, Variant
from ..options import TrainOptions
from ..progress import progress_bar
from ..paths import (BEST_SUFFIX, HARD_NEGATIVES_FILE, LAST_SUFFIX, LEGACY_BEST_SUFFIX, Paths, best_checkpoint,
                     last_checkpoint, relative)
from .datasets import (ClassifierDataset, CropAroundForgeryDataset, SegmentationDataset, make_sampler,
                       read_hard_negatives, sample_weights)
from .distributed import context, device_for, freeze_unused, shutdown
from .history import TensorBoard, write_history

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a training run leaves behind."""

    best_path: Path
    last_path: Path
    best_score: float
    history: list[dict] = field(default_factory=list)
    model: nn.Module | None = None    # the model after the last epoch (what the resume state holds)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """DataLoader worker init: derive every generator (albumentations' too) from the worker seed."""
    info = torch.utils.data.get_worker_info()
    seed = info.seed % 2**32
    random.seed(seed)
    np.random.seed(seed)
    info.dataset.transform.set_random_seed(seed)


def _limit_rows(rows: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` rows, half forged and half authentic where possible (deterministic)."""
    if limit is None or len(rows) <= limit:
        return rows
    forged, authentic = rows[rows["label"] == FORGED], rows[rows["label"] != FORGED]
    n_forged = min(len(forged), max(limit - len(authentic), limit // 2))
    parts = [forged.sample(n=n_forged, random_state=seed),
             authentic.sample(n=min(len(authentic), limit - n_forged), random_state=seed)]
    return pd.concat(parts).sort_values("image_id").reset_index(drop=True)


def variant_rows(variant: Variant, train_rows: pd.DataFrame, val_rows: pd.DataFrame
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows a variant trains and validates on: all of them, or for a small-forgery variant
    the forged images under its area threshold plus the authentic ones, on both sides. Too few
    small forgeries to train on is a ProjectError that says how many there are."""
    if variant.small is None:
        return train_rows, val_rows
    below = variant.small.below

    def keep(rows: pd.DataFrame) -> pd.DataFrame:
        forged = rows["label"] == FORGED
        return rows[~forged | (rows["forged_fraction"] < below)].reset_index(drop=True)

    train_rows, val_rows = keep(train_rows), keep(val_rows)
    n_small = int((train_rows["label"] == FORGED).sum())
    tiny = int(((train_rows["label"] == FORGED) & (train_rows["forged_fraction"] < variant.weights.tiny_below)).sum())
    log.info("%s: %d training images with a forgery under %.1f%% of the image (%d under %.1f%%), %d authentic",
             variant.run_name, n_small, 100 * below, tiny, 100 * variant.weights.tiny_below, len(train_rows) - n_small)
    if n_small < variant.small.min_images:
        raise ProjectError(f"{variant.run_name}: only {n_small} training image(s) have a forgery under "
                           f"{below:.1%} of the image (at least {variant.small.min_images} needed); "
                           f"raise --max-fraction or add data")
    if not (val_rows["label"] == FORGED).any():
        log.warning("%s: no held-out image has a forgery under %.1f%%; validating on authentic images only",
                    variant.run_name, 100 * below)
    return train_rows, val_rows


def training_dataset(variant: Variant, data_dir: Path, rows: pd.DataFrame,
                     maps: SelfCorrSource | None = None) -> Dataset:
    """The training dataset of a variant: its task's, or crops around small forgeries; with the
    self-correlation maps of `maps` for a variant that reads them."""
    transform = build_transforms(variant.augment, variant.img_size, train=True, maps=maps is not None)
    if variant.small is not None:
        if maps is not None:
            raise ProjectError(f"{variant.name}: crops around small forgeries take no self-correlation maps")
        return CropAroundForgeryDataset(data_dir, rows, transform, variant.small)
    if maps is not None:
        return SegmentationDataset(data_dir, rows, transform, maps)
    return _TASKS[variant.task][0](data_dir, rows, transform)


def selfcorr_source(variant: Variant, paths: Paths, rows: list[pd.DataFrame], progress: bool
                    ) -> SelfCorrSource | None:
    """The self-correlation maps of `rows`' images when `variant` reads them (the matcher run on the
    images it has not seen yet, cached in the models dir), else None."""
    if variant.inputs != SELFCORR_INPUTS:
        return None
    images = [paths.data_dir / p for frame in rows for p in frame["image_path"]]
    return prepare_selfcorr(images, paths.models_dir, progress)


# --- validation ------------------------------------------------------------------------------

@torch.inference_mode()
def _predict(model: nn.Module, loader: DataLoader, loss_fn: nn.Module, device: torch.device,
             amp: Amp) -> tuple[list[np.ndarray], float]:
    """Model outputs (sigmoid probabilities, one array per image, in loader order) and mean loss."""
    model.eval()
    outputs, total, count = [], 0.0, 0
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        with amp.autocast():
            logits = model(images)
        total += loss_fn(logits.float(), targets).item() * len(images)
        count += len(images)
        outputs.extend(torch.sigmoid(logits.float()).cpu().numpy())
    return outputs, total / max(count, 1)


def evaluate_segmentation(model: nn.Module, loader: DataLoader, rows: pd.DataFrame, data_dir: Path,
                          loss_fn: nn.Module, device: torch.device, amp: Amp,
                          threshold: float = 0.5) -> dict:
    """Competition score of the validation images at their original size (map resized back,
    thresholded, one instance for all regions), with recall, FP rate, precision and pixel F1;
    and the image AUC of each map's highest probability, which shows a network learning before
    any of its maps crosses the threshold."""
    probs, val_loss = _predict(model, loader, loss_fn, device, amp)
    peaks = np.array([float(np.max(prob)) for prob in probs])
    forged = (rows["label"] == FORGED).to_numpy()
    image_auc = float(roc_auc_score(forged, peaks)) if 0 < forged.sum() < len(forged) else float("nan")
    truths = truths_from_manifest(data_dir, rows)
    preds = [instances_from_probability(resize_probability(prob[0], truth.hw), threshold)
             for prob, truth in zip(probs, truths)]
    scores, pixel_f1s = np.array([score_image(pred, truth.instances()) for pred, truth in zip(preds, truths)]).T
    report = summarize_scores(scores, forged, np.array([bool(pred) for pred in preds]))
    return {"val_loss": val_loss, "score": report.score,
            "pixel_f1": float(pixel_f1s[forged].mean()) if forged.any() else 0.0,
            "recall": report.recall, "fp_rate": report.fp_rate, "precision": report.precision,
            "image_auc": image_auc}


def evaluate_classifier(model: nn.Module, loader: DataLoader, rows: pd.DataFrame, data_dir: Path,
                        loss_fn: nn.Module, device: torch.device, amp: Amp,
                        threshold: float = 0.5) -> dict:
    """ROC AUC (the selection score), accuracy, precision and recall at `threshold`."""
    probs, val_loss = _predict(model, loader, loss_fn, device, amp)
    probs = np.asarray(probs, dtype=float).reshape(-1)
    labels = (rows["label"] == FORGED).to_numpy()
    pred = probs >= threshold
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn, tn = int((~pred & labels).sum()), int((~pred & ~labels).sum())
    auc = float(roc_auc_score(labels, probs)) if 0 < labels.sum() < len(labels) else float("nan")
    return {"val_loss": val_loss, "score": auc, "auc": auc, "accuracy": (tp + tn) / max(len(labels), 1),
            "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0}


_TASKS: dict[str, tuple[type, Callable]] = {
    "segmentation": (SegmentationDataset, evaluate_segmentation),
    "classification": (ClassifierDataset, evaluate_classifier),
}


def _format_metrics(metrics: dict) -> str:
    names = {"val_loss": "val loss", "score": "val score", "pixel_f1": "pixel F1", "fp_rate": "FP rate",
             "auc": "AUC", "accuracy": "acc", "image_auc": "image AUC"}
    return " | ".join(f"{names.get(k, k)} {v:.4f}" for k, v in metrics.items()
                      if not (k == "score" and "auc" in metrics))


def training_rows(variant: Variant, options: TrainOptions, paths: Paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train rows, validation rows) of a run: the fixed split, the augmented copies in or out,
    the variant's selection, --limit."""
    manifest = load_manifest(paths, progress=options.progress)
    train_rows, val_rows = split_rows(manifest, load_or_make_split(paths, manifest))
    train_rows = _augmented_rows(train_rows, options.use_augmented)
    train_rows, val_rows = variant_rows(variant, train_rows, val_rows)
    train_rows = _limit_rows(train_rows, options.limit, options.seed)
    val_rows = _limit_rows(val_rows, options.limit, options.seed)
    if not len(train_rows) or not len(val_rows):
        raise ProjectError(f"{paths.data_dir}: {len(train_rows)} training and {len(val_rows)} validation "
                           f"images; both are needed (more data, or a larger --limit)")
    return train_rows, val_rows


# --- the loop --------------------------------------------------------------------------------

@dataclass
class RunData:
    """A run's data: the split's rows, the datasets and their loaders, the sampler."""

    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    hard_negatives: set[str]
    train_set: Dataset
    sampler: torch.utils.data.Sampler
    loader_generator: torch.Generator
    train_loader: DataLoader
    val_loader: DataLoader

    @property
    def baseline(self) -> float:
        """What the curves must beat: every validation image answered `authentic`."""
        return float((self.val_rows["label"] != FORGED).mean())


def train_variant(variant: Variant, options: TrainOptions, paths: Paths,
                  on_data: Callable[[Dataset], None] | None = None) -> RunResult:
    """Train one variant on the split's training rows, validate every epoch on its held-out rows,
    write `<run_name>_best.safetensors` (best validation score), `_last.pth` (resume state),
    `_args.json`, and after every epoch `_history.csv` and `_curves.png` (lib.training.history).
    `on_data` sees the training dataset once it is built (rank 0; the specialist's crop sheet)."""
    variant = variant.with_overrides(epochs=options.epochs, lr=options.lr, batch_size=options.batch_size,
                                     img_size=options.img_size, model=_with_encoder(variant, options.encoder))
    if variant.img_size % 32:
        raise ProjectError(f"--img-size {variant.img_size}: must be a multiple of 32")
    ctx = context()                                   # torchrun: this rank; else one process
    options = replace(options, progress=options.progress and ctx.is_main)
    device = device_for(options.device, ctx)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = options.cudnn_benchmark
    seed_everything(options.seed)

    data = _run_data(variant, options, paths, device, on_data)
    core, variant = _build_model(variant, options, paths, device)
    channels_last = device.type == "cuda" and options.channels_last
    if channels_last:
        core = core.to(memory_format=torch.channels_last)
    loss_fn = build_loss(variant.loss, variant.loss_config)
    optimizer = torch.optim.AdamW(core.parameters(), lr=variant.lr, weight_decay=variant.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=variant.epochs)
    amp = Amp(device, options.amp)
    best_path = best_checkpoint(paths.models_dir, variant.run_name)
    last_path = last_checkpoint(paths.models_dir, variant.run_name)
    start_epoch, best_score, best_val_loss, history = 0, -math.inf, math.inf, []
    if options.resume:              # first: a state that does not fit this run changes no file
        start_epoch, history = _resume(last_path, core, variant.model, optimizer, scheduler, amp)
        best_score, best_val_loss = _best_so_far(best_path, history)
    run_files = _start_run_files(variant, options, paths, data, device) if ctx.is_main else None
    model = _training_module(core, variant, options, device)
    _log_start(variant, data, device, amp, channels_last, options)

    baseline = data.baseline if variant.task == "segmentation" else 0.5   # AUC 0.5 for the classifier
    evaluate = _TASKS[variant.task][1]
    board = TensorBoard(paths.logs_dir, variant.run_name, options.tensorboard and ctx.is_main)
    for epoch in range(start_epoch, variant.epochs):
        started = time.perf_counter()
        _reseed_epoch(options.seed + epoch, data, ctx.rank)
        total, count = _train_one_epoch(model, data.train_loader, loss_fn, optimizer, amp, device, channels_last,
                                        f"{variant.run_name} {epoch + 1}/{variant.epochs}", options.progress)
        train_loss = ctx.mean(total, count)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if ctx.is_main:
            metrics = evaluate(core, data.val_loader, data.val_rows, paths.data_dir, loss_fn, device, amp,
                               VAL_THRESHOLD)
            # ties (early epochs that predict nothing all score the authentic fraction) go to the
            # lower validation loss; NaN (undefined AUC) never counts as better
            improved = metrics["score"] > best_score or (metrics["score"] == best_score
                                                         and metrics["val_loss"] < best_val_loss)
            if improved:
                best_score, best_val_loss = metrics["score"], metrics["val_loss"]
            history.append({"epoch": epoch + 1, "train_loss": train_loss, "lr": lr, **metrics,
                            "seconds": time.perf_counter() - started})
            fields = dict(epoch=epoch + 1, loss=train_loss, val_score=metrics["score"], val_metrics=metrics,
                          best_score=best_score, history=history, variant=variant.as_dict(),
                          img_size=variant.img_size, normalization={"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
                          seed=options.seed)
            run_files.commit()           # the earlier run moves aside only now, with a checkpoint to replace it
            if improved:
                save_checkpoint(best_path, core, variant.model, **fields)
            save_resume_state(last_path, core, variant.model, optimizer_state_dict=optimizer.state_dict(),
                              scheduler_state_dict=scheduler.state_dict(), scaler_state_dict=amp.scaler.state_dict(),
                              **fields)
            write_history(paths.models_dir, variant.run_name, history, baseline,
                          "AUC" if variant.task == "classification" else "score")
            board.log(history[-1])
            log.info("%s epoch %d/%d | train loss %.4f | %s | lr %.2e | %.1fs%s", variant.run_name, epoch + 1,
                     variant.epochs, train_loss, _format_metrics(metrics), lr, time.perf_counter() - started,
                     " | best, saved" if improved else "")
        ctx.barrier()                                   # the other ranks wait for validation
    board.close()
    if ctx.is_main and not options.keep_last and last_path.is_file():
        size = last_path.stat().st_size
        last_path.unlink()
        log.info("removed %s (%s), the resume state of a finished run (--keep-last keeps it)", last_path.name,
                 megabytes(size))
    log.info("%s done: best val score %.4f -> %s", variant.run_name, best_score, best_path)
    return RunResult(best_path, last_path, best_score, history, core)


def _run_data(variant: Variant, options: TrainOptions, paths: Paths, device: torch.device,
              on_data: Callable[[Dataset], None] | None) -> RunData:
    """The split's rows, the datasets (with the self-correlation maps where the variant reads
    them), the weighted sampler and the loaders."""
    ctx = context()
    dataset_cls = _TASKS[variant.task][0]
    if ctx.is_main:              # rank 0 writes the manifest cache, the split and the matcher's cache first
        train_rows, val_rows = training_rows(variant, options, paths)
        maps = selfcorr_source(variant, paths, [train_rows, val_rows], options.progress)
    ctx.barrier()
    if not ctx.is_main:
        train_rows, val_rows = training_rows(variant, options, paths)
        maps = selfcorr_source(variant, paths, [train_rows, val_rows], False)
    hard_negatives = _hard_negatives(paths, options.use_hard_negatives)

    train_set = training_dataset(variant, paths.data_dir, train_rows, maps)
    if on_data is not None and ctx.is_main:
        on_data(train_set)
    val_transform = build_transforms(variant.augment, variant.img_size, train=False, maps=maps is not None)
    val_set = (SegmentationDataset(paths.data_dir, val_rows, val_transform, maps) if maps is not None
               else dataset_cls(paths.data_dir, val_rows, val_transform))
    weights = sample_weights(train_rows, variant.weights, hard_negatives)
    sampler = make_sampler(weights, seed=options.seed, rank=ctx.rank, world_size=ctx.world_size)
    loader_generator = torch.Generator().manual_seed(options.seed)
    common = dict(batch_size=variant.batch_size, num_workers=options.workers,
                  pin_memory=device.type == "cuda", worker_init_fn=_seed_worker if options.workers else None,
                  persistent_workers=options.persistent_workers and options.workers > 0)
    train_loader = DataLoader(train_set, sampler=sampler, drop_last=len(sampler) > variant.batch_size,
                              generator=loader_generator, **common)
    val_loader = DataLoader(val_set, shuffle=False, **common)
    return RunData(train_rows, val_rows, hard_negatives, train_set, sampler, loader_generator, train_loader,
                   val_loader)


def _with_encoder(variant: Variant, encoder: str | None) -> dict | None:
    """The variant's model config with --encoder's encoder (None: no --encoder, the variant's own)."""
    if not encoder:
        return None
    if variant.init_from:
        raise ProjectError(f"--encoder {encoder}: {variant.run_name} starts from the {variant.init_from} "
                           f"checkpoint and keeps its encoder; give --encoder to the {variant.init_from} training")
    model = {**variant.model, "encoder": encoder}
    try:
        check_model_config(model)
    except ValueError as exc:
        raise ProjectError(f"--encoder {encoder}: {exc}") from None
    return model


def _build_model(variant: Variant, options: TrainOptions, paths: Paths, device: torch.device
                 ) -> tuple[nn.Module, Variant]:
    """The network to train: fresh (encoder weights per --encoder-weights), or the best
    checkpoint of the stage the variant starts from (a resumed run then loads its own last
    weights over these)."""
    if variant.init_from:
        return _initial_weights(variant, paths, device)
    return build_model(variant.model, options.encoder_weights).to(device), variant


def _start_run_files(variant: Variant, options: TrainOptions, paths: Paths, data: RunData,
                     device: torch.device) -> RunFiles:
    """Rank 0, before the first epoch: the models folder, stale temporaries gone, an earlier run
    of the same name refused (or, with --overwrite, noted to move aside at the first checkpoint)."""
    if options.keep_previous < 0:
        raise ProjectError(f"--keep-previous {options.keep_previous}: must be 0 or more")
    paths.models_dir.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temporaries(paths.models_dir):
        log.info("removed %s, left by a run killed while writing", stale.name)
    earlier = [] if options.resume else _earlier_run(paths.models_dir, variant.run_name, options.overwrite)
    run_info = {"variant": variant.as_dict(), "options": {k: str(v) if isinstance(v, Path) else v
                                                          for k, v in asdict(options).items()},
                "train_images": len(data.train_rows), "val_images": len(data.val_rows),
                "hard_negatives": len(data.hard_negatives), "device": str(device),
                "world_size": context().world_size}
    return RunFiles(paths.models_dir, variant.run_name, earlier, run_info, options.keep_previous)


@dataclass
class RunFiles:
    """What a run does to the models folder before its first checkpoint (`commit`, once): the
    earlier run of its name moved to previous/ (said with its size; previous/ pruned to the
    `keep_previous` newest of the name), then `<run>_args.json` written. Deferred so that an
    interrupted or failed start leaves the earlier run where it was."""

    models_dir: Path
    run_name: str
    earlier: list[Path]
    run_info: dict
    keep_previous: int
    done: bool = False

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        if self.earlier:
            _move_aside(self.models_dir, self.run_name, self.earlier, self.keep_previous)
        atomic_write_text(self.models_dir / f"{self.run_name}_args.json", json.dumps(self.run_info, indent=2))


def _training_module(core: nn.Module, variant: Variant, options: TrainOptions, device: torch.device) -> nn.Module:
    """What the training step runs: `core` under DistributedDataParallel (torchrun) and/or
    torch.compile; validation and checkpoints use `core` itself."""
    ctx, model = context(), core
    if ctx.enabled:
        unused = freeze_unused(core, torch.zeros(1, 3, variant.img_size, variant.img_size, device=device))
        if unused:
            log.info("%d parameter(s) no forward pass uses, frozen for DistributedDataParallel: %s", len(unused),
                     ", ".join(unused))
        model = DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None)
    if options.compile:
        model = torch.compile(model)
    return model


def _log_start(variant: Variant, data: RunData, device: torch.device, amp: Amp, channels_last: bool,
               options: TrainOptions) -> None:
    ctx = context()
    log.info("training %s (%s) on %s%s: %d train / %d val images, %d hard negatives, %s, "
             "img %d, batch %d%s, lr %g%s", variant.run_name, variant.description, device,
             f" x {ctx.world_size} processes" if ctx.enabled else "", len(data.train_rows), len(data.val_rows),
             len(data.hard_negatives), counted(variant.epochs, "epoch"), variant.img_size, variant.batch_size,
             " per process" if ctx.enabled else "", variant.lr,
             f" | amp {amp.dtype if amp.enabled else 'off'}, channels-last {channels_last}, compile {options.compile}"
             if device.type == "cuda" else "")


def _reseed_epoch(epoch_seed: int, data: RunData, rank: int) -> None:
    """Every random stream of an epoch from its seed: the sampler draws the same on every rank,
    augmentation differs per rank (and is the same again when a run resumes at this epoch)."""
    seed_everything(epoch_seed + 1000 * rank)
    data.sampler.generator.manual_seed(epoch_seed)
    data.loader_generator.manual_seed(epoch_seed + 1000 * rank)
    data.train_set.transform.set_random_seed(epoch_seed + 1000 * rank)


def _train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                     optimizer: torch.optim.Optimizer, amp: Amp, device: torch.device, channels_last: bool,
                     desc: str, progress: bool) -> tuple[float, int]:
    """One pass over the sampler's draw; returns (sum of the losses weighted by batch size, images)."""
    model.train()
    total, count = 0.0, 0
    bar = progress_bar(loader, desc=desc, unit="batch", progress=progress, leave=False)
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            logits = model(images)
        loss = loss_fn(logits.float(), targets)
        value = loss.detach().item()
        if not math.isfinite(value):
            raise ProjectError(f"{desc}: the loss became {value}; lower --lr or check the data")
        amp.scaler.scale(loss).backward()
        amp.scaler.step(optimizer)
        amp.scaler.update()
        total += value * len(images)
        count += len(images)
        bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)     # shown at the next update, not each batch
    return total, count


def _initial_weights(variant: Variant, paths: Paths, device: torch.device) -> tuple[nn.Module, Variant]:
    """The model of `variant`'s `init_from` stage (its best checkpoint), to fine-tune; the variant
    takes the checkpoint's model config, so what is saved describes what was trained."""
    source = find_best(paths.models_dir, f"{variant.name}_{variant.init_from}")
    if source is None:
        source = best_checkpoint(paths.models_dir, f"{variant.name}_{variant.init_from}")
        raise ProjectError(f"{source}: not found; {variant.run_name} starts from it: "
                           f"python bin/script_1_train_v3.py --model {variant.name}")
    model, checkpoint = load_model(source, device)
    log.info("%s starts from %s (epoch %s, val score %.4f)", variant.run_name, source, checkpoint.get("epoch"),
             float(checkpoint.get("best_score", float("nan"))))
    return model.train(), variant.with_overrides(model=dict(checkpoint["model_config"]))


CHECKPOINT_SUFFIXES = (BEST_SUFFIX, LAST_SUFFIX, LEGACY_BEST_SUFFIX)
RUN_FILES = (*CHECKPOINT_SUFFIXES, "_args.json", "_history.csv", "_curves.png")
VAL_THRESHOLD = 0.5             # the probability threshold of the validation score
PREVIOUS_DIR = "previous"      # in the models dir: earlier runs replaced with --overwrite


def _earlier_run(models_dir: Path, run_name: str, overwrite: bool) -> list[Path]:
    """The files of an earlier run of the same name, to move aside (RunFiles.commit). A new run
    never replaces another run's files silently: without `overwrite` an earlier run is a
    ProjectError saying what is there and what to do. Files of a run that stopped before its first
    checkpoint (nothing to resume or keep) are removed here, with a line."""
    earlier = [path for path in (models_dir / f"{run_name}{suffix}" for suffix in RUN_FILES) if path.is_file()]
    if not earlier:
        return []
    if not any(path.name.endswith(CHECKPOINT_SUFFIXES) for path in earlier):
        for path in earlier:
            path.unlink()
        log.info("removed %s, left by an earlier %s run that stopped before its first checkpoint",
                 ", ".join(p.name for p in earlier), run_name)
        return []
    if not overwrite:
        described = ""
        best = best_checkpoint(models_dir, run_name)
        if best.is_file():
            try:
                checkpoint = read_checkpoint(best)
                described = (f" (best val score {float(checkpoint.get('best_score', math.nan)):.4f} "
                             f"at epoch {checkpoint.get('epoch')})")
            except ProjectError:
                described = " (unreadable)"
        raise ProjectError(f"{earlier[0]}: an earlier {run_name} run is there{described}; --resume continues it, "
                           f"--overwrite moves it to {models_dir / PREVIOUS_DIR}/ and starts anew, "
                           "or use another --models-dir")
    return earlier


def _move_aside(models_dir: Path, run_name: str, earlier: list[Path], keep: int) -> None:
    """Move `earlier` to <models>/previous/<run>_<time>/ and keep only the `keep` newest such
    folders of `run_name` there (0: the earlier run is deleted)."""
    size = sum(path.stat().st_size for path in earlier)
    archive = models_dir / PREVIOUS_DIR / f"{run_name}_{time.strftime('%Y%m%d_%H%M%S')}"
    archive.mkdir(parents=True, exist_ok=True)
    for path in earlier:
        path.replace(archive / path.name)
    kept = sorted((models_dir / PREVIOUS_DIR).glob(f"{run_name}_[0-9]*_[0-9]*"), key=lambda p: p.name)
    gone = kept[:max(0, len(kept) - keep)]
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)
    where = f"moved to {relative(archive)}" if archive not in gone else "deleted (--keep-previous 0)"
    pruned = f"; {len(gone)} older one(s) deleted (--keep-previous {keep})" if gone and archive not in gone else ""
    log.info("--overwrite: the earlier %s run (%s) %s%s", run_name, megabytes(size), where, pruned)


def megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size / 1024:.0f} kB"


def require_hard_negatives(paths: Paths) -> None:
    """A fine-tuning run on hard negatives needs the mined file: a clear error naming the command
    that makes it; an empty list is allowed with a warning."""
    path = paths.data_dir / HARD_NEGATIVES_FILE
    if not path.is_file():
        raise ProjectError(f"{path}: no hard-negative file; mine it first: python bin/find_hard_negatives.py "
                           f"--stage v3 (or pass --no-hard-negatives)")
    if not read_hard_negatives(path):
        log.warning("%s: lists no hard negatives; fine-tuning with the FP penalty alone", path)


def _augmented_rows(train_rows: pd.DataFrame, use: bool) -> pd.DataFrame:
    """The training rows with or without the phase-0 augmented copies (one log line either way)."""
    augmented = train_rows["augmented"].astype(bool)
    if not augmented.any():
        return train_rows
    if not use:
        log.info("leaving out %d augmented copies (--no-augmented)", int(augmented.sum()))
        return train_rows[~augmented].reset_index(drop=True)
    log.info("training with %d augmented copies (%d forged, %d authentic); --no-augmented leaves them out",
             int(augmented.sum()), int((augmented & (train_rows["label"] == FORGED)).sum()),
             int((augmented & (train_rows["label"] != FORGED)).sum()))
    return train_rows


def _hard_negatives(paths: Paths, use: bool) -> set[str]:
    """The mined hard negatives, or none (with one log line saying why)."""
    path = paths.data_dir / HARD_NEGATIVES_FILE
    if not use:
        log.info("hard negatives off (--no-hard-negatives)")
        return set()
    if not path.is_file():
        log.info("%s: no hard-negative file yet (python bin/find_hard_negatives.py makes it); "
                 "training without", path)
        return set()
    return read_hard_negatives(path)


def _resume(last_path: Path, model: nn.Module, model_config: dict, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler, amp: Amp) -> tuple[int, list]:
    """Restore model, optimizer, scheduler and scaler from the resume state; (epoch, history).
    The network this run built must be the one the state was saved from (`model_config`)."""
    if not last_path.is_file():
        raise ProjectError(f"{last_path}: no resume state to continue from (a finished run's is removed unless it "
                           f"ran with --keep-last; one stopped before its first epoch ended has none); --overwrite "
                           f"starts anew")
    checkpoint = read_resume_state(last_path)
    for part in ("optimizer_state_dict", "scheduler_state_dict", "scaler_state_dict"):
        if not isinstance(checkpoint.get(part), dict):
            raise ProjectError(f"{last_path}: has no {part.replace('_state_dict', '')} state; cannot resume from it "
                               f"(start anew with --overwrite)")
    if type(checkpoint.get("epoch")) is not int or checkpoint["epoch"] < 0:
        raise ProjectError(f"{last_path}: epoch {checkpoint.get('epoch')!r} is not an integer >= 0; cannot resume")
    saved = dict(checkpoint.get("model_config") or model_config)
    if saved != dict(model_config):
        differ = ", ".join(f"{key} {saved.get(key)!r} (now {model_config.get(key)!r})"
                           for key in sorted(set(saved) | set(model_config)) if saved.get(key) != model_config.get(key))
        raise ProjectError(f"{last_path}: was trained with {differ}; resume with the run's own settings "
                           f"(e.g. --encoder) or start anew with --overwrite")
    try:
        model.load_state_dict(checkpoint["model_state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
        amp.scaler.load_state_dict(checkpoint["scaler_state_dict"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ProjectError(f"{last_path}: does not fit this run ({first_line(exc)}); start anew with --overwrite") \
            from None
    log.info("resuming from %s after epoch %d", last_path, checkpoint["epoch"])
    return int(checkpoint["epoch"]), list(checkpoint.get("history", []))


def _best_so_far(best_path: Path, history: list[dict]) -> tuple[float, float]:
    """(best score, its validation loss) of a resumed run, from its best checkpoint: a run killed
    between writing the best checkpoint and the resume state has a best newer than the resume
    state's history. Without a best checkpoint, from the history."""
    if best_path.is_file():
        best = read_checkpoint(best_path)
        score = float(best.get("best_score", math.nan))
        loss = float((best.get("val_metrics") or {}).get("val_loss", math.inf))
        log.info("best so far: val score %.4f at epoch %s (%s)", score, best.get("epoch"), best_path.name)
        return score, loss
    score = max((h["score"] for h in history), default=-math.inf)
    return score, min((h["val_loss"] for h in history if h["score"] == score), default=math.inf)


def train_variants(variants: list[Variant], options: TrainOptions, paths: Paths, log_file: Path | None,
                   on_data: Callable[[Dataset], None] | None = None) -> int:
    """What every training script ends with: train the variants in order, then print each one's
    best validation score (AUC for the classifier) and checkpoint, and the log file."""
    results = [(variant, train_variant(variant, options, paths, on_data)) for variant in variants]
    if context().is_main:
        for variant, result in results:
            measure = "AUC" if variant.task == "classification" else "score"
            print(f"{variant.name}: best val {measure} {result.best_score:.4f} -> {result.best_path}")
        print(f"log: {log_file}")
    shutdown()
    return 0


