"""Reading images and masks from disk, whatever their format, with one-line errors naming the file."""
from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError, ProjectError, first_line
from .fileio import atomic_path

# OpenCV's own warnings about a broken file ("PNG input buffer is incomplete") do not name it;
# the errors raised here do
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The pixel budget: every reader of the project refuses an image whose header claims more pixels,
# before decoding it. 100 megapixels (10000 x 10000) is 300 MB as RGB and keeps the predictor and
# the matcher under 4 GB of memory (docs/inference.md has the measurement); the largest figures of
# the competition and of published papers are a few megapixels. A 69-byte PNG can claim
# 100000 x 100000 pixels: decoded, 30 GB.
MAX_PIXELS = 100_000_000

# Pillow reads the headers (it knows PNG, JPEG, TIFF and BMP without decoding them); its own
# decompression-bomb limit is replaced by MAX_PIXELS, checked on every header read here.
Image.MAX_IMAGE_PIXELS = None


@dataclass
class ImageListing:
    """The image files of a folder (`paths`, sorted) and one line per entry that looks like an
    image by its name but cannot be one (`skipped`): a dangling link, a link loop, a folder, a
    special file, a name that is not UTF-8 (it cannot be a case_id of a CSV row)."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def shown(path: Path | str) -> str:
    """A path as it can be printed and logged: bytes of a name that are not UTF-8 as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def find_images(folder: Path, recursive: bool = False, extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                case_ids: bool = True) -> ImageListing:
    """The image files of a folder (by extension, `extensions`; links to files followed), with
    what was skipped and why; empty if the folder is missing. `case_ids`: a name that is not
    UTF-8 is skipped (it cannot name a row of a CSV keyed by case_id)."""
    folder = Path(folder)
    listing = ImageListing()
    if not folder.is_dir():
        return listing
    for path in folder.rglob("*") if recursive else folder.iterdir():
        if path.suffix.lower() not in extensions:
            continue
        problem = _not_an_image_file(path, case_ids)
        if problem:
            listing.skipped.append(f"{shown(path)}: {problem}, skipped")
        else:
            listing.paths.append(path)
    listing.paths.sort(key=lambda p: p.as_posix())
    listing.skipped.sort()
    return listing


def _not_an_image_file(path: Path, case_ids: bool = True) -> str:
    """Why `path` cannot be read as an image file ('' if it can be tried)."""
    try:
        os.fsencode(path.name).decode("utf-8")
    except UnicodeDecodeError:
        if case_ids:
            return "file name is not UTF-8 (it cannot be a case_id)"
    try:
        mode = os.stat(path).st_mode                # follows links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a link loop"
        if path.is_symlink():
            return "a dangling link"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return ""


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files of a folder (by extension), sorted by name; empty if the folder is missing.
    What find_images skips is left out without a word: callers that answer for every file use
    find_images and say it."""
    return find_images(folder, recursive).paths


def header_size(path: Path | str) -> tuple[int, int] | None:
    """(H, W) an image's header claims, read without decoding the pixels (Pillow reads only the
    header from the file); None when the header is not one Pillow knows (the decoder then decides)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
        return None
    return int(height), int(width)


def check_pixel_budget(path: Path | str, height: int, width: int) -> None:
    """Refuse an image over MAX_PIXELS (a DataError naming the file and its size)."""
    if height * width > MAX_PIXELS:
        raise DataError(f"{shown(path)}: {width} x {height} pixels ({height * width / 1e6:.0f} megapixels) is over "
                        f"the pixel budget of {MAX_PIXELS / 1e6:.0f} megapixels (lib/imageio.py MAX_PIXELS)")


def load_image(path: Path) -> np.ndarray:
    """Load an image as RGB uint8 (H, W, 3), whatever it is on disk.

    Grayscale is replicated to three channels, an alpha channel is composited onto
    white (figures are drawn on white paper), 16-bit and float images are rescaled to
    8 bits. Raises DataError naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    claimed = header_size(path)
    if claimed is not None:
        check_pixel_budget(path, *claimed)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:   # e.g. a header that claims more pixels than OpenCV decodes (CV_IO_MAX_IMAGE_PIXELS)
        reason = "claims more pixels than the decoder allows" if "MAX_IMAGE_PIXELS" in str(exc) else "cannot be decoded"
        raise DataError(f"{path}: not a readable image ({reason})") from None
    if image is None:
        raise DataError(f"{path}: not a readable image (truncated, corrupt or not an image)")
    check_pixel_budget(path, *image.shape[:2])     # a header Pillow did not know: checked after decoding
    return to_rgb_uint8(image, path)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB (or gray) uint8 image as PNG, atomically; a clear error if it cannot be."""
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", bgr)
    if not ok:
        raise ProjectError(f"{path}: could not encode the image as PNG")
    with atomic_path(path) as tmp:      # a failed write is a one-line WriteError naming the file
        buffer.tofile(tmp)


