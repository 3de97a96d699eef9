"""The scan's report: static HTML that opens from disk (no server, no network, no JavaScript) and
stays light with thousands of documents, and the same findings as CSV.

    REPORT/index.html              documents by their highest probability, what was not scanned
    REPORT/documents/<doc>.html    one page a document: each flagged figure outlined, the rest listed
    REPORT/pictures/<doc>/...      the outlined pictures (JPEG, 720 px) and their thumbnails (160 px)
    REPORT/figures/<doc>/...       each flagged figure's full-size image, as extracted
    REPORT/findings.csv            one row a finding: document, page, image, probability, boxes, transform
    REPORT/figures.csv             one row a figure or a part not scanned, with its status

Pictures are written as each document's result arrives and only a line of numbers per document
is kept, so memory does not grow with the pictures of a large scan.
"""
from __future__ import annotations

import csv
import hashlib
import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..fileio import atomic_path, atomic_write_bytes, atomic_write_text
from ..imageio import shown
from .scan import COPY_RGB, PICTURE_SIDE, REGION_RGB, SOURCE_RGB, DocumentResult, FigureResult

FINDINGS = ("document", "page", "image", "probability", "source_x0", "source_y0", "source_x1", "source_y1",
            "copy_x0", "copy_y0", "copy_x1", "copy_y1", "operation", "picture", "full_size")
FIGURES = ("document", "page", "image", "width", "height", "probability", "flagged", "status")
INDEX_ROWS = 1000               # documents an index page lists (about 0.5 KB each); more: index-2.html, ...
LISTED = 1000                    # lines of the not-scanned list on the index (all of them: figures.csv)

_STYLE = f"""
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.5em; margin-bottom: .2em; }} h2 {{ font-size: 1.15em; margin-top: 2em; }}
.meta {{ color: #555; }} table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: middle; }}
th {{ background: #f3f3f3; }} td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.p-high {{ color: #b00; font-weight: 600; }} .p-mid {{ color: #a60; }} .p-low {{ color: #666; }}
.src {{ color: rgb{SOURCE_RGB}; font-weight: 600; }} .copy {{ color: rgb{COPY_RGB}; font-weight: 600; }}
.region {{ color: rgb{REGION_RGB}; font-weight: 600; }}
.finding {{ display: flex; flex-wrap: wrap; gap: 1.2em; margin: 1.2em 0; padding-bottom: 1.2em;
            border-bottom: 1px solid #ddd; }}
.finding img {{ max-width: 100%; height: auto; border: 1px solid #ccc; }} .finding > div {{ flex: 1 1 280px; }}
.skipped li {{ color: #555; }} a {{ color: #0645ad; }}
"""


def document_id(path: Path) -> str:
    """A file name for a document's page and folders: its name, made safe, and a hash of its
    path (two papers both called main.pdf stay apart)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", shown(Path(path).name))[:60].strip("._") or "document"
    return f"{stem}-{hashlib.sha1(shown(Path(path).resolve()).encode()).hexdigest()[:8]}"


def figure_name(figure: FigureResult) -> str:
    return f"p{figure.page}-i{figure.index}" if figure.page else "figure"


def figure_files(doc: str, figure: FigureResult) -> tuple[str, str, str]:
    """(picture, thumbnail, full-size image) of a flagged figure, relative to the report's folder."""
    stem = figure_name(figure)
    return f"pictures/{doc}/{stem}.jpg", f"pictures/{doc}/{stem}-thumb.jpg", f"figures/{doc}/{stem}{figure.suffix}"


def where(page: int, index: int) -> str:
    return f"page {page}, image {index}" if page else "the image"


def _p(value: float) -> str:
    kind = "p-high" if value >= 0.8 else "p-mid" if value >= 0.5 else "p-low"
    return f'<span class="{kind}">{value:.3f}</span>'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
            f'<body>\n{body}\n</body></html>\n')


@dataclass
class DocumentLine:
    """What the index keeps of a document."""

    document: str
    page: str                    # documents/<id>.html
    pages: int
    figures: int
    flagged: int
    probability: float
    thumbnail: str               # pictures/<id>/<name>-thumb.jpg of its top finding, or ""
    error: str
    seconds: float


