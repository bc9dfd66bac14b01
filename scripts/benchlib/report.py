"""What a run prints and saves: the machine, the markdown table, results.json."""

import json
import os
import platform
import statistics
import time

from .common import LABELS, NAMES
from .profile import GROUP_ORDER, KINDS


class Report:
    """Bench steps that describe the run."""

    def save(self):
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump({"machine": self.machine(), "results": self.results, "search_impact": self.impact}, f, indent=2)

    def machine(self):
        model = "?"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
            mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal"))
            ram = f"{int(mem.split()[1]) / 2**20:.1f} GiB"
        except (OSError, StopIteration):
            ram = "?"
        return {
            "nproc": os.cpu_count(), "cpu": model, "ram": ram, "kernel": platform.release(),
            "engine": f"{self.engine} {self.version}", "node": getattr(self, "heap", "?"),
            "reindexd": getattr(self, "commit", "?"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }

    def report(self):
        lines = self.header()
        if self.impact:
            lines += self.impact_table()
        groups = sorted({r["shards"] for r in self.results})
        for shards in groups:
            if len(groups) > 1:
                lines.append(f"{shards} primary shard{'s' if shards != 1 else ''}:")
                lines.append("")
            lines += self.engine_table(shards)
        if len(groups) > 1 or self.args.repeat > 1:
            lines += self.cost_table()
        if any(r.get("node_profile") for r in self.results):
            lines += self.profile_table()
        return "\n".join(lines)

    def header(self):
        m = self.machine()
        a = self.args
        sources = "; ".join(f"{n} primary shard{'s' if n != 1 else ''}, {g['bytes'] / 2**20:.0f} MiB on disk"
                            for n, g in sorted(self.sources.items()))
        return [f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}; "
                f"{m['engine']} single node on the same machine ({m['node']}); "
                f"reindexd {m['reindexd']}; {m['date']}.",
                f"Data: {a.docs:,} wiki documents (scripts/gen-kb --seed {a.seed} --doc-bytes {a.doc_bytes} "
                f"--routing-every {a.routing_every}), source {sources}; targets from mappings/wiki.v2.json with "
                f"refresh_interval -1, number_of_replicas 0.",
                ""]

    def runs(self, shards, name):
        return [r for r in self.results if r["shards"] == shards and r["name"] == name]

    def median_run(self, shards, name):
        """The run with the median docs/s (the slower middle one of an even count)."""
        runs = sorted(self.runs(shards, name), key=lambda r: r["docs_per_second"])
        return runs[(len(runs) - 1) // 2] if runs else None

    def engine_table(self, shards):
        a = self.args
        by = {name: self.median_run(shards, name) for name in NAMES}
        server = by.get("server")
        ceiling = by.get("ceiling")
        lines = []
        if a.repeat > 1:
            lines.append(f"Each row is the median run (by docs/s) of {a.repeat}.")
            lines.append("")
        lines.append("| engine | docs | seconds | docs/s | × (b) | × (e) | client CPU s | client peak RSS | node CPU s | other load | settings / notes |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for name in NAMES:
            r = by.get(name)
            if not r:
                continue
            def ratio(ref):
                return f"{r['docs_per_second'] / ref['docs_per_second']:.2f}" if ref else "—"
            cpu = f"{r['cpu']:.1f}" if r.get("cpu") is not None else "—"
            rss = f"{r['rss_kib'] / 1024:.0f} MiB" if r.get("rss_kib") else "—"
            node_cpu = f"{r['node_cpu']:.0f}" if r.get("node_cpu") is not None else "—"
            other = f"{r['other_cores']:.2f}" if r.get("other_cores") is not None else "—"
            lines.append(f"| {LABELS[name]} | {r['docs']:,} | {r['seconds']:.1f} | {r['docs_per_second']:,.0f} | "
                         f"{ratio(server)} | {ratio(ceiling)} | {cpu} | {rss} | {node_cpu} | {other} | {r['notes']} |")
        lines.append("")
        lines.append("client CPU s: user+sys of the copying process (GNU time); node CPU s: the node's user+sys "
                     "during the measurement; other load: CPU used meanwhile by everything else on the machine, "
                     "in cores (should be ~0 for a clean run).")
        lines.append("")
        rd = by.get("reindexd")
        if rd:
            goals = []
            if server:
                x = rd["docs_per_second"] / server["docs_per_second"]
                goals.append(f"reindexd / _reindex = {x:.2f} (goal ≥ 1.00: {'met' if x >= 1.0 else 'NOT met'})")
                if rd.get("node_cpu") and server.get("node_cpu"):
                    y = rd["node_cpu"] / server["node_cpu"]
                    goals.append(f"node CPU reindexd / _reindex = {y:.2f} (goal ≤ 1.00: "
                                 f"{'met' if y <= 1.0 else 'NOT met'})")
            if ceiling:
                x = rd["docs_per_second"] / ceiling["docs_per_second"]
                goals.append(f"reindexd / ceiling = {x:.2f} (goal ≥ 0.95: {'met' if x >= 0.95 else 'NOT met'})")
            if rd.get("rss_kib"):
                mib = rd["rss_kib"] / 1024
                goals.append(f"reindexd peak RSS = {mib:.0f} MiB at {a.docs:,} docs (goal ≤ 100 MiB: "
                             f"{'met' if mib <= 100 else 'NOT met'})")
            if goals:
                lines.append("Goals: " + "; ".join(goals) + ".")
                lines.append("")
        return lines

    def cost_table(self):
        """Speed and cost per shard count and engine: the median of each
        number over the runs of that cell."""
        lines = ["Speed and cost by primary shards (each number the median over its cell's runs; CPU per "
                 "million documents copied):", "",
                 "| shards | engine | runs | docs/s (min–max) | × (b) | × (e) | node CPU s / 1M docs | "
                 "client CPU s / 1M docs | client peak RSS | other load |",
                 "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        def med(runs, key, scale=None):
            v = [(r[key] * 1e6 / r["docs"] if scale else r[key]) for r in runs if r.get(key) is not None]
            return statistics.median(v) if v else None
        for shards in sorted({r["shards"] for r in self.results}):
            ref = {n: med(self.runs(shards, n), "docs_per_second") for n in ("server", "ceiling")}
            for name in NAMES:
                runs = self.runs(shards, name)
                if not runs:
                    continue
                dps = med(runs, "docs_per_second")
                lo = min(r["docs_per_second"] for r in runs)
                hi = max(r["docs_per_second"] for r in runs)
                spread = f" ({lo:,.0f}–{hi:,.0f})" if len(runs) > 1 else ""
                def ratio(x):
                    return f"{dps / x:.2f}" if x else "—"
                def fmt(x, f):
                    return f.format(x) if x is not None else "—"
                rss = med(runs, "rss_kib")
                lines.append(f"| {shards} | {LABELS[name]} | {len(runs)} | {dps:,.0f}{spread} | "
                             f"{ratio(ref['server'])} | {ratio(ref['ceiling'])} | "
                             f"{fmt(med(runs, 'node_cpu', True), '{:.0f}')} | {fmt(med(runs, 'cpu', True), '{:.1f}')} | "
                             f"{fmt(rss and rss / 1024, '{:.0f} MiB')} | {fmt(med(runs, 'other_cores'), '{:.2f}')} |")
        lines.append("")
        return lines

    def impact_table(self):
        imp = self.impact
        a = self.args
        ws = imp["windows"]
        # The reference is the quieter of the no-copy windows (before and
        # after the copies): a node still warming up must not flatter the
        # copies.
        quiet = [w for w in ws if w["name"].endswith("(no copy)") and w.get("p99_ms")]
        base = min(quiet, key=lambda w: w["p99_ms"], default=None)
        full = next((w for w in ws if w["name"] == "normal copy"), None)
        rate = f"{imp['rate']:g} queries/s each" if imp["rate"] else "back to back"
        probe = (f"the daemon's default, then `{imp['daemon_search_probe']}`" if imp.get("compare_default_probe")
                 else f"`{imp['daemon_search_probe']}`" if imp["daemon_search_probe"] else "the daemon's default")
        lines = [f"Search impact: {imp['clients']} clients ({rate}) searching {imp['index']} "
                 f"(source, {imp['shards']} primary shards) with `match` queries of 2–3 words on `content`, "
                 f"10 hits; latency per query at the client. [copy] search_probe: {probe}.", "",
                 "| window | seconds | queries | search p50 ms | search p99 ms | p99 × no copy | copy docs/s | "
                 "copy % of full speed | node cores | machine busy cores | node young GC ms/s | reindexd peak RSS |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        def fmt(x, f):
            return f.format(x) if x is not None else "—"
        for w in ws:
            x = w["p99_ms"] / base["p99_ms"] if base and base.get("p99_ms") and w.get("p99_ms") else None
            dps = w.get("copy_docs_per_second")
            pct = 100 * dps / full["copy_docs_per_second"] if dps and full and full.get("copy_docs_per_second") else None
            rss = w.get("rss_kib")
            failed = f" ({w['errors']} failed)" if w["errors"] else ""
            lines.append(f"| {w['name']} | {w['seconds']:.1f} | {w['queries']}{failed} | "
                         f"{fmt(w['p50_ms'], '{:.1f}')} | {fmt(w['p99_ms'], '{:.1f}')} | {fmt(x, '{:.2f}')} | "
                         f"{fmt(dps, '{:,.0f}')} | {fmt(pct, '{:.0f} %')} | {fmt(w.get('node_cores'), '{:.2f}')} | "
                         f"{fmt(w.get('machine_cores'), '{:.2f}')} | {fmt(w.get('young_gc_ms_per_s'), '{:.1f}')} | "
                         f"{fmt(rss and rss / 1024, '{:.0f} MiB')} |")
        lines.append("")
        if base:
            lines.append(f"p99 × no copy: against the quieter no-copy window, {base['name']} "
                         f"(p99 {base['p99_ms']:.1f} ms).")
        lines.append("Copy windows: from the first to the last status poll (every 0.5 s) that saw the copy "
                     "running; copy docs/s: documents copied / the copy phase's seconds (reindexd's progress). "
                     f"{a.docs:,} documents per copy.")
        targets = []
        for bg in (w for w in ws if w["name"].startswith("background copy")):
            if not (base and base.get("p99_ms") and bg.get("p99_ms")):
                continue
            x = bg["p99_ms"] / base["p99_ms"]
            which = bg["name"][len("background copy"):].lstrip(", ")
            which = f" ({which})" if which else ""
            targets.append(f"background{which} p99 = {x:.2f}× no copy (target ≤ 1.5×: "
                           f"{'met' if x <= 1.5 else 'NOT met'})")
            if full and full.get("copy_docs_per_second") and bg.get("copy_docs_per_second"):
                pct = 100 * bg["copy_docs_per_second"] / full["copy_docs_per_second"]
                targets.append(f"background{which} copy = {pct:.0f} % of full speed (target ≥ 50 %: "
                               f"{'met' if pct >= 50 else 'NOT met'})")
        if targets:
            lines.append("")
            lines.append("Targets: " + "; ".join(targets) + ".")
        lines.append("")
        return lines

    def profile_table(self):
        """--node-profile: per shard count and engine, the median run's
        samples of the node by thread group and by kind of work."""
        kinds = [k for k, _ in KINDS]
        lines = ["Where the node's CPU went (Java Flight Recorder execution samples of the node during the "
                 "median run; share of samples by thread pool, and share whose stack is in JSON, Lucene "
                 "indexing or stored-field reads — a sample may count for several kinds or none):", "",
                 "| shards | engine | samples | node CPU s / 1M docs | " + " | ".join(GROUP_ORDER) + " | "
                 + " | ".join(kinds) + " |",
                 "|---:|---|---:|---:|" + "---:|" * (len(GROUP_ORDER) + len(kinds))]
        for shards in sorted({r["shards"] for r in self.results}):
            for name in NAMES:
                r = self.median_run(shards, name)
                prof = r and r.get("node_profile")
                if not prof:
                    continue
                cpu = f"{r['node_cpu'] * 1e6 / r['docs']:.0f}" if r.get("node_cpu") is not None else "—"
                cells = [f"{100 * prof['groups'][g]:.0f} %" for g in GROUP_ORDER]
                cells += [f"{100 * prof['kinds'][k]:.0f} %" for k in kinds]
                lines.append(f"| {shards} | {LABELS[name]} | {prof['samples']:,} | {cpu} | " + " | ".join(cells) + " |")
        lines.append("")
        return lines
