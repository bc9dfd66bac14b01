"""What a run prints and saves: the machine, the markdown table, results.json."""

import json
import os
import platform
import time

from .common import LABELS, NAMES


class Report:
    """Bench steps that describe the run."""

    def save(self):
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump({"machine": self.machine(), "results": self.results}, f, indent=2)

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
        m = self.machine()
        a = self.args
        by = {r["name"]: r for r in self.results}
        server = by.get("server")
        ceiling = by.get("ceiling")
        lines = []
        lines.append(f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}; "
                     f"{m['engine']} single node on the same machine ({m['node']}); "
                     f"reindexd {m['reindexd']}; {m['date']}.")
        lines.append(f"Data: {a.docs:,} wiki documents (scripts/gen-kb --seed {a.seed} --doc-bytes {a.doc_bytes} "
                     f"--routing-every {a.routing_every}), source {self.source_shards} primary shards, "
                     f"{self.source_bytes / 2**20:.0f} MiB on disk; targets from mappings/wiki.v2.json with "
                     f"refresh_interval -1, number_of_replicas 0.")
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
                goals.append(f"reindexd / _reindex = {x:.2f} (goal ≥ 1.20: {'met' if x >= 1.2 else 'NOT met'})")
            if ceiling:
                x = rd["docs_per_second"] / ceiling["docs_per_second"]
                goals.append(f"reindexd / ceiling = {x:.2f} (goal ≥ 0.85: {'met' if x >= 0.85 else 'NOT met'})")
            if rd.get("rss_kib"):
                mib = rd["rss_kib"] / 1024
                goals.append(f"reindexd peak RSS = {mib:.0f} MiB at {a.docs:,} docs (goal ≤ 100 MiB: "
                             f"{'met' if mib <= 100 else 'NOT met'})")
            lines.append("Goals: " + "; ".join(goals) + ".")
        return "\n".join(lines)
