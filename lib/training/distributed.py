"""Multi-process training with PyTorch's own engine: `torchrun --nproc_per_node=N bin/<train script>`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `context()` then joins the process group (NCCL on
CUDA, gloo on CPU) once per process. Without them (a plain `python bin/...` run) nothing changes:
one process, world size 1, no process group. Every rank trains on its own share of the same
weighted draw (`ShardedWeightedSampler`); gradients are averaged by DistributedDataParallel;
rank 0 alone logs, validates and writes files, the others wait for it at a barrier.
"""
from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..device import resolve_device
from ..errors import ProjectError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, total: float, count: int) -> float:
        """sum(total) / sum(count) over the ranks (the epoch's mean training loss)."""
        if not self.enabled:
            return total / max(count, 1)
        buffer = torch.tensor([total, float(count)], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            buffer = buffer.cuda()
        dist.all_reduce(buffer)
        return float(buffer[0] / buffer[1].clamp(min=1))


_CONTEXT: DistContext | None = None


def context() -> DistContext:
    """This process's place in the torchrun job (joined on first call), or the single-process context."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        _CONTEXT = DistContext()
        return _CONTEXT
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("FORGERY_DIST_BACKEND") != "gloo" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    print(f"[rank {rank}/{world_size}] joined the process group ({backend}, pid {os.getpid()})", file=sys.stderr,
          flush=True)
    if rank:
        logging.getLogger().setLevel(logging.WARNING)   # rank 0 speaks for the job
    _CONTEXT = DistContext(rank, world_size, local_rank)
    return _CONTEXT


def device_for(name: str, ctx: DistContext) -> torch.device:
    """The training device of this rank: `name` alone, or with several ranks on CUDA, cuda:<local rank>."""
    device = resolve_device(name)
    if ctx.enabled and device.type == "cuda":
        if name not in ("auto", "cuda"):
            raise ProjectError(f"--device {name}: under torchrun each rank takes cuda:<local rank>; use --device cuda")
        device = torch.device("cuda", ctx.local_rank)
    return device


def freeze_unused(model: torch.nn.Module, example: torch.Tensor) -> list[str]:
    """Freeze the parameters that no forward pass uses (timm's classification head inside smp's
    efficientnet encoder): DistributedDataParallel would wait for their gradients forever. Found
    by one forward and backward of `example` in eval mode (running statistics untouched); returns
    their names. A single process never updates them either (no gradient), so nothing changes."""
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    model(example).float().sum().backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in model.named_parameters():
        if name in unused:
            p.requires_grad_(False)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return unused


def shutdown() -> None:
    """Leave the process group (end of a training script)."""
    global _CONTEXT
    if _CONTEXT is not None and _CONTEXT.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _CONTEXT = None


class ShardedWeightedSampler(Sampler[int]):
    """The weighted draw with replacement of WeightedRandomSampler, made identically on every rank
    (one seed, reset per epoch through `generator`), each rank taking every world_size-th index
    from its rank on. The draw is padded to a multiple of world_size so every rank runs the same
    number of batches (DistributedDataParallel needs that)."""

    def __init__(self, weights: np.ndarray, rank: int, world_size: int, num_samples: int | None = None,
                 seed: int = 0):
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.rank, self.world_size = rank, world_size
        total = len(self.weights) if num_samples is None else num_samples
        self.per_rank = math.ceil(total / world_size)
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        draw = torch.multinomial(self.weights, self.per_rank * self.world_size, replacement=True,
                                 generator=self.generator)
        return iter(draw[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_rank
