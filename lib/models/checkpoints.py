"""Checkpoint files: how they are written and read, and what is refused (their names: lib.paths).

Two kinds, because two kinds of reader exist:

- A model checkpoint, `<run>_best.safetensors`: what the predictor loads, what the Kaggle
  package carries and what competitors share. safetensors holds tensors and string metadata and
  nothing that runs: reading it parses a JSON header and copies bytes. The metadata holds
  `format` (FORMAT) and each field as JSON: `model_config` (what `build_model` rebuilds, so a
  checkpoint loads without knowing which script wrote it), `epoch`, `best_score`, `val_metrics`,
  `history`, `variant`, `img_size`, `normalization`, `seed`, ...
- A resume state, `<run>_last.pth`: the same plus optimizer, scheduler and gradient-scaler state
  for `--resume`. A run reads only its own, with `torch.load(weights_only=True)` (torch >= 2.10:
  earlier releases had bypasses of that restriction, CVE-2025-32434 and CVE-2026-24747).

A torch pickle offered as a model checkpoint (the `.pth` best files of earlier versions, or
anyone's) is refused with one line naming the file and the conversion command
(`python bin/convert_checkpoint.py PATH`), which reads it with weights_only=True.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..errors import CheckpointError, first_line, preview
from ..fileio import atomic_write_bytes
from .networks import build_model, check_model_config, unwrap
from ..paths import LEGACY_BEST_SUFFIX, best_checkpoint

FORMAT = "recodai-forgery-checkpoint/1"
CONVERT_COMMAND = "python bin/convert_checkpoint.py"
MIN_TORCH = (2, 10)                      # weights_only=True without the known bypasses


# --- finding a run's best checkpoint -------------------------------------------------------

def find_best(models_dir: Path, run_name: str) -> Path | None:
    """The run's best checkpoint if it is there; None if not. Only a pickled best checkpoint of an
    earlier version there is a CheckpointError saying how to convert it."""
    path = best_checkpoint(models_dir, run_name)
    if path.is_file():
        return path
    legacy = Path(models_dir) / f"{run_name}{LEGACY_BEST_SUFFIX}"
    if legacy.is_file():
        raise _pickle_refusal(legacy)
    return None


# --- model checkpoints (safetensors) ---------------------------------------------------------

def _plain(value: Any) -> Any:
    """`value` as JSON-able plain Python (numpy scalars and arrays, tuples, Paths turned plain)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, torch.Tensor)) and value.ndim == 0:
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    return str(value)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}


def save_checkpoint(path: Path, model: nn.Module, model_config: dict, **fields: Any) -> None:
    """Write a model checkpoint (safetensors, fields as JSON metadata) atomically and durably."""
    fields = _plain({"model_config": dict(model_config), **fields})
    metadata = {"format": FORMAT, **{k: json.dumps(v) for k, v in fields.items()}}
    atomic_write_bytes(path, safetensors_bytes(_state(model), metadata=metadata))


