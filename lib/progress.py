"""Progress of long loops: a tqdm bar on the console, or, where bars are off (`--no-progress`,
and every step of full_pipeline.py, whose output goes to its log), one log line at most every
LOG_EVERY seconds with the count, the elapsed time and tqdm's estimate of what is left.

tqdm does the counting and the estimate in both cases; here it writes into the log instead of a
terminal, and stays silent for loops shorter than LOG_EVERY.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from tqdm import tqdm

LOG_EVERY = 30.0                # seconds between two progress lines in a log
_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({elapsed} elapsed, about {remaining} left){postfix}"

log = logging.getLogger("progress")


class _LogLines:
    """A file for tqdm that turns each status it writes into one log line (the closing repeat of
    the last status left out)."""

    def __init__(self):
        self.last = ""
        self.pid = os.getpid()

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        # DataLoader workers are forked with the bar and close their copy when they end: only the
        # process that made the bar reports
        if text and text != self.last and os.getpid() == self.pid:
            self.last = text
            log.info("%s", text)

    def flush(self) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 progress: bool = True, leave: bool = True) -> tqdm:
    """tqdm over `iterable` (or updated by hand up to `total`): a bar when `progress`, else a
    progress line in the log every LOG_EVERY seconds once the loop has run that long."""
    if progress:
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    # miniters=1: every step is checked against mininterval (tqdm's adaptive miniters would need its
    # monitor thread, which refreshes a stalled bar every 10 s: no more than one line per LOG_EVERY)
    # position=0: a loop inside another (a scan's documents, each document's figures) is a line of its
    # own in the log, not a bar that moves the cursor
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=_LogLines(), mininterval=LOG_EVERY, miniters=1,
                maxinterval=float("inf"), delay=LOG_EVERY, bar_format=_FORMAT, ascii=True, position=0)