def to_rgb_uint8(image: np.ndarray, path: Path | str = "<array>") -> np.ndarray:
    """Convert a decoded OpenCV array (gray, BGR or BGRA; 8/16-bit or float) to RGB uint8."""
    image = _to_uint8(image, path)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # gray + alpha
        gray, alpha = image[:, :, 0], image[:, :, 1]
        return cv2.cvtColor(_over_white(gray[..., None], alpha)[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(_over_white(image[:, :, :3], image[:, :, 3]), cv2.COLOR_BGR2RGB)
    raise DataError(f"{path}: unsupported number of channels ({channels})")


def _to_uint8(image: np.ndarray, path: Path | str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # 65535 / 257 = 255 exactly: the full 16-bit range maps onto the full 8-bit range.
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        # the range is read from the finite pixels: one inf must not make a [0, 1] image black
        finite = np.isfinite(image)
        peak = float(np.max(image, where=finite, initial=0.0))
        scale = 255.0 if peak <= 1.0 else 1.0
        image = np.nan_to_num(image, nan=0.0, posinf=peak, neginf=0.0)
        return np.clip(image * scale, 0, 255).round().astype(np.uint8)
    raise DataError(f"{path}: unsupported pixel type {image.dtype}")


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    return (color.astype(np.float32) * a + 255.0 * (1.0 - a)).round().astype(np.uint8)


def read_image_size(path: Path) -> tuple[int, int]:
    """Return (H, W) of an image; for PNG reads only the header and checks the end chunk is
    there (a truncated file is a DataError), decodes other formats."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(head) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        # the header alone would pass a truncated file: its IEND chunk must be there too
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 1024))
            if b"IEND" not in fh.read():
                raise DataError(f"{path}: truncated PNG (no IEND chunk at its end)")
        width, height = struct.unpack(">II", head[16:24])
        check_pixel_budget(path, height, width)
        return int(height), int(width)
    image = load_image(path)
    return image.shape[0], image.shape[1]


@dataclass(frozen=True)
class InstanceMasks:
    """The forgery instances of one image: `instances` (n, H, W) bool, one channel per event."""

    instances: np.ndarray

    @property
    def union(self) -> np.ndarray:
        """(H, W) bool: every forged pixel of the image."""
        return self.instances.any(axis=0)

    @property
    def count(self) -> int:
        return int(self.instances.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.instances.shape[1]), int(self.instances.shape[2])


def load_mask(path: Path, expected_hw: tuple[int, int] | None = None) -> InstanceMasks:
    """Load a competition mask file (.npy) as instance masks.

    Accepts (n, H, W) and (H, W) arrays of bool, integers or floats (nonzero / > 0.5 is
    forged). Channels with no forged pixel are dropped. Raises DataError naming the file
    when it cannot be read, has another ndim or dtype, or its (H, W) differs from
    `expected_hw`.
    """
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy mask ({first_line(exc)})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: not a single array (got {type(array).__name__})")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"{path}: mask must be (n, H, W) or (H, W), got shape {array.shape}")
    if array.dtype == np.bool_:
        instances = array
    elif np.issubdtype(array.dtype, np.integer):
        instances = array != 0
    elif np.issubdtype(array.dtype, np.floating):
        instances = array > 0.5
    else:
        raise DataError(f"{path}: mask dtype {array.dtype} is not bool, integer or float")
    if expected_hw is not None and tuple(instances.shape[1:]) != tuple(expected_hw):
        raise DataError(f"{path}: mask shape {array.shape} does not match its image "
                        f"(H, W) = {tuple(expected_hw)}")
    keep = instances.reshape(instances.shape[0], -1).any(axis=1)
    return InstanceMasks(np.ascontiguousarray(instances[keep]))