def read_checkpoint(path: Path) -> dict:
    """A model checkpoint as a dict: `model_state_dict`, `model_config` and its other fields.
    Refuses, with one line naming the file, anything that is not this project's safetensors
    checkpoint; a torch pickle is never unpickled here."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if _is_torch_pickle(path):
        raise _pickle_refusal(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:   # safetensors' own error type for a bad header, OSError, ...
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({first_line(exc)})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a checkpoint of this project "
                              f"(metadata format {metadata.get('format')!r}, expected {FORMAT!r})")
    fields = {}
    for key, text in metadata.items():
        if key == "format":
            continue
        try:
            fields[key] = json.loads(text)
        except (ValueError, RecursionError):
            raise CheckpointError(f"{path}: metadata field {key!r} is not JSON (or nested too deeply)") from None
    if not isinstance(fields.get("model_config"), dict):
        raise CheckpointError(f"{path}: no model_config in its metadata")
    check_fields(path, fields)
    return {"model_state_dict": state, **fields}


IMG_SIZES = (32, 4096)           # the input sizes a checkpoint may record: multiples of 32 in this range
MAX_PARAMETERS = 300_000_000     # the project's networks have 10-60 million; a bigger config is refused unbuilt


def check_fields(path: Path, fields: dict) -> None:
    """The metadata fields the predictor reads, each of its type and in its range, or a
    CheckpointError naming the file and the field: `img_size` an integer multiple of 32 within
    IMG_SIZES, `epoch` an integer >= 0, `best_score` a finite number (or null)."""
    def refuse(name: str, what: str) -> None:
        raise CheckpointError(f"{path}: metadata {name} {preview(repr(fields[name]), 40)} is not {what}")

    if "img_size" in fields:
        size = fields["img_size"]
        if not (type(size) is int and IMG_SIZES[0] <= size <= IMG_SIZES[1] and size % 32 == 0):
            refuse("img_size", f"an integer multiple of 32 from {IMG_SIZES[0]} to {IMG_SIZES[1]}")
    if "epoch" in fields and not (type(fields["epoch"]) is int and fields["epoch"] >= 0):
        refuse("epoch", "an integer >= 0")
    score = fields.get("best_score")
    if score is not None and not (type(score) in (int, float) and math.isfinite(score)):
        refuse("best_score", "a finite number")


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes, load its weights, move it to `device`, eval mode.
    Returns (model, checkpoint dict). A config naming an unknown architecture or encoder is refused
    before anything is built (nothing is looked up online or on disk by a name from a file)."""
    checkpoint = read_checkpoint(path)
    return _model_of(path, checkpoint).to(device).eval(), checkpoint


def _model_of(path: Path, checkpoint: dict) -> nn.Module:
    config = checkpoint["model_config"]
    try:
        check_model_config(config)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    check_weights_fit(path, config, checkpoint["model_state_dict"])
    try:
        model = build_model(config, "none")
    except Exception as exc:   # an encoder smp lists but cannot build, ...
        raise CheckpointError(f"{path}: cannot build the model {config} it describes ({first_line(exc)})") from None
    try:
        model.load_state_dict(checkpoint["model_state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit model {config} ({first_line(exc)})") from None
    return model


def check_weights_fit(path: Path, config: dict, state: dict[str, torch.Tensor]) -> None:
    """Before any memory is spent on the model a config describes: build it on torch's meta device
    (shapes, no storage), refuse it over MAX_PARAMETERS, and refuse weights that do not fit it,
    naming the first tensor missing, unexpected or of another shape."""
    try:
        with torch.device("meta"):
            skeleton = build_model(config, "none").state_dict()
    except Exception as exc:   # an encoder smp lists but cannot build, ...
        raise CheckpointError(f"{path}: cannot build the model {config} it describes ({first_line(exc)})") from None
    parameters = sum(t.numel() for t in skeleton.values())
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: its model_config {config} has {parameters:,} parameters, more than the "
                              f"{MAX_PARAMETERS:,} of any network of this project; not building it")
    for key, tensor in skeleton.items():
        if key not in state:
            raise CheckpointError(f"{path}: weights do not fit model {config} (tensor {key!r} missing)")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{path}: weights do not fit model {config} (tensor {key!r} is "
                                  f"{tuple(state[key].shape)}, the model's {tuple(tensor.shape)})")
    unexpected = sorted(set(state) - set(skeleton))
    if unexpected:
        raise CheckpointError(f"{path}: weights do not fit model {config} (unexpected tensor {unexpected[0]!r}"
                              f"{f' and {len(unexpected) - 1} more' if len(unexpected) > 1 else ''})")


# --- resume states (torch, weights_only) -------------------------------------------------------