@dataclass
class ReportWriter:
    """Writes a report into `folder` as documents' results arrive (add), then the index and the
    CSVs (finish)."""

    folder: Path
    lines: list[DocumentLine] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tiny: int = 0
    repeated: int = 0

    @property
    def not_scanned(self) -> list[str]:
        """One line per document, image or entry not scanned."""
        return [d.error for d in self.lines if d.error] + self.skipped

    def add(self, result: DocumentResult) -> None:
        doc = document_id(result.document)
        name = shown(result.document)
        self.tiny += result.tiny
        self.repeated += result.repeated
        if result.error:
            self.lines.append(DocumentLine(name, "", 0, 0, 0, 0.0, "", result.error, result.seconds))
            self.figures.append(dict(document=name, page="", image="", width="", height="", probability="",
                                     flagged="", status=f"not scanned: {result.error}"))
            return
        thumbnail = ""
        for figure in sorted(result.flagged, key=lambda f: -f.probability):
            picture, thumb, full = figure_files(doc, figure)
            atomic_write_bytes(self.folder / picture, figure.picture)
            atomic_write_bytes(self.folder / thumb, figure.thumbnail)
            atomic_write_bytes(self.folder / full, figure.original)
            thumbnail = thumbnail or thumb
            for finding in figure.findings:
                copy = finding.copy_box or ("", "", "", "")
                self.findings.append(dict(zip(FINDINGS, (name, figure.page, figure.index, f"{finding.probability:.4f}",
                                                         *finding.source_box, *copy,
                                                         finding.operation or "region (segmentation networks)",
                                                         picture, full))))
        for figure in result.figures:
            self.figures.append(dict(document=name, page=figure.page, image=figure.index, width=figure.width,
                                     height=figure.height, probability=f"{figure.probability:.4f}",
                                     flagged=int(figure.flagged), status="scanned"))
        self.skipped += result.not_scanned()
        for part in result.unreadable:
            self.figures.append(dict(document=name, page=part.page, image=part.index or "", width="", height="",
                                     probability="", flagged="", status=f"not scanned: {part.reason}"))
        page = f"documents/{doc}.html"
        atomic_write_text(self.folder / page, _document_page(result, doc))
        self.lines.append(DocumentLine(name, page, result.pages, len(result.figures), len(result.flagged),
                                       result.probability, thumbnail, "", result.seconds))

    def finish(self, described: str, note: str = "") -> Path:
        """Write index.html (`note`: a line under its summary), findings.csv and figures.csv, rows in
        document order; returns the index's path."""
        order = lambda row: (row["document"], str(row["page"]).zfill(6), str(row["image"]).zfill(6))  # noqa: E731
        self.findings.sort(key=order)
        self.figures.sort(key=order)
        _write_csv(self.folder / "findings.csv", FINDINGS, self.findings)
        _write_csv(self.folder / "figures.csv", FIGURES, self.figures)
        pages = _index_pages(self, described, note)
        for number, text in enumerate(pages, start=1):
            atomic_write_text(self.folder / _index_name(number), text)
        for stale in self.folder.glob("index-*.html"):         # a larger earlier scan's further pages
            if stale.name not in {_index_name(n) for n in range(1, len(pages) + 1)}:
                stale.unlink()
        return self.folder / _index_name(1)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _document_page(result: DocumentResult, doc: str) -> str:
    name = shown(result.document)
    flagged = sorted(result.flagged, key=lambda f: -f.probability)
    head = (f'<p><a href="../index.html">&larr; all documents</a></p><h1>{html.escape(Path(name).name)}</h1>'
            f'<p class="meta">{html.escape(name)}: {result.pages or "no"} page(s), {len(result.figures)} figure(s) '
            f'scanned, {len(flagged)} flagged; {result.tiny} small image(s) and {result.repeated} repeat(s) left '
            f'out; scanned in {result.seconds:.1f} s. Each flagged figure: the <span class="src">source</span> '
            f'outlined in blue, the <span class="copy">copy</span> in vermillion, an arrow from one to the other'
            + (', a <span class="region">region</span> the segmentation networks found in reddish purple'
               if any(f.copy_box is None for g in flagged for f in g.findings) else "") + ".</p>")
    parts = [head]
    for figure in flagged:
        stem = figure_name(figure)
        picture, _, full = figure_files(doc, figure)
        scale = PICTURE_SIDE / max(figure.height, figure.width, 1)
        items = []
        for finding in figure.findings:
            if finding.copy_box is None:
                items.append(f'<li>a <span class="region">region</span> at {_box(finding.source_box)} found by '
                             f'the segmentation networks (no transform), probability {_p(finding.probability)}</li>')
            else:
                items.append(f'<li><span class="src">source</span> {_box(finding.source_box)} &rarr; '
                             f'<span class="copy">copy</span> {_box(finding.copy_box)}: '
                             f'<b>{html.escape(finding.operation)}</b>, probability {_p(finding.probability)}</li>')
        alt = f"{where(figure.page, figure.index)}: source outlined in blue, copy in vermillion"
        parts.append(
            f'<div class="finding" id="{stem}"><a href="../{full}">'
            f'<img src="../{picture}" width="{round(figure.width * scale)}" '
            f'height="{round(figure.height * scale)}" alt="{html.escape(alt)}" loading="lazy"></a>'
            f'<div><h2>{where(figure.page, figure.index).capitalize()}</h2>'
            f'<p>{figure.width} x {figure.height} pixels; probability {_p(figure.probability)}</p>'
            f'<ol>{"".join(items)}</ol><p><a href="../{full}">the full-size image</a>'
            f'</p></div></div>')
    rest = [f for f in result.figures if not f.flagged]
    if rest:
        rows = "".join(f'<tr><td>{f.page or ""}</td><td>{f.index}</td><td class="num">{f.width} x {f.height}</td>'
                       f'<td class="num">{_p(f.probability)}</td></tr>' for f in rest)
        parts.append(f'<h2>Figures not flagged ({len(rest)})</h2><table><tr><th>page</th><th>image</th>'
                     f'<th class="num">pixels</th><th class="num">probability</th></tr>{rows}</table>')
    if result.unreadable:
        items = "".join(f"<li>{html.escape(u.reason)}</li>" for u in result.unreadable)
        parts.append(f'<h2>Not scanned ({len(result.unreadable)})</h2><ul class="skipped">{items}</ul>')
    return _page(f"{Path(name).name}: scan", "\n".join(parts))


