"""scripts/bench, in parts: common (names, errors, helpers), procs (CPU
seconds, GNU time), node (HTTP, local node control), tools (builds and
installs), dataset (config, source, ceiling NDJSON, target body), runners
(one measurement per engine), profile (the node under Java Flight
Recorder), report (machine, table, results.json) and cli
(the run and its command line). scripts/bench is the entry point;
scripts/bench-rollback reuses the same steps.
"""

from .cli import Bench, main
from .common import LOGICAL, PREFIX, BenchError, log

__all__ = ["Bench", "BenchError", "LOGICAL", "PREFIX", "log", "main"]
