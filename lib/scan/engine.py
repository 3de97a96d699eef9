"""Where documents are scanned: in this process, in a pool of `--jobs` processes on this
machine, or on a Dask cluster (`--cluster ADDRESS`). Each runs the same function on each document
(lib.scan.scan.scan_document) and yields its result as it arrives.

Dask distributed rather than Ray: a pure-Python package (BSD-3-Clause) with the
concurrent.futures interface this module already uses for its local pool (submit, as_completed),
a scheduler and workers started with one command each (`dask scheduler`, `dask worker ADDRESS`)
on a laptop, a cluster or a batch system (dask-jobqueue), and a LocalCluster to test the same code
path. Ray brings its own object store and runtime (a wheel of about 60 MB) for features a scan
does not use (actors, GPUs scheduled per task).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ..errors import ProjectError
from ..imageio import IMAGE_EXTENSIONS, find_images, shown
from . import LOCAL
from .pdf import PDF_SUFFIX
from .scan import DocumentResult, ScanSettings, failed, scan_document

log = logging.getLogger(__name__)

# What a Dask nanny sets in its worker's environment, less MALLOC_TRIM_THRESHOLD_: with glibc's
# allocator thresholds fixed, every large numpy array is a fresh mmap, and the matcher ran 1.5x
# slower per document (8 test papers: 147 s of scanning against 99 s in a process pool; the pool
# with that variable set, 147 s too)
WORKER_ENVIRON = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
SLOW_ENVIRON = "MALLOC_TRIM_THRESHOLD_"



def find_documents(inputs: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The documents named by `inputs` (PDFs and images; folders searched recursively, sorted),
    each once, and one line per entry skipped (a link that leads nowhere, a second name of a
    document, a file of another kind named on the command line). A missing input is an error: a
    typo, not a document."""
    documents, skipped, seen = [], [], {}
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            listing = find_images(item, recursive=True, extensions=(*IMAGE_EXTENSIONS, PDF_SUFFIX), case_ids=False)
            found = listing.paths
            skipped += listing.skipped
        elif item.is_file():
            if item.suffix.lower() not in (PDF_SUFFIX, *IMAGE_EXTENSIONS):
                skipped.append(f"{shown(item)}: neither a PDF nor an image file ({', '.join(IMAGE_EXTENSIONS)}); "
                               f"not scanned")
                continue
            found = [item]
        else:
            raise ProjectError(f"{shown(item)}: no such file or folder")
        for path in found:
            first = seen.setdefault(path.resolve(), path)
            if first is path:
                documents.append(path)
            elif first != path:                  # a link to a document, or one named twice
                skipped.append(f"{shown(path)}: the same file as {shown(first)}; scanned once")
    return documents, skipped


def scan_on_one_thread(document: Path, settings: ScanSettings) -> DocumentResult:
    """scan_document with OpenCV and torch on one thread each, as a worker runs it: the workers are
    the parallelism. Set by the call itself, so that a pool's process and a Dask worker need no
    initializer of their own."""
    import cv2
    import torch
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    return scan_document(document, settings)


def scan_all(documents: Sequence[Path], settings: ScanSettings, jobs: int = 1, cluster: str | None = None
             ) -> Iterator[DocumentResult]:
    """Every document's result, in the order they finish: in this process (jobs 1), in `jobs`
    processes, or on the Dask cluster at `cluster` (LOCAL: one of `jobs` workers started here).
    A document whose scan raises is a result with its error, never the end of the run."""
    if cluster is not None:
        yield from _on_cluster(documents, settings, cluster, jobs)
    elif jobs <= 1 or len(documents) <= 1:
        for document in documents:
            try:
                result = scan_document(document, settings)
            except Exception as exc:        # noqa: BLE001 (a bug met by one document: listed, not fatal)
                result = failed(document, exc)
            yield result
    else:
        # spawn, not fork: torch and OpenCV have started threads in this process
        pool = ProcessPoolExecutor(min(jobs, len(documents)), multiprocessing.get_context("spawn"))
        try:
            futures = {pool.submit(scan_on_one_thread, d, settings): d for d in documents}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:    # noqa: BLE001 (a worker's failure, whatever it was: listed, not fatal)
                    result = failed(futures[future], exc)
                yield result
        finally:                            # Ctrl-C: documents not started are dropped, not waited for
            pool.shutdown(wait=True, cancel_futures=True)


def _on_cluster(documents: Sequence[Path], settings: ScanSettings, cluster: str, jobs: int
                ) -> Iterator[DocumentResult]:
    try:
        import dask
        from distributed import Client, LocalCluster
        from distributed import as_completed as completed
    except ImportError:
        raise ProjectError("--cluster needs Dask distributed: pip install distributed") from None
    local = None
    if cluster == LOCAL:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}):
            local = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                                 dashboard_address=None)
        address = local.scheduler_address
    else:
        address = cluster
    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        if local is not None:
            local.close()
        raise ProjectError(f"--cluster {cluster}: no Dask scheduler answers there ({exc})") from None
    try:
        workers = len(client.scheduler_info().get("workers", {}))
        log.info("Dask cluster %s: %d workers", address, workers)
        slow = [worker for worker, value in client.run(os.getenv, SLOW_ENVIRON).items() if value is not None]
        if slow:
            log.warning("%d of the cluster's workers run with %s set (Dask's default), which slows the matcher "
                        "1.5x: start them as docs/scanning.md says", len(slow), SLOW_ENVIRON)
        futures = client.map(scan_on_one_thread, [Path(d).resolve() for d in documents], settings=settings, pure=False)
        names = {future.key: document for future, document in zip(futures, documents)}
        for future in completed(futures):
            try:
                yield future.result()
            except ModuleNotFoundError as exc:
                raise ProjectError(f"--cluster {cluster}: its workers cannot import this project ({exc}); start "
                                   f"each worker in a clone of it at the same commit: dask worker {address}") from None
            except Exception as exc:        # noqa: BLE001 (a worker's failure, whatever it was: listed, not fatal)
                yield failed(names[future.key], exc)
    finally:
        client.close()
        if local is not None:
            local.close()