def save_resume_state(path: Path, model: nn.Module, model_config: dict, **fields: Any) -> None:
    """Write a run's resume state atomically: the model's weights and config, the fields (as plain
    Python) and the optimizer / scheduler / scaler state dicts passed among them."""
    states = {k: fields.pop(k) for k in list(fields) if k.endswith("_state_dict")}
    buffer = io.BytesIO()
    torch.save({"model_state_dict": _state(model), **states,
                **_plain({"model_config": dict(model_config), **fields})}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_resume_state(path: Path) -> dict:
    """A run's own resume state, read with weights_only=True (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: resume state not found")
    _require_safe_torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # truncated zip, a pickle that needs more than weights_only allows
        raise CheckpointError(f"{path}: not a readable resume state ({first_line(exc)})") from None
    return _of_this_project(path, state, "a resume state")


def _of_this_project(path: Path, state: object, kind: str) -> dict:
    """`state` if it is a dict with the model's weights and config (what every torch file of this
    project holds), else a CheckpointError naming `path`."""
    if not isinstance(state, dict) or not isinstance(state.get("model_state_dict"), dict) \
            or not isinstance(state.get("model_config"), dict):
        raise CheckpointError(f"{path}: not {kind} of this project (needs model_state_dict and model_config)")
    return state


def _require_safe_torch() -> None:
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < MIN_TORCH:
        raise CheckpointError(f"torch {torch.__version__}: loading torch files is unsafe before "
                              f"{'.'.join(map(str, MIN_TORCH))} (weights_only bypasses); "
                              f"pip install -r requirements.txt")


# --- earlier versions' pickles ------------------------------------------------------------------

def _is_torch_pickle(path: Path) -> bool:
    """torch.save's zip container, or a bare pickle (torch's legacy format), and not safetensors
    (whose first 8 bytes, the header length, may begin with any byte, 0x80 included, and whose
    JSON header starts at byte 8 with '{', which is no pickle opcode: a truncated safetensors
    file is still one, and its reader says what is wrong with it)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _pickle_refusal(path: Path) -> CheckpointError:
    return CheckpointError(f"{path}: a torch pickle file; loading it could run code, so model checkpoints must be "
                           f"safetensors. If it is your own checkpoint of this project: {CONVERT_COMMAND} {path}")


def converted_name(path: Path) -> Path:
    """Where `convert_checkpoint` writes: `<run>_best.pth` -> `<run>_best.safetensors`."""
    return Path(path).with_suffix(".safetensors")


def convert_checkpoint(path: Path, output: Path | None = None, overwrite: bool = False) -> Path:
    """Rewrite a pickled checkpoint of an earlier version as a safetensors model checkpoint.
    It is read with weights_only=True (tensors and plain containers only; numpy scalars in its
    metrics are allowed), so a crafted pickle fails here instead of running; the model is rebuilt
    from it to prove the weights fit before anything is written."""
    path = Path(path)
    output = Path(output) if output else converted_name(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: not found")
    if output.exists() and not overwrite:
        raise CheckpointError(f"{output}: exists; pass --overwrite to replace it")
    _require_safe_torch()
    try:
        with torch.serialization.safe_globals(_NUMPY_SCALARS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: refused: not loadable with weights_only=True ({first_line(exc)}); "
                              f"a checkpoint of this project always is, so this file holds something else") from None
    model = _model_of(path, _of_this_project(path, state, "a checkpoint"))
    fields = {k: v for k, v in state.items() if k != "model_state_dict" and not k.endswith("_state_dict")}
    config = fields.pop("model_config")
    save_checkpoint(output, model, config, **fields)
    return output


def _numpy_scalars() -> list:
    """What numpy scalars pickle to (older runs stored np.float64 metrics), for safe_globals."""
    multiarray = getattr(np, "_core", None) or np.core
    found = [multiarray.multiarray.scalar, np.dtype]
    found += [type(np.dtype(kind)) for kind in ("float64", "float32", "int64", "int32", "bool")]
    return found


_NUMPY_SCALARS = _numpy_scalars()


def describe(path: Path) -> str:
    """One line about a model checkpoint: run, epoch, score, config."""
    checkpoint = read_checkpoint(path)
    score = checkpoint.get("best_score", math.nan)
    return (f"{Path(path).name}: {checkpoint['model_config']}, epoch {checkpoint.get('epoch')}, "
            f"best val score {float(score if score is not None else math.nan):.4f}, "
            f"{len(checkpoint['model_state_dict'])} tensors")
