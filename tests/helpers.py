"""Small builders shared by the tests: images and masks written in the Kaggle layout."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import subprocess
import sys
import traceback
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an RGB (or gray / RGBA / 16-bit) array as PNG; RGB is converted to OpenCV's BGR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), image)
    return path


def random_rgb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def box_mask(h: int, w: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """(n, H, W) uint8 mask, one channel per (y0, y1, x0, x1) box."""
    out = np.zeros((len(boxes), h, w), np.uint8)
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        out[k, y0:y1, x0:x1] = 1
    return out


def make_layout(data_dir: Path, seed: int = 0) -> dict:
    """A tiny Kaggle layout: 3 forged (2 with twins, one with 2 instances), 1 supplemental, 2 test."""
    rng = np.random.default_rng(seed)
    forged = {"10": (40, 50), "11": (30, 30), "12": (64, 74)}
    (data_dir / "train_masks").mkdir(parents=True, exist_ok=True)
    for cid, (h, w) in forged.items():
        write_png(data_dir / "train_images" / "forged" / f"{cid}.png", random_rgb(rng, h, w))
        boxes = [(0, 5, 0, 5)] if cid != "12" else [(0, 5, 0, 5), (10, 20, 10, 20)]
        np.save(data_dir / "train_masks" / f"{cid}.npy", box_mask(h, w, *boxes))
    for cid in ("10", "11"):
        h, w = forged[cid]
        write_png(data_dir / "train_images" / "authentic" / f"{cid}.png", random_rgb(rng, h, w))
    write_png(data_dir / "supplemental_images" / "90.png", random_rgb(rng, 20, 20))
    (data_dir / "supplemental_masks").mkdir(parents=True, exist_ok=True)
    np.save(data_dir / "supplemental_masks" / "90.npy", box_mask(20, 20, (0, 20, 0, 20))[0])
    write_png(data_dir / "test_images" / "100.png", random_rgb(rng, 30, 40))
    write_png(data_dir / "test_images" / "7.png", random_rgb(rng, 20, 25))
    return {"forged": forged, "test": {"100": (30, 40), "7": (20, 25)}}


def run_script(name: str, *args: str, cwd: Path, process: bool = False) -> subprocess.CompletedProcess:
    """Run bin/<name> with `args` from `cwd` and capture its exit code and output.

    In this process by default: the script's `main(argv)` under lib.cli.run, as its
    `__main__` block runs it, with stdout and stderr captured (a run costs no interpreter start
    and no second import of torch). `process=True` starts a real interpreter, for the tests
    where the process boundary is the point (signals, a fresh import state, environment)."""
    argv = [str(arg) for arg in args]
    if process:
        return subprocess.run([sys.executable, str(ROOT / "bin" / name), *argv],
                              cwd=cwd, capture_output=True, text=True, timeout=300)
    return _run_in_process(name, argv, cwd)


def _script_module(name: str):
    """bin/<name> imported once as a module (its `__main__` block does not run)."""
    key = f"_bin_{Path(name).stem}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "bin" / name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _run_in_process(name: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    from lib.cli import run
    module = _script_module(name)
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level, saved_argv = list(root.handlers), root.level, sys.argv
    sys.argv = [str(ROOT / "bin" / name), *argv]          # argparse names the program after argv[0]
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run(lambda: module.main(argv))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                if not isinstance(exit_.code, int | None):   # argparse and sys.exit("message")
                    print(exit_.code, file=sys.stderr)
            except Exception:                                  # what a user would see as a traceback
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
        for handler in list(root.handlers):                   # setup_logging's handlers write to `err`
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
    return subprocess.CompletedProcess([name, *argv], code, out.getvalue(), err.getvalue())


TINY_SEGMENTER = {"arch": "attention_fpn", "encoder": "resnet18", "in_channels": 3}


def save_tiny_segmenter(path: Path, img_size: int = 64, seed: int = 0) -> Path:
    """A freshly initialised resnet18 AttentionFPN saved as a pipeline checkpoint (no network)."""
    import torch

    from lib.models.checkpoints import save_checkpoint
    from lib.models.networks import build_model
    torch.manual_seed(seed)
    save_checkpoint(path, build_model(TINY_SEGMENTER), TINY_SEGMENTER, img_size=img_size, epoch=1)
    return path


def changed_checkpoint(source: Path, path: Path, metadata: dict | None | bool = True, raw: dict | None = None,
                       **fields) -> Path:
    """A copy of the safetensors checkpoint `source` at `path` with `fields` replaced (as JSON) and
    `raw` metadata strings set as they are; `metadata=None` drops all metadata (bare tensors)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata() or {})
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    meta.update({key: json.dumps(value) for key, value in fields.items()})
    meta.update(raw or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=None if metadata is None else meta)
    return path
