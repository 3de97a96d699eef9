#!/usr/bin/env python
"""Screen documents for duplicated regions: PDFs, images and folders of them in, an HTML report out.

    python bin/scan_figures.py papers/ --output-dir report                # every PDF and image under papers/
    python bin/scan_figures.py a.pdf b.pdf fig3.png --output-dir report --jobs 4
    python bin/scan_figures.py papers/ --output-dir report --cluster tcp://scheduler:8786   # a Dask cluster
    python bin/scan_figures.py papers/ --output-dir report --models-dir models   # the trained networks as well

Every raster image a PDF embeds is scanned at its stored resolution (images under 64 pixels a side
are counted, not scanned); an image file is a document of one figure. By default the copy-move
matcher runs with its committed verifier (no GPU, no trained network); with --models-dir, what
was validated for the models there (--fusion auto, as script_5_predict.py). Results are cached by
each figure's content (under <models-dir>/cache, or <output-dir>/cache without one), so the same
command after an interrupt goes on where it stopped. A document or image that cannot be read is a
line in the report's "not scanned" list, never the end of the run.

REPORT/index.html opens from disk in any browser (no server, no network, no JavaScript);
REPORT/findings.csv and REPORT/figures.csv hold the same. See docs/scanning.md.
"""
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError, counted  # noqa: E402
from lib.flags import from_args, given_dests  # noqa: E402
from lib.options import AUTO, PostConfig, PredictorOptions, add_inference_args, add_shared, usable_cpus  # noqa: E402
from lib.paths import ENV_MODELS_DIR, add_path_args, resolve_paths  # noqa: E402

log = logging.getLogger("scan_figures")
RESUME_HINT = "the same command goes on where it stopped (each figure's result is cached, unless --no-cache)"


def main(argv: list[str] | None = None) -> int:
    from lib.scan import LOCAL
    parser = make_parser(__doc__)
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="PDF, image file, or folder of them")
    parser.add_argument("--output-dir", type=Path, required=True, help="the report's folder (created)")
    add_shared(parser, "jobs", usable_cpus())
    parser.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help=f"scan on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786), or "
                             f"'{LOCAL}' for a Dask cluster of --jobs workers on this machine")
    parser.add_argument("--truth", type=Path, default=None,
                        help="a truth.csv of bin/make_test_pdfs.py: print recall and false positives per figure")
    add_inference_args(parser, fusion=AUTO)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.inference.fusion import matcher_of
    from lib.inference.infer import post_and_tuning_from_args
    from lib.matching import DEFAULT_VERIFIER
    from tqdm.contrib.logging import logging_redirect_tqdm

    from lib.progress import progress_bar
    from lib.scan.engine import find_documents, scan_all
    from lib.scan.report import ReportWriter
    from lib.scan.scan import ScanSettings
    from lib.scan.testdocs import score_against_truth
    if args.jobs < 1:
        raise ProjectError(f"--jobs {args.jobs}: must be at least 1")
    paths = resolve_paths(args)
    log_file = setup_logging("scan_figures", paths.logs_dir)
    output = args.output_dir.resolve()
    options = from_args(PredictorOptions, args)
    if args.models_dir is None and not os.environ.get(ENV_MODELS_DIR) and args.fusion == AUTO:
        # no models named: the matcher and the committed verifier; the report's folder holds the cache
        options = replace(options, match_verifier=options.match_verifier or DEFAULT_VERIFIER)
        post, models_dir = PostConfig(fusion="matcher"), output
    else:
        post = post_and_tuning_from_args(args, paths.models_dir, given_dests(parser, argv))[0]
        models_dir = paths.models_dir
    settings = ScanSettings(options, post, models_dir)
    documents, skipped = find_documents(args.inputs)
    for line in skipped:
        log.warning("%s", line)
    if not documents:
        raise ProjectError(f"{', '.join(str(i) for i in args.inputs)}: no PDF or image file found")
    jobs = min(args.jobs, len(documents))
    engine = (f"Dask cluster {args.cluster}" if args.cluster else f"{jobs} processes" if jobs > 1 else "this process")
    matcher = matcher_of(options, models_dir)[2]
    described = matcher if post.fusion == "matcher" else f"{post.summary()}; networks from {models_dir}; {matcher}"
    log.info("%s in %s; %s", counted(len(documents), "document"), engine, described)
    report = ReportWriter(output, skipped=list(skipped))
    started, figures, flagged = time.perf_counter(), 0, 0
    try:
        # warnings printed above the bar, not into it (the file log is untouched)
        with logging_redirect_tqdm(), progress_bar(total=len(documents), desc="scan", unit="doc",
                                                   progress=args.progress) as bar:
            for result in scan_all(documents, settings, args.jobs, args.cluster):
                report.add(result)
                figures += len(result.figures)
                flagged += len(result.flagged)
                if result.error:
                    log.warning("%s", result.error)
                for line in result.not_scanned():
                    log.warning("%s", line)
                bar.set_postfix(figures=figures, flagged=flagged, refresh=False)
                bar.update()
    except KeyboardInterrupt:
        interrupted = (f"Interrupted after {len(report.lines)} of {len(documents)} documents; "
                       f"{RESUME_HINT}.")
        index = report.finish(described, interrupted)
        print(f"report of the documents scanned so far: {index}", file=sys.stderr)
        raise
    elapsed = time.perf_counter() - started
    note = ""
    if args.truth is not None:
        note = "Against " + str(args.truth) + ": " + score_against_truth(report.figures, args.truth).summary()
    index = report.finish(described, note=note)
    speed = f", {figures / elapsed:.2f} figures/s ({elapsed / figures:.2f} s a figure)" if figures else ""
    log.info("%s scanned in %.1fs: %s%s with %s", counted(len(documents), "document"), elapsed,
             counted(figures, "figure"), speed, engine)
    log.info("%s flagged; %d not scanned (listed in the report)", counted(flagged, "figure"),
             len(report.not_scanned))
    if note:
        log.info("%s", note)
    print(index)
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main, on_interrupt=RESUME_HINT)
