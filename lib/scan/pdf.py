"""Figures out of documents: every raster image a PDF embeds, at its stored resolution (not a
rendering of the page), with its page and its index on the page; an image file is a document of
one figure.

pypdf reads the PDFs: BSD-3-Clause (fits this repository's MIT licence), pure Python, installed
from the package index with no system binary, and it reads a file lazily from an open handle,
object by object. Pillow, already a dependency, decodes what it extracts. PyMuPDF is faster but
AGPL; poppler's pdfimages is a system binary; pdfminer.six is a text extractor first.

Each image is checked before it is decoded: its dictionary's /Width and /Height (and a JPEG's
own header) against the project's pixel budget (lib.imageio.MAX_PIXELS), so a 50,000 x 50,000
claim costs nothing. Images are written one at a time to a folder the caller owns and never held
together: memory follows the largest image, not the file. An image drawn more than once (a
logo on every page) is scanned once, where it first appears; images under MIN_SIDE pixels a side
(icons, logos, rules) and stencil masks are counted, not scanned; inline images (the PDF
specification keeps them to a few kilobytes) are not looked at.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import ProjectError, first_line
from ..imageio import MAX_PIXELS, check_pixel_budget, shown
from ..fileio import atomic_path

# pypdf logs what it repairs in a broken file ("EOF marker not found"); what cannot be repaired
# reaches the scan as an exception and its one line in the report
logging.getLogger("pypdf").setLevel(logging.ERROR)

MIN_SIDE = 64                    # pixels: smaller images are icons, logos and rules, not figures
PDF_SUFFIX = ".pdf"
# pypdf's own limits on decoded data (75 MB by default) raised to what the pixel budget allows:
# four bytes a pixel (CMYK) of MAX_PIXELS; the budget itself is checked before decoding
_DECODE_LIMIT = 4 * MAX_PIXELS + 1_000_000
_LIMITS = dict(zlib_maximum_output_length=_DECODE_LIMIT, lzw_maximum_output_length=_DECODE_LIMIT,
               run_length_maximum_output_length=_DECODE_LIMIT, image_maximum_buffer_size=_DECODE_LIMIT,
               maximum_declared_stream_length=_DECODE_LIMIT, array_based_stream_maximum_output_length=_DECODE_LIMIT,
               stream_decoding_work_maximum_length=2 * _DECODE_LIMIT)


class DocumentError(ProjectError):
    """A document that cannot be scanned at all: not a PDF, corrupt, or password-protected."""


@dataclass(frozen=True)
class Figure:
    """One image of a document, written to `path`."""

    page: int                    # 1-based; 0 for an image file
    index: int                   # 1-based among the page's images, in the order the page lists them
    path: Path
    height: int
    width: int


@dataclass(frozen=True)
class Unreadable:
    """An image (or a page) of a document that could not be decoded, and why."""

    page: int
    index: int                   # 0: the whole page
    reason: str


@dataclass
class Extraction:
    """What a document gave: its figures, the images that could not be decoded, and the counts of
    those left out on purpose."""

    pages: int = 0
    figures: list[Figure] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    tiny: int = 0                # under MIN_SIDE pixels a side, or a stencil mask
    repeated: int = 0            # drawn again after their first appearance


def is_pdf(path: Path) -> bool:
    return Path(path).suffix.lower() == PDF_SUFFIX


def extract_pdf(document: Path, folder: Path) -> Extraction:
    """Write every embedded image of the PDF `document` to `folder` (created; the caller removes
    it) as `p<page>-i<index>.jpg` (a JPEG's own bytes) or `.png` (anything else, lossless) and
    say what was found. Raises DocumentError when the file cannot be read as a PDF at all."""
    import pypdf                 # imported here: the rest of the project never needs it
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = Extraction()
    try:
        handle = open(document, "rb")      # a handle, not the path: pypdf would read a path whole into memory
    except OSError as exc:
        raise DocumentError(f"{shown(document)}: cannot be read ({exc.strerror or exc})") from None
    with handle, pypdf.apply_configuration(**_LIMITS):
        reader = _open_reader(pypdf, handle, document)
        try:
            pages = reader.pages
            result.pages = len(pages)
        except Exception as exc:            # noqa: BLE001 (a hostile file can break the parser anywhere)
            raise DocumentError(f"{shown(document)}: not a readable PDF (its page tree: {first_line(exc)})") from None
        seen: set[int] = set()
        for number in range(1, result.pages + 1):
            try:
                images = list(_page_images(pages[number - 1], seen, result))
            except Exception as exc:        # noqa: BLE001
                result.unreadable.append(Unreadable(number, 0, f"page {number} cannot be read: {first_line(exc)}"))
                continue
            for index, (image, repeated) in enumerate(images, start=1):
                if repeated:
                    result.repeated += 1
                else:
                    _extract_one(image, number, index, folder, result)
            reader.resolved_objects.clear()  # objects read for this page: read again if needed, not kept
    return result


def _open_reader(pypdf, handle, document: Path):
    try:
        reader = pypdf.PdfReader(handle)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{shown(document)}: password-protected (encrypted with a user password); "
                                f"not scanned")
    except DocumentError:
        raise
    except pypdf.errors.DependencyError as exc:
        raise DocumentError(f"{shown(document)}: encrypted with a cipher that needs a package ({first_line(exc)})"
                            ) from None
    except Exception as exc:                # noqa: BLE001 (a corrupt file: whatever the parser raised)
        raise DocumentError(f"{shown(document)}: not a readable PDF ({first_line(exc)})") from None
    return reader


def _page_images(container, seen: set[int], result: Extraction, depth: int = 0) -> Iterator:
    """(image XObject, whether an earlier page drew it) for each image a page (or a form XObject
    inside it) lists, forms followed; `seen` holds the object numbers met so far."""
    resources = container.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if hasattr(resources, "get") else None
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not hasattr(xobjects, "items") or depth > 8:
        return
    for _, reference in xobjects.items():
        number = getattr(reference, "idnum", None)
        xobject = reference.get_object()
        if not hasattr(xobject, "get"):
            continue
        subtype = xobject.get("/Subtype")
        if subtype == "/Form":
            if number is None or number not in seen:
                if number is not None:
                    seen.add(number)
                yield from _page_images(xobject, seen, result, depth + 1)
        elif subtype == "/Image":
            repeated = number is not None and number in seen
            if number is not None:
                seen.add(number)
            yield xobject, repeated


def _extract_one(image, page: int, index: int, folder: Path, result: Extraction) -> None:
    where = f"page {page}, image {index}"
    try:
        width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
        if image.get("/ImageMask", False) or min(width, height) < MIN_SIDE:
            result.tiny += 1
            return
        check_pixel_budget(where, height, width)
        path = _write_jpeg(image, folder / f"p{page}-i{index}.jpg", where)
        if path is None:
            path = _write_decoded(image, folder / f"p{page}-i{index}.png", where)
    except ProjectError as exc:
        result.unreadable.append(Unreadable(page, index, str(exc)))
        return
    except Exception as exc:                # noqa: BLE001 (filters and decoders of a hostile stream)
        result.unreadable.append(Unreadable(page, index, f"{where}: cannot be decoded ({first_line(exc)})"))
        return
    result.figures.append(Figure(page, index, path, height, width))


def _filters(image) -> list[str]:
    filters = image.get("/Filter")
    if filters is None:
        return []
    filters = filters.get_object()
    return [str(f) for f in filters] if isinstance(filters, list) else [str(filters)]


def _write_jpeg(image, path: Path, where: str) -> Path | None:
    """A plain JPEG (RGB or gray, no mask, no decode array) written as its own bytes; None for
    anything else (decoded instead)."""
    if _filters(image)[-1:] != ["/DCTDecode"] or "/SMask" in image or "/Decode" in image:
        return None
    data = image.get_data()                # the filters before DCTDecode undone; the JPEG itself as stored
    with Image.open(io.BytesIO(data)) as jpeg:
        width, height = jpeg.size
        mode = jpeg.mode
    check_pixel_budget(where, height, width)   # its own header, which the dictionary may contradict
    if mode not in ("RGB", "L"):
        return None
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _write_decoded(image, path: Path, where: str) -> Path:
    """Decode an image XObject (pypdf and Pillow: filters, colour spaces, masks) and write it as PNG."""
    picture = image.decode_as_image()
    check_pixel_budget(where, picture.height, picture.width)
    if picture.mode in ("RGBA", "LA", "PA"):
        array = cv2.cvtColor(np.asarray(picture.convert("RGBA")), cv2.COLOR_RGBA2BGRA)
    elif picture.mode in ("L", "I;16", "I"):
        array = np.asarray(picture) if picture.mode == "L" else np.asarray(picture.convert("I;16"))
    else:
        array = cv2.cvtColor(np.asarray(picture.convert("RGB")), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ProjectError(f"{where}: could not be written as PNG")
    with atomic_path(path) as tmp:
        buffer.tofile(tmp)
    return path
