"""Search impact: live search latency on the read alias with no copy
running, during a copy at normal priority and during one at background
priority (`reindexd reindex wiki --priority background`), in one run."""

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse

from .common import LOGICAL, PREFIX, BenchError, log
from .procs import cpu_ticks, machine_busy

# English words of scripts/gen-kb's wiki articles (its EN_NOUNS, EN_VERBS and
# EN_ADJS, a part of each): every query matches some documents, few match all.
WORDS = (
    "browser tab window bookmark password extension profile cache cookie history setting toolbar "
    "menu homepage search engine download update version certificate connection proxy account sync "
    "device phone notification permission camera video audio page website link address screen theme "
    "font language message email folder attachment calendar contact filter signature backup import "
    "export file error crash report memory startup shortcut keyboard zoom reader tracking protection "
    "security warning login username encryption network container sidebar popup autofill printer "
    "open clear delete remove install restart reset enable disable change select find fix save load "
    "block allow restore check verify copy paste move share send receive configure customize manage "
    "troubleshoot private secure slow blank missing broken hidden automatic recent saved advanced "
    "unexpected empty wrong"
).split()


def query(rnd):
    """One live-search query: a match of 2–3 words on the articles' text,
    the first page of 10 hits with their titles."""
    words = " ".join(rnd.sample(WORDS, rnd.choice((2, 2, 3))))
    return {"size": 10, "query": {"match": {"content": words}}, "_source": ["title", "slug", "locale"]}


# --daemon-search-probe match: a probe like the load's queries (size 10, so
# the request cache does not answer it).
MATCH_PROBE = '{"size": 10, "query": {"match": {"content": "password sync error"}}}'


# --cpu-load-steps: one process spinning for `duty` of every 10 ms.
BUSY_LOOP = """
import sys, time
duty, period = float(sys.argv[1]), 0.010
start = time.monotonic()
while True:
    busy_until = start + duty * period
    while time.monotonic() < busy_until:
        pass
    start += period
    rest = start - time.monotonic()
    if rest > 0:
        time.sleep(rest)
    else:
        start = time.monotonic()
"""


