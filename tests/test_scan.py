"""Scanning documents (bin/scan_figures.py, lib/scan/): figures out of generated PDFs as stored,
the bad documents listed and survived, a report whose every finding has its picture and link and
no external URL, a run that resumes from the cache after an interrupt, and a Dask cluster of two
workers that agrees with the single-process run."""
from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib.data.demo import make_case
from lib.scan.pdf import DocumentError, extract_pdf
from lib.scan.testdocs import (MARGIN, Page, Picture, KnownFigure, compound, place, score_against_truth,
                               write_bad_documents, write_documents, write_pdf, write_truth)
from tests.helpers import _script_module, run_script, write_png


def _figure(index: int, forged: bool) -> KnownFigure:
    case = make_case(3, 0, index, forged=forged, min_size=192, max_size=320)
    return KnownFigure(case.forged if forged else case.authentic, forged, str(index))


@pytest.fixture(scope="module")
def papers(tmp_path_factory) -> Path:
    """Two papers of demo figures (one compound), a loose image, the four bad documents, truth.csv."""
    folder = tmp_path_factory.mktemp("papers")
    figures = [_figure(0, True), _figure(1, False), compound(_figure(2, False), _figure(3, True)), _figure(4, False)]
    rows = write_documents(figures, folder, seed=1, per_document=2)
    write_png(folder / "loose" / "fig.png", _figure(5, True).image)
    rows.append(dict(document="loose/fig.png", page=0, image=1, forged=1, sources="5", expect="scanned"))
    rows += write_bad_documents(folder, figures[1].image)
    write_truth(folder / "truth.csv", rows)
    return folder


def test_images_come_out_as_stored_with_their_pages_and_indices(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (70, 100), dtype=np.uint8)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (7, 7), 2)
    logo = np.full((20, 20, 3), 90, np.uint8)
    pages = [Page(texts=[(MARGIN, 700, 12, "Figure 1 (with parentheses) and a backslash \\")],
                  pictures=[Picture(logo, 500, 780, 20, 20, "flate", shared="logo"),
                            Picture(photo, *place(photo, 700), "jpeg"), Picture(rgb, *place(rgb, 400), "flate")]),
             Page(pictures=[Picture(logo, 500, 780, 20, 20, "flate", shared="logo"),
                            Picture(gray, *place(gray, 700), "flate")])]
    write_pdf(tmp_path / "doc.pdf", pages)
    found = extract_pdf(tmp_path / "doc.pdf", tmp_path / "out")
    assert found.pages == 2 and found.tiny == 1 and found.repeated == 1 and not found.unreadable
    assert [(f.page, f.index, f.height, f.width) for f in found.figures] == [(1, 2, 120, 160), (1, 3, 90, 130),
                                                                             (2, 2, 70, 100)]
    jpeg, flate, flate_gray = (f.path for f in found.figures)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert jpeg.suffix == ".jpg" and jpeg.read_bytes() == encoded.tobytes()     # the JPEG's own bytes
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(flate)), cv2.COLOR_BGR2RGB), rgb)   # lossless, RGB order
    stored = cv2.imread(str(flate_gray), cv2.IMREAD_UNCHANGED)
    assert stored.ndim == 2 and np.array_equal(stored, gray)


def test_bad_documents_are_one_line_each(tmp_path):
    write_bad_documents(tmp_path, np.full((100, 100, 3), 128, np.uint8))
    for name, words in (("corrupt.pdf", "not a readable PDF"), ("locked.pdf", "password-protected")):
        with pytest.raises(DocumentError, match=words) as caught:
            extract_pdf(tmp_path / name, tmp_path / "out")
        assert str(caught.value).startswith(str(tmp_path / name)) and "\n" not in str(caught.value)
    assert extract_pdf(tmp_path / "no_images.pdf", tmp_path / "out").figures == []
    bomb = extract_pdf(tmp_path / "image_bomb.pdf", tmp_path / "out")
    assert not bomb.figures and len(bomb.unreadable) == 1
    reason = bomb.unreadable[0].reason
    assert reason.startswith("page 1, image 1: 50000 x 50000 pixels") and "pixel budget" in reason


def test_a_pdf_locked_only_for_editing_is_scanned(tmp_path):
    import pypdf
    image = np.full((80, 80, 3), 200, np.uint8)
    write_pdf(tmp_path / "plain.pdf", [Page(pictures=[Picture(image, 100, 100, 80, 80, "flate")])])
    writer = pypdf.PdfWriter(clone_from=tmp_path / "plain.pdf")
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")   # publishers' no-copy PDFs
    with open(tmp_path / "owner.pdf", "wb") as out:
        writer.write(out)
    assert [f.width for f in extract_pdf(tmp_path / "owner.pdf", tmp_path / "out").figures] == [80]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _of(rows: list[dict], *names: str) -> list[dict]:
    """The rows of the documents called `names`."""
    return [r for r in rows if Path(r["document"]).name in names]