def _box(box: tuple[int, int, int, int]) -> str:
    x0, y0, x1, y1 = box
    return f"({x0}, {y0})&ndash;({x1}, {y1})"


def _index_name(number: int) -> str:
    return "index.html" if number == 1 else f"index-{number}.html"


def _index_pages(report: ReportWriter, described: str, note: str) -> list[str]:
    """The index, INDEX_ROWS documents a page (the highest probability first), each page with the
    summary and links to the others; the not-scanned list on the first."""
    scanned = sorted([d for d in report.lines if not d.error], key=lambda d: (-d.probability, d.document))
    failed = [d for d in report.lines if d.error]
    figures = sum(d.figures for d in scanned)
    flagged = sum(d.flagged for d in scanned)
    head = [f"<h1>Duplicated regions: {len(report.lines)} documents scanned</h1>",
            f'<p class="meta">{time.strftime("%Y-%m-%d %H:%M")}: {figures} figure(s) in {len(scanned)} document(s), '
            f'{flagged} flagged in {sum(d.flagged > 0 for d in scanned)} document(s); not scanned: {len(failed)} '
            f'document(s) and {len(report.skipped)} image(s) or entries; {report.tiny} small image(s) (under 64 '
            f'pixels a side) and {report.repeated} repeat(s) left out. Detector: {html.escape(described)}. A '
            f'probability is the detector\'s estimate that a region of the figure was copied from another part '
            f'of it.</p>']
    if note:
        head.append(f"<p><b>{html.escape(note)}</b></p>")
    chunks = [scanned[i:i + INDEX_ROWS] for i in range(0, len(scanned), INDEX_ROWS)] or [[]]
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        first = (number - 1) * INDEX_ROWS
        nav = ""
        if len(chunks) > 1:
            links = " ".join(f"<b>{n}</b>" if n == number else f'<a href="{_index_name(n)}">{n}</a>'
                             for n in range(1, len(chunks) + 1))
            nav = f"<p>Documents {first + 1}&ndash;{first + len(chunk)} of {len(scanned)}; pages: {links}</p>"
        rows = []
        for rank, d in enumerate(chunk, start=first + 1):
            thumb = (f'<a href="{quote(d.page)}"><img src="{quote(d.thumbnail)}" height="60" alt="top finding" '
                     f'loading="lazy"></a>' if d.thumbnail else "")
            rows.append(f'<tr><td class="num">{rank}</td><td><a href="{quote(d.page)}">{html.escape(d.document)}</a>'
                        f'</td><td class="num">{d.pages or ""}</td><td class="num">{d.figures}</td><td class="num">'
                        f'{d.flagged}</td><td class="num">{_p(d.probability)}</td><td>{thumb}</td></tr>')
        parts = [*head, nav, '<table><tr><th class="num">#</th><th>document</th><th class="num">pages</th>'
                 '<th class="num">figures</th><th class="num">flagged</th><th class="num">highest probability</th>'
                 '<th>top finding</th></tr>' + "".join(rows) + "</table>", nav,
                 "<p>The same as CSV: <a href=\"findings.csv\">findings.csv</a> (one row a finding) and "
                 "<a href=\"figures.csv\">figures.csv</a> (one row a figure).</p>"]
        if number == 1:
            lines = report.not_scanned
            items = "".join(f"<li>{html.escape(line)}</li>" for line in lines[:LISTED])
            more = f"<p>And {len(lines) - LISTED} more: figures.csv lists them all.</p>" if len(lines) > LISTED else ""
            parts += [f"<h2>Not scanned ({len(lines)})</h2>",
                      f'<ul class="skipped">{items}</ul>{more}' if lines else "<p>None.</p>"]
        pages.append(_page("Duplicated regions: scan report", "\n".join(parts)))
    return pages
