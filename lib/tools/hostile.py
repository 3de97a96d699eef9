"""A folder of hostile and odd inputs beside good images, to try every reader of the project on.

Each case is a file a user's test folder could hold: a header that claims a pixel bomb, images of
a side of 1 to 8 px, corrupt, truncated and empty files, pixel types that need converting, a name
that is not UTF-8, links good and bad, a folder and a pipe named like images. `EXPECTED` says
what each must give: a row (`row`, with `unreadable` when the row is a guess) or one warning and
no row (`skipped`). bin/make_hostile_folder.py writes it; tests/test_hostile.py runs the
predictor, the matcher and the Kaggle package over it.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..imageio import write_png

NOT_UTF8_NAME = b"bad_name_\xff.png"     # written as bytes: the one case that has no str name

# file name -> what a run over the folder must answer for it
EXPECTED: dict[str, str] = {
    "good_1.png": "row", "good_2.jpg": "row", "good_copy.png": "row",
    "bomb_100000px.png": "unreadable",        # a 69-byte PNG claiming 100000 x 100000 pixels
    "tiny_1x1.png": "row", "tiny_8x8.png": "row", "tiny_4x500.png": "row", "tiny_1x3000.png": "row",
    "empty.png": "unreadable", "text.png": "unreadable", "truncated.png": "unreadable",
    "truncated_jpeg.jpg": "unreadable",
    "gray16.png": "row", "gray_alpha.png": "row", "float_inf.tif": "row",
    "link_to_good.png": "row",
    "dangling_link.png": "skipped", "link_loop.png": "skipped", "folder.png": "skipped",
    "pipe.png": "skipped", NOT_UTF8_NAME.decode("utf-8", "surrogateescape"): "skipped",
}
# written only with large=True (the memory measurement; seconds to write, hundreds of MB decoded)
LARGE: dict[str, str] = {
    "bomb_30000px.png": "unreadable",     # a real 30000 x 30000 PNG (under 1 MB on disk): over the budget
    "large_10000px.png": "row",           # 100 megapixels: the largest image within the budget
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims `width` x `height` RGB pixels (no pixel data)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    noise = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(image, (3, 3), 0)


def write_hostile_folder(folder: Path, large: bool = False, seed: int = 0) -> Path:
    """Write the hostile folder (the cases of EXPECTED, with `large` those of LARGE too) and
    return it. Raises FileExistsError when the folder is not empty."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder}: not empty")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    good = _texture(rng, 256, 320)
    write_png(folder / "good_1.png", good)
    cv2.imwrite(str(folder / "good_2.jpg"), cv2.cvtColor(_texture(rng, 300, 240), cv2.COLOR_RGB2BGR))
    copied = _texture(rng, 320, 320)
    copied[200:280, 190:290] = copied[30:110, 40:140]        # a copy-move forgery: the matcher finds it
    write_png(folder / "good_copy.png", copied)

    (folder / "bomb_100000px.png").write_bytes(png_claiming(100_000, 100_000))
    for height, width in ((1, 1), (8, 8), (4, 500), (1, 3000)):
        write_png(folder / f"tiny_{height}x{width}.png", _texture(rng, max(height, 8), max(width, 8))[:height, :width])

    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    whole = (folder / "good_1.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    jpeg = (folder / "good_2.jpg").read_bytes()
    (folder / "truncated_jpeg.jpg").write_bytes(jpeg[: len(jpeg) // 3])

    cv2.imwrite(str(folder / "gray16.png"), (rng.random((120, 160)) * 65535).astype(np.uint16))
    gray_alpha = np.dstack([_texture(rng, 120, 160)[:, :, 0], np.full((120, 160), 128, np.uint8)])
    Image.fromarray(gray_alpha).save(folder / "gray_alpha.png")      # OpenCV writes no 2-channel PNG
    floats = rng.random((120, 160)).astype(np.float32)
    floats[0, 0] = np.inf
    cv2.imwrite(str(folder / "float_inf.tif"), floats)

    os.symlink("good_1.png", folder / "link_to_good.png")
    os.symlink("missing.png", folder / "dangling_link.png")
    os.symlink("link_loop.png", folder / "link_loop.png")
    (folder / "folder.png").mkdir()
    os.mkfifo(folder / "pipe.png")
    with open(os.path.join(os.fsencode(folder), NOT_UTF8_NAME), "wb") as handle:
        handle.write(whole)
    if large:
        ok, encoded = cv2.imencode(".png", np.zeros((30_000, 30_000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        encoded.tofile(folder / "bomb_30000px.png")
        tiles = np.tile(_texture(rng, 250, 250), (40, 40, 1))      # repeats: a small file, 300 MB decoded
        deflate = [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_DEFAULT]
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(tiles, cv2.COLOR_RGB2BGR), deflate)
        encoded.tofile(folder / "large_10000px.png")
    return folder
