#!/usr/bin/env python
"""Write test documents with known truth from the benchmark's test split, to scan and score.

    python bin/make_benchmark.py --output-dir bench          # once, if bench/ is not there
    python bin/make_test_pdfs.py --benchmark-dir bench --output-dir test_pdfs
    python bin/scan_figures.py test_pdfs --output-dir test_pdfs_report --truth test_pdfs/truth.csv

Figures placed on A4 pages with text, one or two a page, four a paper (--per-document); every fifth figure compound
(two benchmark figures side by side); stored in turn as JPEG, RGB Flate and gray Flate; a small logo
drawn on every page (a scan counts it as small and repeated). The benchmark's share of forgeries is
kept (about half). Two figures are also written as loose PNG files in loose/, and four bad
documents beside them: password-protected, corrupt, without images, and one whose image claims
50,000 x 50,000 pixels. truth.csv says, per figure, whether it is forged and which benchmark cases
it is made of, and what a scan must say of each bad document.

--large-mb N writes large.pdf instead: about N MB of 3000 x 3000 images, for measuring a scan's
memory (not a test input: a few hundred MB on disk).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--benchmark-dir", type=Path, default=Path("bench"),
                        help="the benchmark (bin/make_benchmark.py; default: bench)")
    parser.add_argument("--output-dir", type=Path, required=True, help="folder to write the documents to")
    parser.add_argument("--figures", type=int, default=120, help="figures in the PDFs (default: 120, about 30 papers)")
    parser.add_argument("--per-document", type=int, default=4, metavar="N", help="figures a paper (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="which benchmark figures, and the text (default: 0)")
    parser.add_argument("--large-mb", type=int, default=0, metavar="N",
                        help="write only large.pdf, about N MB, for measuring memory")
    args = parser.parse_args(argv)
    from lib.errors import ProjectError
    from lib.imageio import write_png
    from lib.scan.testdocs import (TRUTH_FILE, benchmark_figures, write_bad_documents, write_documents,
                                   write_large_pdf, write_truth)
    if args.large_mb:
        pages = write_large_pdf(args.output_dir / "large.pdf", args.large_mb)
        size = (args.output_dir / "large.pdf").stat().st_size
        print(f"{args.output_dir / 'large.pdf'}: {pages} pages, {size / 1e6:.0f} MB")
        return 0
    if args.figures < 1 or args.per_document < 1:
        raise ProjectError(f"--figures {args.figures}, --per-document {args.per_document}: each must be at least 1")
    figures = benchmark_figures(args.benchmark_dir, args.figures + 2, args.seed)
    loose, figures = figures[-2:], figures[:-2]
    rows = write_documents(figures, args.output_dir, args.seed, args.per_document)
    for k, figure in enumerate(loose, start=1):
        name = f"loose/figure_{k}.png"
        write_png(args.output_dir / name, figure.image)
        rows.append(dict(document=name, page=0, image=1, forged=int(figure.forged), sources=figure.sources,
                         expect="scanned"))
    rows += write_bad_documents(args.output_dir, figures[0].image)
    write_truth(args.output_dir / TRUTH_FILE, rows)
    scanned = [r for r in rows if r["expect"] == "scanned"]
    forged = sum(r["forged"] for r in scanned)
    papers = len({r["document"] for r in scanned if r["document"].endswith(".pdf")})
    print(f"{args.output_dir}: {papers} papers and 2 loose figures ({len(scanned)} figures, {forged} forged, "
          f"{sum('+' in r['sources'] for r in scanned)} compound) and 4 bad documents; truth: "
          f"{args.output_dir / TRUTH_FILE}")
    return 0


if __name__ == "__main__":
    run(main)