def _scan(papers: Path, out: Path, *extra: str):
    """scan_figures.py as a user runs it: no models folder named (the matcher and its committed verifier)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FORGERY_MODELS_DIR", raising=False)
        return run_script("scan_figures.py", str(papers), "--output-dir", str(out), "--no-progress", *extra,
                          cwd=out)


@pytest.fixture(scope="module")
def report(papers, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = _scan(papers, out, "--jobs", "1", "--truth", str(papers / "truth.csv"))
    assert result.returncode == 0, result.stderr
    assert "recall" in result.stderr and (out / "cache").is_dir()
    return out


def test_report_every_finding_has_its_picture_and_link_and_nothing_external(report, papers):
    findings = _rows(report / "findings.csv")
    assert findings, "the demo's forged figures give findings"
    for row in findings:
        assert (report / row["picture"]).is_file() and (report / row["full_size"]).is_file()
        assert row["operation"] and int(row["source_x1"]) > int(row["source_x0"])
    pages = [report / "index.html", *sorted((report / "documents").glob("*.html"))]
    assert len(pages) == 1 + 4           # two papers, the loose image, the bomb
    linked = set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and not re.search(r"(src|href)=\"(https?:)?//", text)
        for target in re.findall(r"(?:src|href)=\"([^\"#]+)\"", text):
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"
            linked.add((page.parent / target).resolve())
    for row in findings:                 # every finding's picture and full-size image shown and linked
        assert (report / row["picture"]).resolve() in linked and (report / row["full_size"]).resolve() in linked
    assert (report / "index.html").stat().st_size < 1_000_000
    index = (report / "index.html").read_text(encoding="utf-8")
    for words in ("locked.pdf: password-protected", "corrupt.pdf: not a readable PDF", "no_images.pdf: no raster image",
                  "image_bomb.pdf: page 1, image 1: 50000 x 50000 pixels"):
        assert words in index
    score = score_against_truth(_rows(report / "figures.csv"), papers / "truth.csv")
    assert not score.missing and score.bad_listed == score.bad == 4
    assert score.forged == 3 and score.authentic == 2


def test_an_interrupted_scan_leaves_a_report_and_resumes_from_the_cache(papers, report, tmp_path, monkeypatch):
    import lib.inference.fusion as fusion
    import lib.scan.engine as engine
    main = _script_module("scan_figures.py").main
    monkeypatch.delenv("FORGERY_MODELS_DIR", raising=False)
    scan_all = engine.scan_all

    def interrupted(*args, **kwargs):
        iterator = scan_all(*args, **kwargs)
        yield next(iterator)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "scan_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main([str(papers / "paper_001.pdf"), str(papers / "paper_002.pdf"), "--output-dir", str(tmp_path),
              "--jobs", "1", "--no-progress"])
    assert "Interrupted after 1 of 2 documents" in (tmp_path / "index.html").read_text(encoding="utf-8")
    first = [r for r in _rows(tmp_path / "figures.csv") if r["status"] == "scanned"]
    assert {Path(r["document"]).name for r in first} == {"paper_001.pdf"}
    monkeypatch.setattr(engine, "scan_all", scan_all)
    matched = []
    find = fusion.find_candidates
    monkeypatch.setattr(fusion, "find_candidates", lambda image, config: matched.append(1) or find(image, config))
    main([str(papers / "paper_001.pdf"), str(papers / "paper_002.pdf"), "--output-dir", str(tmp_path),
          "--jobs", "1", "--no-progress"])
    both = [r for r in _rows(tmp_path / "figures.csv") if r["status"] == "scanned"]
    assert len(matched) == len(both) - len(first) > 0         # the interrupted run's figures: from the cache
    assert _rows(tmp_path / "findings.csv") == _of(_rows(report / "findings.csv"), "paper_001.pdf", "paper_002.pdf")
    assert _rows(tmp_path / "figures.csv") == _of(_rows(report / "figures.csv"), "paper_001.pdf", "paper_002.pdf")


def test_what_a_worker_gets_and_returns_survives_pickling(papers, report):
    """What a pool's or a Dask cluster's processes receive and send back (the cluster test below
    runs its workers in threads: a second interpreter importing torch costs the suite seconds)."""
    import pickle
    from lib.options import PostConfig, PredictorOptions
    from lib.scan.scan import ScanSettings, scan_document
    settings = ScanSettings(PredictorOptions(), PostConfig(fusion="matcher"), report)
    assert pickle.loads(pickle.dumps(settings)) == settings
    flagged = Path(_rows(report / "findings.csv")[0]["document"])
    result = scan_document(flagged, settings)            # cached by the report's run
    again = pickle.loads(pickle.dumps(result))
    assert again.flagged and [f.picture for f in again.figures] == [f.picture for f in result.figures]


@pytest.mark.slow
def test_a_local_dask_cluster_of_two_workers_agrees_with_one_process(papers, report, tmp_path):
    import cv2
    import torch
    distributed = pytest.importorskip("distributed")
    threads = cv2.getNumThreads(), torch.get_num_threads()     # a worker thread sets both to 1: restored
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        names = ("paper_001.pdf", "image_bomb.pdf", "locked.pdf", "fig.png")    # figures, and errors sent back
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("FORGERY_MODELS_DIR", raising=False)
            result = run_script("scan_figures.py", *(str(p) for p in papers.rglob("*") if p.name in names),
                                "--output-dir", str(tmp_path), "--no-progress", "--no-cache", "--cluster",
                                cluster.scheduler_address, cwd=tmp_path)
    cv2.setNumThreads(threads[0])
    torch.set_num_threads(threads[1])
    assert result.returncode == 0, result.stderr
    assert "Dask cluster" in result.stderr and "2 workers" in result.stderr
    assert _rows(tmp_path / "findings.csv") == _of(_rows(report / "findings.csv"), *names)
    assert _rows(tmp_path / "figures.csv") == _of(_rows(report / "figures.csv"), *names)


def test_the_index_of_thousands_of_documents_stays_light(tmp_path, monkeypatch):
    import lib.scan.report as report
    from lib.scan.scan import DocumentResult, Finding, FigureResult
    monkeypatch.setattr(report, "INDEX_ROWS", 40)             # pages of 40 rows: what a page of 1000 does, smaller
    writer = report.ReportWriter(tmp_path)
    for k in range(85):
        figures = [FigureResult(1, i, 300, 400, 0.1 * i) for i in range(1, 4)]
        if k % 20 == 0:
            figures[0] = FigureResult(1, 1, 300, 400, 0.99, [Finding(0.99, (1, 2, 30, 40), (100, 2, 129, 40), "moved")],
                                      b"jpeg", b"thumb", b"png")
        writer.add(DocumentResult(Path(f"archive/a_long_folder_name/paper_{k:05d}.pdf"), pages=3, figures=figures))
    index = writer.finish("matcher")
    pages = [index, tmp_path / "index-2.html", tmp_path / "index-3.html"]
    assert [p.exists() for p in pages] == [True, True, True] and not (tmp_path / "index-4.html").exists()
    text = index.read_text(encoding="utf-8")
    assert text.count("<tr>") == 40 + 1 and 'href="index-3.html"' in text
    assert "paper_00000.pdf" in text.split("<tr>")[2]          # the flagged first
    row = (len(text) - len(pages[2].read_text(encoding="utf-8"))) / (40 - 5)    # bytes a row: 40 rows less 5
    assert 1000 * row + len(text) < 1_000_000                  # a page of a thousand rows under 1 MB


def test_every_entry_of_a_folder_is_a_document_or_a_line(tmp_path):
    from lib.errors import ProjectError
    from lib.scan.engine import find_documents
    write_pdf(tmp_path / "a.pdf", [Page()])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / os.fsdecode(b"caf\xe9.pdf")).write_bytes((tmp_path / "a.pdf").read_bytes())
    (tmp_path / "link.pdf").symlink_to(tmp_path / "a.pdf")
    (tmp_path / "dangling.pdf").symlink_to(tmp_path / "nowhere.pdf")
    (tmp_path / "folder.pdf").mkdir()
    write_png(tmp_path / "fig.png", np.full((80, 80, 3), 9, np.uint8))
    (tmp_path / "notes.txt").write_text("not a document")
    documents, skipped = find_documents([tmp_path, tmp_path / "a.pdf", tmp_path / "notes.txt"])
    assert sorted(p.name for p in documents) == sorted(["a.pdf", "fig.png", os.fsdecode(b"caf\xe9.pdf")])
    assert [line.split(": ", 1)[1] for line in sorted(skipped)] == [
        "a dangling link, skipped", "a folder, not a file, skipped",
        f"the same file as {tmp_path / 'a.pdf'}; scanned once",
        "neither a PDF nor an image file (.png, .jpg, .jpeg, .tif, .tiff, .bmp); not scanned"]
    with pytest.raises(ProjectError, match="no such file or folder"):
        find_documents([tmp_path / "missing.pdf"])


def test_a_cache_entry_from_before_transforms_were_kept_is_matched_again_and_replaced(papers, report, tmp_path):
    """The matcher's cache entries written before MatchOutput kept each event's transform: the
    scan needs the transform to tell source from copy, so it matches that figure again."""
    flagged = Path(_rows(report / "findings.csv")[0]["document"])
    expected = _of(_rows(report / "findings.csv"), flagged.name)
    shutil.copytree(report / "cache", tmp_path / "a" / "cache")  # the report's entries, then made old
    entries = sorted((tmp_path / "a" / "cache").rglob("*.npz"))
    for entry in entries:                                   # as an older version wrote them
        with np.load(entry) as data:
            arrays = {k: data[k] for k in data.files if k != "matrices"}
        np.savez_compressed(entry, **arrays)
    again = _scan(flagged, tmp_path / "a")
    assert again.returncode == 0, again.stderr
    assert _rows(tmp_path / "a" / "findings.csv") == expected
    replaced = 0
    for entry in entries:
        with np.load(entry) as data:
            replaced += "matrices" in data.files
    figures = [r for r in _of(_rows(report / "figures.csv"), flagged.name) if r["status"] == "scanned"]
    assert replaced == len(figures)                         # the scanned document's figures, and no others
