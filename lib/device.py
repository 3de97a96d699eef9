"""The compute device and mixed precision, shared by training and inference."""
from __future__ import annotations

import torch

from .errors import ProjectError
from .options import AMP_MODES


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ProjectError(f"--device {name}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProjectError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device




class Amp:
    """Mixed precision on CUDA: `auto` is bf16 where supported, else fp16 with a gradient scaler;
    `bf16` / `fp16` force one, `off` is full fp32. Always off on CPU."""

    def __init__(self, device: torch.device, mode: str = "auto"):
        if mode not in AMP_MODES:
            raise ProjectError(f"--amp {mode}: use one of {', '.join(AMP_MODES)}")
        self.enabled = device.type == "cuda" and mode != "off"
        if mode == "bf16" and self.enabled and not torch.cuda.is_bf16_supported():
            raise ProjectError("--amp bf16: this GPU does not support bfloat16 (use --amp fp16)")
        bf16 = mode == "bf16" or (mode == "auto" and self.enabled and torch.cuda.is_bf16_supported())
        self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)
        self.device_type = device.type

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)
