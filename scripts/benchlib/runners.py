"""The measurements: (a) reindexd, (b) `_reindex`, (c) the Python client,
(d) elasticdump, (e) the write ceiling; each returns its row's numbers."""

import json
import math
import os
import subprocess
import time

from .common import LABELS, LOGICAL, PREFIX, BenchError, log, parse_size
from .procs import cpu_ticks, machine_busy, parse_time_v, run_timed

# --node-profile records the node during these (the copies that go through
# the node's write path: the ones whose node CPU is compared).
PROFILED = ("reindexd", "server", "ceiling")


class Runners:
    """Bench steps that measure one engine each."""

    def measure(self, name, fn):
        if not self.wanted(name):
            return
        self.node.wait_quiet()
        log(f"measuring {LABELS[name]} ({self.source_shards} shards, run {self.rep + 1} of {self.args.repeat})")
        profile = self.node_profile if name in PROFILED else None
        if profile:
            profile.start(f"{name}-{self.source_shards}-{self.rep}")
        node_cpu0 = cpu_ticks(self.node_pid) if self.node_pid else None
        busy0 = machine_busy()
        result = fn()
        node_cpu1 = cpu_ticks(self.node_pid) if self.node_pid else None
        busy1 = machine_busy()
        if profile:
            result["node_profile"] = profile.stop()
        result["name"] = name
        result["shards"] = self.source_shards
        result["rep"] = self.rep
        if node_cpu0 is not None and node_cpu1 is not None and "node_cpu" not in result:
            result["node_cpu"] = node_cpu1 - node_cpu0
        if busy0 is not None and busy1 is not None and "machine_cpu" not in result:
            result["machine_cpu"] = busy1 - busy0
        if result.get("machine_cpu") is not None and result.get("node_cpu") is not None:
            # Everything else that ran on the machine meanwhile (other jobs, the
            # load generator's own startup...), in cores on average.
            other = result["machine_cpu"] - result["node_cpu"] - (result.get("cpu") or 0)
            result["other_cores"] = max(0.0, other) / result["seconds"]
        result["docs_per_second"] = result["docs"] / result["seconds"]
        log(f"  {result['docs']} docs in {result['seconds']:.1f} s = {result['docs_per_second']:.0f} docs/s")
        self.results.append(result)
        self.save()

    def warm_up(self):
        """One reindexd copy, not measured, before the first measurement: on
        a node just started the first copy also pays for the JVM compiling
        its hot paths (measured: half the speed and twice the node CPU of
        the same copy warm)."""
        if not self.wanted("reindexd"):
            return
        self.node.wait_quiet()
        log("warm-up: one reindexd copy, not measured")
        self.reindexd_copy(tag="warmup")

    def verify(self, index, expected, what):
        got = self.node.count(index)
        if got != expected:
            raise BenchError(f"{what}: target {index} holds {got} documents, expected {expected}")

    def run_reindexd(self):
        r = self.reindexd_copy(perf=self.args.perf)
        p = r["progress"]
        notes = f"{self.copy_settings}; slices {p.get('slices')}; copy phase alone {p['elapsed_seconds']:.1f} s"
        if self.args.perf:
            notes += "; under perf record"
        return {"docs": self.args.docs, "seconds": r["seconds"], "cpu": r["cpu"], "rss_kib": r["rss_kib"],
                "notes": notes}

    def reindexd_copy(self, *extra, tag="reindexd", perf=False):
        """`reindexd reindex wiki [extra...]` in the foreground under GNU time,
        checked (phase ready, every document copied), then rolled back and
        cleaned up so the source is live again. Returns seconds (the whole
        command), cpu, rss_kib and the final progress."""
        self.put_mapping("wiki.v2.json")
        logfile = os.path.join(self.work, "logs", f"{tag}.log")
        timefile = os.path.join(self.work, "logs", f"{tag}.time")
        cmd = [self.reindexd, "--config", self.config, "reindex", LOGICAL, *extra]
        if perf:
            cmd = ["perf", "record", "-F", "499", "-g", "-o", os.path.join(self.work, "perf.data"), "--"] + cmd
        try:
            rc, wall = run_timed(cmd, logfile, timefile)
            if rc != 0:
                raise BenchError(f"reindexd reindex {' '.join(extra)} exited {rc}; see {logfile}")
            cpu, rss = parse_time_v(timefile)
            view = json.loads(self.rd("status", LOGICAL, "--json").stdout)[0]
            if view["phase"] != "ready":
                raise BenchError(f"reindexd ended {view['phase']}: {view.get('reason')}")
            p = view["progress"]
            self.verify(view["write_index"], self.args.docs, tag)
            if p["copied"] != self.args.docs:
                raise BenchError(f"reindexd copied {p['copied']} of {self.args.docs} (superseded {p['superseded']})")
            return {"seconds": wall, "cpu": cpu, "rss_kib": rss, "progress": p}
        finally:
            self.put_mapping("wiki.json")
            view = json.loads(self.rd("status", LOGICAL, "--json", check=False).stdout or "[{}]")[0]
            if view.get("phase") not in (None, "live", "uninitialized"):
                self.rd("rollback", LOGICAL, check=False)
            self.rd("cleanup", LOGICAL, check=False)

    def run_server(self):
        target = f"{PREFIX}t-server"
        t0 = time.monotonic()
        self.create_target(target)
        body = {"source": {"index": self.source, "size": self.args.page_size}, "dest": {"index": target}}
        task = self.node.call("POST", "/_reindex?slices=auto&wait_for_completion=false", body)["task"]
        while True:
            t = self.node.call("GET", f"/_tasks/{task}")
            if t.get("completed"):
                break
            time.sleep(0.25)
        self.node.call("POST", f"/{target}/_refresh")
        wall = time.monotonic() - t0
        response = t.get("response", {})
        if t.get("error") or response.get("failures"):
            raise BenchError(f"_reindex failed: {t.get('error') or response['failures'][:3]}")
        self.node.call("DELETE", f"/.tasks/_doc/{task}", ok=(200, 404))
        self.verify(target, self.args.docs, "server")
        self.node.delete(target)
        # A sliced task lists its slices; auto with one shard runs unsliced.
        slices = len(t.get("task", {}).get("status", {}).get("slices") or []) or 1
        return {"docs": self.args.docs, "seconds": wall, "cpu": None, "rss_kib": None,
                "notes": f"slices=auto ({slices} slice{'s' if slices != 1 else ''}), size {self.args.page_size}; runs inside the node"}

    def run_python(self):
        target = f"{PREFIX}t-python"
        module = "opensearchpy" if self.engine == "opensearch" else "elasticsearch"
        client = "OpenSearch" if self.engine == "opensearch" else "Elasticsearch"
        script = os.path.join(self.work, "py_reindex.py")
        with open(script, "w") as f:
            f.write(f"""import sys
from {module} import {client}, helpers
client = {client}([sys.argv[1]], timeout=300)
ok, errors = helpers.reindex(client, sys.argv[2], sys.argv[3], chunk_size=int(sys.argv[4]),
                             bulk_kwargs={{"raise_on_error": True}})
print(ok, errors)
""")
        logfile = os.path.join(self.work, "logs", "python.log")
        timefile = os.path.join(self.work, "logs", "python.time")
        t0 = time.monotonic()
        self.create_target(target)
        rc, _ = run_timed([self.python, script, self.node.url, self.source, target, str(self.args.python_chunk_size)],
                          logfile, timefile)
        if rc != 0:
            raise BenchError(f"python helpers.reindex exited {rc}; see {logfile}")
        self.node.call("POST", f"/{target}/_refresh")
        wall = time.monotonic() - t0
        cpu, rss = parse_time_v(timefile)
        self.verify(target, self.args.docs, "python")
        self.node.delete(target)
        return {"docs": self.args.docs, "seconds": wall, "cpu": cpu, "rss_kib": rss,
                "notes": f"{self.python_pkg}, chunk_size {self.args.python_chunk_size}, scan size 1000 (defaults otherwise)"}

    def run_elasticdump(self):
        target = f"{PREFIX}t-elasticdump"
        limit = self.args.elasticdump_limit
        cap = self.args.elasticdump_max_docs
        docs = self.args.docs
        cmd = [self.elasticdump, f"--input={self.node.url}/{self.source}", f"--output={self.node.url}/{target}",
               "--type=data", f"--limit={limit}", "--quiet"]
        prefix = cap and cap < docs
        if prefix:
            # elasticdump stops at the first whole page at or past --size.
            docs = min(docs, math.ceil(cap / limit) * limit)
            cmd.append(f"--size={docs}")
        logfile = os.path.join(self.work, "logs", "elasticdump.log")
        timefile = os.path.join(self.work, "logs", "elasticdump.time")
        t0 = time.monotonic()
        self.create_target(target)
        rc, _ = run_timed(cmd, logfile, timefile)
        if rc != 0:
            raise BenchError(f"elasticdump exited {rc}; see {logfile}")
        self.node.call("POST", f"/{target}/_refresh")
        wall = time.monotonic() - t0
        cpu, rss = parse_time_v(timefile)
        self.verify(target, docs, "elasticdump")
        self.node.delete(target)
        notes = f"elasticdump {self.elasticdump_version}, --limit={limit}"
        if prefix:
            notes += f"; **first {docs} documents only** (--elasticdump-max-docs)"
        return {"docs": docs, "seconds": wall, "cpu": cpu, "rss_kib": rss, "notes": notes}

    def run_ceiling(self):
        target = f"{PREFIX}t-ceiling"
        logfile = os.path.join(self.work, "logs", "ceiling.log")
        timefile = os.path.join(self.work, "logs", "ceiling.time")
        out = os.path.join(self.work, "logs", "ceiling.jsonl")
        cmd = [self.bulk, "write-ceiling", "--url", self.node.url, "--ndjson", self.ndjson, "--create-body", self.target_body_file,
               "--index", target, "--concurrency", self.args.ceiling_concurrency,
               "--batch-bytes", str(parse_size(self.args.batch_bytes))]
        if self.node_pid:
            cmd += ["--node-pid", str(self.node_pid)]
        full = ["/usr/bin/time", "-v", "-o", timefile] + cmd
        with open(out, "w") as stdout, open(logfile, "w") as stderr:
            rc = subprocess.call(full, stdout=stdout, stderr=stderr)
        if rc != 0:
            raise BenchError(f"write_ceiling exited {rc}; see {logfile}")
        runs = [json.loads(l) for l in open(out) if l.strip()]
        best = max(runs, key=lambda r: r["docs_per_second"])
        _, rss = parse_time_v(timefile)
        per = ", ".join(f"c={r['concurrency']}: {r['docs_per_second']:.0f}" for r in runs)
        return {"docs": best["docs"], "seconds": best["seconds"], "cpu": best["cpu_seconds"], "rss_kib": rss,
                "node_cpu": best.get("node_cpu_seconds"),
                "machine_cpu": best.get("machine_cpu_seconds"), "concurrency": best["concurrency"], "runs": runs,
                "notes": f"best of {per} docs/s; {best['bodies']} bodies of ~{self.args.batch_bytes}; "
                         "RSS holds the whole dataset"}
