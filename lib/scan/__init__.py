"""Screening documents for duplicated regions (bin/scan_figures.py): PDFs, images and folders in,
an HTML report and CSVs out, on one machine or a Dask cluster.

pdf.py takes every raster image a PDF embeds at its stored resolution (pypdf), under the
project's pixel budget; scan.py runs the detectors on one document's figures as the predictor
runs them (the matcher and its verifier, the networks where validated settings say so; cached by
each figure's content) and describes each finding: source and copy, the transform between
them, the probability, the pictures; engine.py runs documents in this process, in a pool of
processes or on Dask workers; report.py writes the report as results arrive; testdocs.py writes
test documents with known truth from the benchmark, and the bad ones a scan must survive.
"""

LOCAL = "local"                  # --cluster local: a Dask cluster of --jobs workers on this machine