def percentile(values, q):
    """Nearest-rank percentile of a sorted list (q in 0..100)."""
    if not values:
        return None
    k = max(0, min(len(values) - 1, int(round(q / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def probe_name(probe):
    return "match probe" if probe == MATCH_PROBE else f"probe {probe}"


class SearchLoad:
    """`clients` threads, each searching `index` at `rate` queries/s (0 =
    back to back) on its own keep-alive connection; every query's start
    and latency are kept."""

    def __init__(self, url, index, clients, rate, seed):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = f"/{index}/_search"
        self.clients, self.rate, self.seed = clients, rate, seed
        self.samples = []  # (started, seconds, ok); list.append is atomic
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.clients):
            t = threading.Thread(target=self.client, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=35)

    def client(self, i):
        rnd = random.Random(self.seed * 1000 + i)
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic() + rnd.random() * interval
        conn = None
        while not self.stopping.is_set():
            if interval:
                now = time.monotonic()
                if next_at > now:
                    if self.stopping.wait(next_at - now):
                        break
                # A late query goes now; missed slots are not made up in a burst.
                next_at = max(next_at, time.monotonic() - interval) + interval
            body = json.dumps(query(rnd))
            started = time.monotonic()
            ok = False
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                raw = r.read()
                ok = r.status == 200 and b'"timed_out":false' in raw
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            self.samples.append((started, time.monotonic() - started, ok))
        if conn is not None:
            conn.close()

    def between(self, t0, t1):
        return [s for s in list(self.samples) if t0 <= s[0] < t1]


class PhaseWatch:
    """Polls `reindexd status wiki --json` (every 0.5 s) while a copy runs;
    keeps when the phase was first and last seen `copying`, with the node's
    and the machine's CPU seconds at those moments."""

    def __init__(self, bench, every=0.5):
        self.bench, self.every = bench, every
        self.first = self.last = None  # (monotonic, node cpu s, machine busy s)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=30)

    def run(self):
        while not self.stopping.is_set():
            p = self.bench.rd("status", LOGICAL, "--json", check=False)
            try:
                phase = json.loads(p.stdout)[0].get("phase")
            except (ValueError, IndexError, AttributeError):
                phase = None
            if phase == "copying":
                mark = self.bench.mark()
                self.first = self.first or mark
                self.last = mark
            self.stopping.wait(self.every)


class SearchImpact:
    """The bench step behind --search-impact."""

    def node_cpu(self):
        return cpu_ticks(self.node_pid) if self.node_pid else None

    def mark(self):
        """(monotonic, node CPU s, machine busy s, the node's GC counters)."""
        return (time.monotonic(), self.node_cpu(), machine_busy(), self.node.gc())

    def run_search_impact(self):
        a = self.args
        read = f"{PREFIX}{LOGICAL}_read"
        self.node.wait_quiet()
        load = SearchLoad(self.node.url, read, a.search_clients, a.search_rate, a.seed)
        self.impact = {"docs": a.docs, "shards": self.source_shards, "index": read, "clients": a.search_clients,
                       "rate": a.search_rate, "example_query": query(random.Random(0)),
                       "daemon_search_probe": a.daemon_search_probe,
                       "compare_default_probe": a.compare_default_probe, "windows": []}
        log(f"search load: {a.search_clients} clients × "
            f"{f'{a.search_rate:g} queries/s' if a.search_rate else 'back to back'} on {read}")
        load.start()
        try:
            if not a.no_warmup_copy:
                # Under the search load: both the node's indexing and its
                # search paths are compiled before anything is measured.
                log("warm-up: one reindexd copy under the search load, not measured")
                self.reindexd_copy(tag="warmup")
                self.node.wait_quiet()
            log(f"warm-up: {a.warmup_seconds:g} s of search load, not measured")
            time.sleep(a.warmup_seconds)
            if not load.samples or not any(ok for _, _, ok in load.samples):
                raise BenchError(f"the search load gets no answers from {read}")
            self.quiet_window(load, "baseline (no copy)", a.baseline_seconds)
            self.copy_window(load, "normal copy", ())
            self.node.wait_quiet()
            probes = [a.daemon_search_probe]
            if a.daemon_search_probe and a.compare_default_probe:
                probes = [None, a.daemon_search_probe]
            for probe in probes:
                a.daemon_search_probe = probe
                self.write_config()
                name = "background copy"
                if len(probes) > 1:
                    name += ", default probe" if probe is None else ", " + probe_name(probe)
                self.copy_window(load, name, ("--priority", "background"))
                self.node.wait_quiet()
            if a.throttle_steps:
                self.throttle_windows(load, a.throttle_steps, a.step_seconds)
                self.node.wait_quiet()
            for cores in a.cpu_load_steps:
                self.cpu_load_window(load, cores, a.step_seconds)
            self.quiet_window(load, "after (no copy)", a.baseline_seconds)
        finally:
            load.stop()
            self.save()
            # Every query (start in seconds from the first, latency ms, ok).
            with open(os.path.join(self.work, "search-samples.json"), "w") as f:
                t0 = load.samples[0][0] if load.samples else 0
                json.dump([(round(s[0] - t0, 3), round(s[1] * 1000, 2), s[2]) for s in load.samples], f)

    def quiet_window(self, load, name, seconds):
        log(f"window: {name}, {seconds:g} s")
        mark0 = self.mark()
        time.sleep(seconds)
        mark1 = self.mark()
        self.add_window(name, load, mark0, mark1)

    def copy_window(self, load, name, extra):
        log(f"window: {name} ({' '.join(['reindexd reindex', LOGICAL, *extra])})")
        watch = PhaseWatch(self)
        watch.start()
        t0 = self.mark()
        try:
            r = self.reindexd_copy(*extra, tag="impact-" + "-".join(name.replace(",", "").split()[:4]))
        finally:
            watch.stop()
        t1 = self.mark()
        # The copy phase as the status poll saw it; the whole command if the
        # copy was too quick to be seen twice.
        first, last = (watch.first, watch.last) if watch.first and watch.last[0] > watch.first[0] else (t0, t1)
        p = r["progress"]
        w = self.add_window(name, load, first, last)
        w.update({"copy_docs_per_second": p["copied"] / p["elapsed_seconds"] if p.get("elapsed_seconds") else None,
                  "copy_seconds": p.get("elapsed_seconds"), "command_seconds": r["seconds"],
                  "client_cpu": r["cpu"], "rss_kib": r["rss_kib"], "priority": p.get("priority"),
                  "progress": p})
        self.save()

    def throttle_windows(self, load, rates, seconds):
        """One normal-priority copy whose throttle steps through `rates`
        (`reindexd throttle`, live), `seconds` at each: search latency
        against a copy held at known speeds. A step's window starts once the
        copy's rate has followed the new throttle (6 s after the command: a
        copy in another process reads its controls at each checkpoint, 5 s);
        its docs/s are the documents copied within it. After the last step
        the throttle is lifted and the copy finishes unmeasured."""
        marks = []  # (name, mark0, mark1, copied0, copied1)

        def copied():
            p = self.rd("status", LOGICAL, "--json", check=False)
            try:
                view = json.loads(p.stdout)[0]
                return view["progress"]["copied"] if view["phase"] == "copying" else None
            except (ValueError, IndexError, KeyError, TypeError):
                return None

        def step():
            # The copy is started by reindexd_copy below; wait for it.
            deadline = time.monotonic() + 120
            while copied() is None:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.2)
            for i, rate in enumerate(rates):
                if i:
                    self.rd("throttle", LOGICAL, f"{rate:g}")
                time.sleep(6)
                m0 = self.mark()
                c0 = copied()
                time.sleep(seconds)
                m1 = self.mark()
                marks.append((f"throttled copy, {rate:g} docs/s", m0, m1, c0, copied()))
            self.rd("throttle", LOGICAL, "off")

        log(f"windows: one copy throttled to {', '.join(f'{r:g}' for r in rates)} docs/s, {seconds:g} s each")
        stepper = threading.Thread(target=step, daemon=True)
        stepper.start()
        r = self.reindexd_copy("--requests-per-second", f"{rates[0]:g}", tag="impact-throttle-steps")
        stepper.join(timeout=60)
        if len(marks) < len(rates):
            raise BenchError(f"the throttled copy ended after {len(marks)} of {len(rates)} steps: "
                             f"give it more --docs or fewer/shorter --throttle-steps")
        for name, m0, m1, c0, c1 in marks:
            w = self.add_window(name, load, m0, m1)
            if c0 is not None and c1 is not None:
                w["copy_docs_per_second"] = (c1 - c0) / (m1[0] - m0[0])
        self.impact["windows"][-1]["rss_kib"] = r["rss_kib"]
        self.save()

    def cpu_load_window(self, load, cores, seconds):
        """A control with no copy: busy loops outside the node keep `cores`
        cores busy (each loop spins for its share of every 10 ms and sleeps
        the rest, at the same nice level as the node) while the search load
        runs. What any work beside the node's searches costs them on these
        cores, whoever does it."""
        name = f"no copy, busy loop outside the node on {cores:g} cores"
        log(f"window: {name}, {seconds:g} s")
        loops, left = [], cores
        while left > 1e-9:
            duty = min(1.0, left)
            left -= duty
            loops.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP, f"{duty:.4f}"]))
        try:
            time.sleep(1)
            mark0 = self.mark()
            time.sleep(seconds)
            mark1 = self.mark()
        finally:
            for proc in loops:
                proc.terminate()
            for proc in loops:
                proc.wait(timeout=10)
        self.add_window(name, load, mark0, mark1)
        self.save()

    def add_window(self, name, load, mark0, mark1):
        t0, t1 = mark0[0], mark1[0]
        got = load.between(t0, t1)
        lat = sorted(s[1] * 1000 for s in got if s[2])
        seconds = t1 - t0
        w = {"name": name, "seconds": seconds, "queries": len(got), "errors": sum(1 for s in got if not s[2]),
             "qps": len(got) / seconds if seconds > 0 else None,
             "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99),
             "max_ms": lat[-1] if lat else None}
        # p99 per 10 s slice: does the node drift within a window?
        w["p99_ms_by_10s"] = [percentile(sorted(s[1] * 1000 for s in got if s[2] and t <= s[0] < t + 10), 99)
                              for t in [t0 + 10 * i for i in range(int(seconds // 10))]]
        if mark0[1] is not None and mark1[1] is not None and seconds > 0:
            w["node_cores"] = (mark1[1] - mark0[1]) / seconds
        if mark0[2] is not None and mark1[2] is not None and seconds > 0:
            w["machine_cores"] = (mark1[2] - mark0[2]) / seconds
        if mark0[3] is not None and mark1[3] is not None and seconds > 0:
            # Stop-the-world pauses hold every search up, whatever the cores.
            w["young_gcs_per_s"] = (mark1[3][0] - mark0[3][0]) / seconds
            w["young_gc_ms_per_s"] = (mark1[3][1] - mark0[3][1]) / seconds
            w["old_gcs"] = mark1[3][2] - mark0[3][2]
        self.impact["windows"].append(w)
        log(f"  {name}: {len(got)} queries in {seconds:.1f} s, p50 {w['p50_ms'] or 0:.1f} ms, "
            f"p99 {w['p99_ms'] or 0:.1f} ms, {w['errors']} failed; node {w.get('node_cores') or 0:.2f} cores, "
            f"machine {w.get('machine_cores') or 0:.2f} busy; young GC {w.get('young_gcs_per_s') or 0:.1f}/s, "
            f"{w.get('young_gc_ms_per_s') or 0:.1f} ms/s")
        return w
