"""Chapters one at a time on every core, against two at a time with the cores shared out.

The book runner's default (`python -m ftutils.book run`, two chapters at a time where there are two
cores or more) rests on this measurement: the same chapter, executed for two seeds, first one after
the other with every core (``--jobs 1``), then side by side with ``cores / 2`` threads each
(``--jobs 2``). Every run must pass its chapter's claims (the chapters assert that they learned), so
the two ways are compared only on runs that did the work. Prints both wall-clock times and

    RESULT jobs2_vs_jobs1=<one-at-a-time seconds / two-at-a-time seconds>   (> 1: two at a time is faster)

Usage (about 5 minutes on 2 cores for chapter 04):
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_jobs.py [--chapter 04] [--seeds 1 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from ftutils import book


def timed(root, chapter: str, seeds: list[int], jobs: int) -> float:
    started = time.perf_counter()
    failures = book.run_seeds(root, seeds, only=[chapter], jobs=jobs)
    if failures:
        sys.exit(f"chapter {chapter} failed with --jobs {jobs}: {failures}; no timing is worth comparing")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chapter", default="04")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    for name in book.THREAD_ENV:  # the runner shares the cores out only where the caller did not choose
        os.environ.pop(name, None)
    root = book.find_root()
    one = timed(root, args.chapter, args.seeds, jobs=1)
    two = timed(root, args.chapter, args.seeds, jobs=2)
    print(f"chapter {args.chapter}, seeds {args.seeds}, {book.cores()} cores: one at a time {one:.0f} s, "
          f"two at a time ({book.threads_per_job(2)} thread(s) each) {two:.0f} s")
    print(f"RESULT jobs2_vs_jobs1={one / two:.2f}")


if __name__ == "__main__":
    main()
