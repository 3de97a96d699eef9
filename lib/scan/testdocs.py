"""Test documents with known truth (bin/make_test_pdfs.py): figures placed on pages with text,
some compound (two figures side by side in one image), a known share forged, and the bad
documents a scan must survive (password-protected, corrupt, without images, an image bomb).

The PDFs are written by a small writer of our own (write_pdf) rather than a page-layout library:
the tests need exact control of how each image is stored (a JPEG's own bytes, Flate-compressed
RGB or gray, a dictionary that claims 50,000 x 50,000 pixels), which layout libraries decide for
themselves. It writes one object at a time to the file, so a PDF of several hundred MB never sits
in memory. pypdf encrypts the password-protected one.
"""
from __future__ import annotations

import csv
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import ProjectError
from ..fileio import atomic_path

PAGE = (595.0, 842.0)            # A4 in points
MARGIN = 56.0
TRUTH_FILE = "truth.csv"
TRUTH_COLUMNS = ("document", "page", "image", "forged", "sources", "expect")
_WORDS = ("cells were imaged after staining with antibodies against the indicated proteins and lysates were "
          "separated by electrophoresis quantification shows mean values of three independent experiments "
          "scale bars represent fifty micrometres error bars show the standard deviation").split()


@dataclass
class Picture:
    """An image on a page at (x, y, w, h) points (origin bottom left), stored as `encoding`:
    jpeg (its JPEG bytes, DCTDecode) or flate (raw samples, FlateDecode; gray when 2-D). `claimed`
    (width, height) is written in place of the true size: an image bomb's dictionary."""

    image: np.ndarray
    x: float
    y: float
    w: float
    h: float
    encoding: str = "jpeg"
    claimed: tuple[int, int] | None = None
    shared: str = ""             # pictures of one name are one object (a logo on every page)


@dataclass
class Page:
    texts: list[tuple[float, float, float, str]] = field(default_factory=list)   # x, y, size, text
    pictures: list[Picture] = field(default_factory=list)


def _image_object(picture: Picture) -> bytes:
    image = picture.image
    gray = image.ndim == 2
    if picture.encoding == "jpeg":
        ok, data = cv2.imencode(".jpg", image if gray else cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 92])
        data, name = data.tobytes(), "/DCTDecode"
    elif picture.encoding == "flate":
        data, name = zlib.compress(np.ascontiguousarray(image).tobytes(), 6), "/FlateDecode"
    else:
        raise ValueError(f"unknown encoding {picture.encoding!r}: jpeg or flate")
    width, height = picture.claimed or (image.shape[1], image.shape[0])
    head = (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace "
            f"{'/DeviceGray' if gray else '/DeviceRGB'} /BitsPerComponent 8 /Filter {name} /Length {len(data)} >>")
    return head.encode() + b"\nstream\n" + data + b"\nendstream"


