"""The bench run: the steps in order, and its command line."""

import argparse
import json
import os
import subprocess
import sys

from .common import NAMES, BenchError, log, parse_size
from .dataset import Dataset
from .node import NodeControl
from .profile import NodeProfile
from .report import Report
from .runners import Runners
from .search import MATCH_PROBE, SearchImpact
from .tools import Tools


class Bench(NodeControl, Tools, Dataset, Runners, SearchImpact, Report):
    """One bench run's state; its steps live in the mixins, one concern each."""

    def __init__(self, args):
        self.args = args
        # --shards: one count or a list of them (each its own source); None =
        # as the mapping files say.
        counts = args.shards if isinstance(args.shards, list) else [args.shards]
        self.shard_counts = counts
        self.shards = counts[0]
        self.rep = 0
        self.sources = {}
        self.impact = None
        self.work = os.path.abspath(args.work)
        os.makedirs(os.path.join(self.work, "mappings"), exist_ok=True)
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        self.results = []
        self.started_node = False
        self.node = None
        self.node_pid = None
        self.node_profile = None
        self.engine = None
        self.version = None

    def wanted(self, name):
        return name not in self.args.skip


def parse_args(doc):
    """The command line; `doc` is scripts/bench's docstring (its first
    paragraph is the description)."""
    p = argparse.ArgumentParser(prog="bench", description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=1_000_000, help="documents in the dataset (default 1000000)")
    p.add_argument("--port", type=int, default=9290, help="node HTTP port (default 9290)")
    p.add_argument("--skip", default="", help=f"comma-separated measurements to skip: {', '.join(NAMES)}")
    p.add_argument("--work", default="/tmp/reindexd-bench", help="logs, data file, results (default /tmp/reindexd-bench)")
    p.add_argument("--reuse-source", action="store_true",
                   help="keep an already loaded source of the same size instead of reloading it")
    p.add_argument("--keep-node", action="store_true", help="leave a node this script started running")
    p.add_argument("--reindexd-bin", help="use this reindexd binary instead of building one")
    p.add_argument("--bulk-bin", help="use this build of examples/bulk.rs instead of building one")
    p.add_argument("--perf", action="store_true", help="record (a) with perf record -g (into --work/perf.data)")
    p.add_argument("--node-profile", action="store_true",
                   help="record the node with Java Flight Recorder during (a), (b) and (e) (into --work/logs/*.jfr) "
                        "and print where its CPU went")
    p.add_argument("--no-warmup-copy", action="store_true",
                   help="measure from the first copy on (by default one reindexd copy, not measured, warms the "
                        "node up; with --search-impact it runs under the search load)")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure each engine this many times (interleaved); tables show the median run")
    g = p.add_argument_group("dataset (scripts/gen-kb)")
    g.add_argument("--shards", default=None,
                   help="primary shards of source and targets (default: as mappings/wiki*.json say, 2); "
                        "a list such as 1,2,4 measures each count on its own source, one after the other")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--doc-bytes", type=int, default=1024)
    g.add_argument("--routing-every", type=int, default=10, help="every K-th document routed by locale (default 10)")
    g = p.add_argument_group("reindexd [copy] settings (a); page size also used by (b)")
    g.add_argument("--slices", type=int, default=None, help="default: one per primary shard")
    g.add_argument("--page-size", type=int, default=1000)
    g.add_argument("--batch-bytes", default="8MiB")
    g.add_argument("--max-concurrency", type=int, default=8)
    g = p.add_argument_group("other engines")
    g.add_argument("--python-chunk-size", type=int, default=1000)
    g.add_argument("--elasticdump-limit", type=int, default=1000)
    g.add_argument("--elasticdump-max-docs", type=int, default=200_000,
                   help="copy only this prefix with elasticdump (0 = all; default 200000)")
    g.add_argument("--ceiling-concurrency", default="1,2,4,8")
    g = p.add_argument_group("search impact (instead of the engine comparison)")
    g.add_argument("--search-impact", action="store_true",
                   help="measure live search latency with no copy, during a normal copy and during a "
                        "background-priority copy (reindexd only; see the top of scripts/bench)")
    g.add_argument("--search-clients", type=int, default=2, help="concurrent search clients (default 2)")
    g.add_argument("--search-rate", type=float, default=10.0,
                   help="queries per second of each client, 0 = back to back (default 10)")
    g.add_argument("--baseline-seconds", type=float, default=60.0,
                   help="length of each no-copy window, before the copies and after them (default 60: "
                        "a p99 needs a few thousand queries)")
    g.add_argument("--warmup-seconds", type=float, default=30.0,
                   help="search load before the baseline, not measured: the node's JIT and caches warm "
                        "up (default 30)")
    g.add_argument("--throttle-steps", default="",
                   help="also one copy at normal priority throttled live through these docs/s, e.g. "
                        "500,1000,2000,4000 (search latency against copy speed)")
    g.add_argument("--step-seconds", type=float, default=30.0, help="seconds at each throttle step (default 30)")
    g.add_argument("--cpu-load-steps", default="",
                   help="also, with no copy, a busy loop outside the node keeping this many cores busy, one "
                        "window each, e.g. 0.25,0.5,1 (what any other work on the node's cores does to search)")
    g.add_argument("--daemon-search-probe", default=None,
                   help="JSON search body for [copy] search_probe (default: the daemon's own); "
                        "`match`: a match on content like the load's, 10 hits")
    g.add_argument("--compare-default-probe", action="store_true",
                   help="with --daemon-search-probe: a background copy with the daemon's default probe "
                        "first, then one with the given probe")
    args = p.parse_args()
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    bad = args.skip - set(NAMES)
    if bad:
        p.error(f"unknown --skip name(s): {', '.join(sorted(bad))}; known: {', '.join(NAMES)}")
    if args.shards is not None:
        try:
            args.shards = [int(x) for x in args.shards.split(",") if x.strip()]
        except ValueError:
            p.error(f"--shards wants a number or a comma-separated list, found {args.shards!r}")
        bad = [n for n in args.shards if not 1 <= n <= 1024]
        if bad or not args.shards:
            p.error(f"--shards must be 1 to 1024, found {bad or args.shards}")
    if args.search_impact and args.shards and len(args.shards) > 1:
        p.error("--search-impact measures one shard count at a time")
    if args.search_impact:
        args.skip |= {"server", "python", "elasticdump", "ceiling"}
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.search_clients < 1 or args.search_rate < 0 or args.baseline_seconds <= 0 or args.warmup_seconds < 1:
        p.error("--search-clients ≥ 1, --search-rate ≥ 0, --baseline-seconds > 0 and --warmup-seconds ≥ 1 please")
    for flag, what in (("--throttle-steps", "documents per second"), ("--cpu-load-steps", "cores")):
        name = flag[2:].replace("-", "_")
        try:
            setattr(args, name, [float(x) for x in getattr(args, name).split(",") if x.strip()])
        except ValueError:
            p.error(f"{flag}: numbers of {what}, comma-separated, please")
        if getattr(args, name) and not args.search_impact:
            p.error(f"{flag} needs --search-impact")
    if any(not 0 < c <= 8 for c in args.cpu_load_steps):
        p.error("--cpu-load-steps: each more than 0 and at most 8 cores, please")
    if any(r <= 0 for r in args.throttle_steps) or args.step_seconds < 5:
        p.error("--throttle-steps: positive rates, and --step-seconds ≥ 5, please")
    if args.daemon_search_probe == "match":
        args.daemon_search_probe = MATCH_PROBE
    if args.compare_default_probe and not args.daemon_search_probe:
        p.error("--compare-default-probe needs --daemon-search-probe")
    if args.daemon_search_probe is not None:
        try:
            json.loads(args.daemon_search_probe)
        except ValueError as e:
            p.error(f"--daemon-search-probe is not JSON: {e}")
        if "'" in args.daemon_search_probe or "\n" in args.daemon_search_probe:
            p.error("--daemon-search-probe: one line without single quotes please (it goes into a TOML literal string)")
    try:
        parse_size(args.batch_bytes)
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    if not os.path.exists("/usr/bin/time"):
        p.error("/usr/bin/time (GNU time) is needed: apt-get install time")
    return args


