"""Names, paths, errors and small helpers every part of the bench shares."""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "reindexd-bench")
NAMES = ("reindexd", "server", "python", "elasticdump", "ceiling")
LABELS = {
    "reindexd": "(a) reindexd client engine",
    "server": "(b) engine `_reindex` slices=auto",
    "python": "(c) Python client `helpers.reindex`",
    "elasticdump": "(d) elasticdump",
    "ceiling": "(e) write ceiling (bulk replay)",
}
PREFIX = "bench-"
LOGICAL = "wiki"
BULK_SETTINGS = {"refresh_interval": "-1", "number_of_replicas": 0, "gc_deletes": "172800s"}



class BenchError(Exception):
    pass


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def parse_size(text):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMG]i?B?|B)?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    unit = (m.group(2) or "B").upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit])