def _text(value: str) -> str:
    return value.encode("ascii", "replace").decode().replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: Iterable[Page]) -> None:
    """Write `pages` as a PDF (Helvetica text, image XObjects), atomically, one object at a time:
    `pages` may be a generator, so that no more than one page's images are in memory. Pictures
    with the same `shared` name are one object drawn on every page that has them."""
    offsets: dict[int, int] = {}
    shared: dict[str, int] = {}
    kids: list[int] = []
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        def put(body: bytes, number: int = 0) -> int:
            number = number or max([3, *offsets]) + 1
            offsets[number] = out.tell()
            out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
            return number

        out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        for page in pages:               # 1 catalog, 2 page tree and 3 font are written last
            drawing, names = [], []
            for k, picture in enumerate(page.pictures):
                if picture.shared and picture.shared in shared:
                    number = shared[picture.shared]
                else:
                    number = put(_image_object(picture))
                    if picture.shared:
                        shared[picture.shared] = number
                names.append(f"/Im{k} {number} 0 R")
                drawing.append(f"q {picture.w:.2f} 0 0 {picture.h:.2f} {picture.x:.2f} {picture.y:.2f} cm /Im{k} Do Q")
            for x, y, size, text in page.texts:
                drawing.append(f"BT /F1 {size:g} Tf {x:.2f} {y:.2f} Td ({_text(text)}) Tj ET")
            stream = "\n".join(drawing).encode()
            content = put(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
            kids.append(put((f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE[0]:g} {PAGE[1]:g}] /Contents "
                             f"{content} 0 R /Resources << /Font << /F1 3 0 R >> /XObject << {' '.join(names)} >> >> >>"
                             ).encode()))
        put(b"<< /Type /Catalog /Pages 2 0 R >>", 1)
        put(f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode(), 2)
        put(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", 3)
        size = max(offsets) + 1
        start = out.tell()
        out.write(f"xref\n0 {size}\n0000000000 65535 f \n".encode())
        for number in range(1, size):
            out.write(f"{offsets[number]:010d} 00000 n \n".encode())
        out.write(f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{start}\n%%EOF\n".encode())


def text_lines(rng: np.random.Generator, count: int, words: int = 12) -> list[str]:
    return [" ".join(rng.choice(_WORDS, words)).capitalize() + "." for _ in range(count)]


def place(image: np.ndarray, top: float, width: float = PAGE[0] - 2 * MARGIN, max_height: float = 300.0
          ) -> tuple[float, float, float, float]:
    """(x, y, w, h) of `image` drawn under `top` (points from the bottom), fitted in width x max_height."""
    h, w = image.shape[:2]
    scale = min(width / w, max_height / h)
    return MARGIN, top - h * scale, w * scale, h * scale


@dataclass
class KnownFigure:
    """A figure with its truth: which source images it is made of and whether any is forged."""

    image: np.ndarray            # RGB or gray uint8
    forged: bool
    sources: str                 # e.g. the benchmark case_ids joined by '+'


def compound(left: KnownFigure, right: KnownFigure, gap: int = 16) -> KnownFigure:
    """Two figures side by side at one height on white: forged when either is."""
    height = max(left.image.shape[0], right.image.shape[0])
    parts = []
    for figure in (left, right):
        image = figure.image if figure.image.ndim == 3 else cv2.cvtColor(figure.image, cv2.COLOR_GRAY2RGB)
        scale = height / image.shape[0]
        parts.append(cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_CUBIC)
                     if scale != 1 else image)
    white = np.full((height, gap, 3), 255, np.uint8)
    return KnownFigure(np.hstack([parts[0], white, parts[1]]), left.forged or right.forged,
                      f"{left.sources}+{right.sources}")


def write_documents(figures: Sequence[KnownFigure], folder: Path, seed: int = 0, per_document: int = 4
                    ) -> list[dict]:
    """Lay `figures` out over PDFs (`per_document` a document, one or two a page, with text and a
    small logo on every page that a scan must skip once and count as repeated), the k-th
    figure stored as JPEG, RGB Flate or gray Flate in turn; returns the truth rows."""
    rng = np.random.default_rng(seed)
    logo = np.full((32, 32, 3), (30, 90, 160), np.uint8)
    rows = []
    for start in range(0, len(figures), per_document):
        name = f"paper_{start // per_document + 1:03d}.pdf"
        pages, chunk = [], list(figures[start:start + per_document])
        while chunk:
            on_page = chunk[:1 if rng.random() < 0.5 or len(chunk) == 1 else 2]
            chunk = chunk[len(on_page):]
            page = Page(texts=[(MARGIN, PAGE[1] - MARGIN, 14, f"Figure {len(pages) + 1}")])
            page.pictures.append(Picture(logo, PAGE[0] - MARGIN - 24, PAGE[1] - MARGIN - 8, 24, 24, "flate",
                                         shared="logo"))
            top = PAGE[1] - MARGIN - 24
            for figure in on_page:
                k = len(rows)
                image = figure.image
                encoding = "jpeg" if k % 3 == 0 else "flate"
                if k % 3 == 2 and image.ndim == 3:
                    image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
                x, y, w, h = place(image, top, max_height=300 if len(on_page) == 2 else 480)
                page.pictures.append(Picture(image, x, y, w, h, encoding))
                rows.append(dict(document=name, page=len(pages) + 1, image=len(page.pictures),
                                 forged=int(figure.forged), sources=figure.sources, expect="scanned"))
                top = y - 14
                for line in text_lines(rng, 2):
                    page.texts.append((MARGIN, top, 9, line))
                    top -= 12
                top -= 10
            pages.append(page)
        write_pdf(Path(folder) / name, pages)
    return rows


def write_bad_documents(folder: Path, sample: np.ndarray) -> list[dict]:
    """The documents a scan must list as not scanned, and survive: password-protected, corrupt
    (a PDF cut short and overwritten), without images, and one whose image claims 50,000 x
    50,000 pixels (its data a few bytes); `sample` is an image to put in them."""
    import pypdf
    folder = Path(folder)
    text_page = Page(texts=[(MARGIN, PAGE[1] - MARGIN - 12 * i, 10, line)
                            for i, line in enumerate(text_lines(np.random.default_rng(1), 20))])
    write_pdf(folder / "no_images.pdf", [text_page])
    with_image = Page(texts=[(MARGIN, PAGE[1] - MARGIN, 14, "Figure 1")],
                      pictures=[Picture(sample, *place(sample, PAGE[1] - MARGIN - 20))])
    write_pdf(folder / "corrupt.pdf", [with_image])
    data = (folder / "corrupt.pdf").read_bytes()
    (folder / "corrupt.pdf").write_bytes(data[:9] + bytes(np.random.default_rng(2).integers(0, 256, len(data) // 3,
                                                                                              dtype=np.uint8)))
    write_pdf(folder / "locked.pdf", [with_image])
    writer = pypdf.PdfWriter(clone_from=folder / "locked.pdf")
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    with atomic_path(folder / "locked.pdf") as tmp, open(tmp, "wb") as out:
        writer.write(out)
    bomb = Picture(np.zeros((8, 8), np.uint8), MARGIN, 300, 400, 400, "flate", claimed=(50_000, 50_000))
    write_pdf(folder / "image_bomb.pdf", [Page(texts=[(MARGIN, PAGE[1] - MARGIN, 14, "Figure 1")], pictures=[bomb])])
    return [dict(document="no_images.pdf", page="", image="", forged="", sources="", expect="not scanned"),
            dict(document="corrupt.pdf", page="", image="", forged="", sources="", expect="not scanned"),
            dict(document="locked.pdf", page="", image="", forged="", sources="", expect="not scanned"),
            dict(document="image_bomb.pdf", page=1, image=1, forged="", sources="", expect="not scanned")]


def write_truth(path: Path, rows: Sequence[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=TRUTH_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class TruthScore:
    """A scan's figures against the truth of the test documents, per figure."""

    forged: int = 0
    found: int = 0               # forged figures flagged
    authentic: int = 0
    false_positives: int = 0     # authentic figures flagged
    missing: list[str] = field(default_factory=list)        # figures or bad documents the scan did not answer for
    bad_listed: int = 0          # bad documents or images in the not-scanned list, as expected
    bad: int = 0

    def summary(self) -> str:
        recall = self.found / self.forged if self.forged else float("nan")
        fp = self.false_positives / self.authentic if self.authentic else float("nan")
        missing = (f"; {len(self.missing)} expected but not answered for: {', '.join(self.missing[:5])}"
                   if self.missing else "")
        return (f"per figure: recall {self.found}/{self.forged} forged = {recall:.2f}, false positives "
                f"{self.false_positives}/{self.authentic} authentic = {fp:.2f}; bad inputs listed as not scanned "
                f"{self.bad_listed}/{self.bad}{missing}")


def score_against_truth(rows: Sequence[dict], truth: Path) -> TruthScore:
    """Compare a report's figure rows (lib.scan.report.FIGURES) with a truth file written by
    write_truth; documents are matched by their resolved paths (the truth's relative to its folder)."""
    answers = {(str(Path(r["document"]).resolve()), str(r["page"]), str(r["image"])): r for r in rows}
    score = TruthScore()
    with open(truth, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            document = str((Path(truth).parent / row["document"]).resolve())
            key = (document, row["page"], row["image"])
            if row["expect"] == "scanned":
                answer = answers.get(key)
                if answer is None or answer["status"] != "scanned":
                    score.missing.append(f"{row['document']} p{row['page']} i{row['image']}")
                    continue
                forged, flagged = row["forged"] == "1", answer["flagged"] == 1 or answer["flagged"] == "1"
                score.forged += forged
                score.found += forged and flagged
                score.authentic += not forged
                score.false_positives += flagged and not forged
            else:                                # "not scanned": a bad document, or an image of one
                score.bad += 1
                answer = answers.get(key)
                if answer is not None and str(answer["status"]).startswith("not scanned"):
                    score.bad_listed += 1
                else:
                    score.missing.append(f"{row['document']} (not scanned)")
    return score


def benchmark_figures(benchmark: Path, count: int, seed: int = 0, compound_every: int = 5) -> list[KnownFigure]:
    """`count` figures of the benchmark's test split (bin/make_benchmark.py; drawn with `seed`,
    its share of forgeries kept), every `compound_every`-th one a compound of two benchmark figures."""
    import pandas as pd
    from ..imageio import load_image
    meta_file = Path(benchmark) / "meta.csv"
    if not meta_file.is_file():
        raise ProjectError(f"{meta_file}: no benchmark here; make it first: python bin/make_benchmark.py "
                           f"--output-dir {benchmark}")
    meta = pd.read_csv(meta_file, dtype={"case_id": str})
    test = meta[meta["split"] == "test"]
    rng = np.random.default_rng(seed)
    needed = count + count // max(1, compound_every)
    rows = test.iloc[rng.permutation(len(test))[:needed]]
    figures = [KnownFigure(_as_stored(load_image(Path(benchmark) / r.image)), r.label == "forged", str(r.case_id))
               for r in rows.itertuples()]
    out, k = [], 0
    while len(out) < count and k < len(figures):
        if compound_every and (len(out) + 1) % compound_every == 0 and k + 1 < len(figures):
            out.append(compound(figures[k], figures[k + 1]))
            k += 2
        else:
            out.append(figures[k])
            k += 1
    return out


def _as_stored(rgb: np.ndarray) -> np.ndarray:
    """A figure whose three channels are equal as the gray image it is."""
    return rgb[..., 0].copy() if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() else rgb


def write_large_pdf(path: Path, megabytes: int, side: int = 3000, seed: int = 0) -> int:
    """A PDF of about `megabytes` MB for measuring memory: one `side` x `side` RGB image a page,
    textured noise that Flate cannot shrink (each image about side^2 x 3 bytes). Returns its pages."""
    per_image = side * side * 3
    pages = max(1, round(megabytes * 1e6 / per_image))

    def made() -> Iterator[Page]:
        base = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
        for k in range(pages):
            image = np.roll(base, 97 * k, axis=1)       # each page its own image, made when written
            yield Page(texts=[(MARGIN, PAGE[1] - MARGIN, 14, f"Plate {k + 1}")],
                       pictures=[Picture(image, *place(image, PAGE[1] - MARGIN - 20), encoding="flate")])

    write_pdf(Path(path), made())
    return pages