def main(doc):
    """Runs every wanted measurement, prints the table; exits 1 when one failed."""
    args = parse_args(doc)
    bench = Bench(args)
    failed = None
    try:
        bench.build()
        bench.start_node()
        if args.node_profile:
            bench.node_profile = NodeProfile(bench.node_pid, bench.work)
        bench.install_tools()
        bench.write_config()
        for i, shards in enumerate(bench.shard_counts):
            bench.shards = shards
            bench.prepare_source()
            if args.search_impact:
                bench.run_search_impact()
                continue
            if i == 0 and not args.no_warmup_copy:
                bench.warm_up()
            # Repeats interleave the engines (a b e, a b e, ...), so a slow
            # patch of the machine does not land on one engine only.
            for rep in range(args.repeat):
                bench.rep = rep
                for name, fn in (("reindexd", bench.run_reindexd), ("server", bench.run_server),
                                 ("python", bench.run_python), ("elasticdump", bench.run_elasticdump),
                                 ("ceiling", bench.run_ceiling)):
                    try:
                        bench.measure(name, fn)
                    except BenchError as e:
                        log(f"{name} FAILED: {e}")
                        failed = failed or e
    except (BenchError, subprocess.CalledProcessError) as e:
        log(f"FAILED: {e}")
        failed = e
    except KeyboardInterrupt:
        log("interrupted")
        failed = "interrupted"
    finally:
        if bench.results or bench.impact:
            print(bench.report())
            log(f"results: {os.path.join(bench.work, 'results.json')}")
        bench.stop_node()
    sys.exit(1 if failed else 0)
