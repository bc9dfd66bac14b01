"""The node: HTTP calls, and starting and stopping a local one
(scripts/test-cluster)."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from .common import ROOT, BenchError, log, sh


class Node:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def call(self, method, path, body=None, ok=(200, 201), timeout=600):
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            headers["content-type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if ok is not None and status not in ok:
            raise BenchError(f"{method} {path} answered {status}: {raw[:500].decode(errors='replace')}")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def gc(self):
        """(collections, milliseconds) of the JVM's young and old
        collectors, summed over the nodes; None when the node does not
        answer."""
        try:
            stats = self.call("GET", "/_nodes/stats/jvm?filter_path=nodes.*.jvm.gc", timeout=10)
        except (OSError, BenchError):
            return None
        total = [0, 0, 0, 0]
        for node in (stats or {}).get("nodes", {}).values():
            collectors = node["jvm"]["gc"]["collectors"]
            for i, name in enumerate(("young", "old")):
                total[2 * i] += collectors.get(name, {}).get("collection_count", 0)
                total[2 * i + 1] += collectors.get(name, {}).get("collection_time_in_millis", 0)
        return tuple(total)

    def up(self):
        try:
            self.call("GET", "/", timeout=3)
            return True
        except (OSError, BenchError):
            return False

    def count(self, index):
        self.call("POST", f"/{index}/_refresh")
        return self.call("GET", f"/{index}/_count")["count"]

    def delete(self, index):
        self.call("DELETE", f"/{index}?expand_wildcards=all", ok=(200, 404))

    def wait_quiet(self, limit=300):
        """Waits until no merge runs anywhere (earlier measurements' and the
        load's background work must not bleed into the next one)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            stats = self.call("GET", "/_nodes/stats/indices/merge")
            if all(n["indices"]["merges"]["current"] == 0 for n in stats["nodes"].values()):
                time.sleep(2)
                return
            time.sleep(1)
        log("merges still running after %ds; measuring anyway" % limit)



class NodeControl:
    """Bench steps that start, inspect and stop the node."""

    def start_node(self):
        port = str(self.args.port)
        url = f"http://127.0.0.1:{port}"
        self.node = Node(url)
        if self.node.up():
            log(f"using the node already running at {url}")
        else:
            log(f"starting a local node on port {port} (scripts/test-cluster)")
            out = sh([os.path.join(ROOT, "scripts", "test-cluster"), "start", "--port", port], cwd=ROOT)
            url = out.strip().splitlines()[-1]
            self.node = Node(url)
            self.started_node = True
        info = self.node.call("GET", "/")
        self.engine = info["version"].get("distribution", "elasticsearch")
        self.version = info["version"]["number"]
        state_dir = os.environ.get("REINDEXD_TEST_CLUSTER_DIR", f"/tmp/reindexd-test-cluster-{port}")
        try:
            self.node_pid = int(open(os.path.join(state_dir, "node.pid")).read().strip())
        except (OSError, ValueError):
            self.node_pid = None
        jvm = self.node.call("GET", "/_nodes/_local/jvm")
        heap = next(iter(jvm["nodes"].values()))["jvm"]["mem"]["heap_max_in_bytes"]
        self.heap = f"{heap / 2**30:.1f} GiB heap"

    def stop_node(self):
        if self.started_node and not self.args.keep_node:
            log("stopping the node")
            subprocess.run([os.path.join(ROOT, "scripts", "test-cluster"), "stop", "--port", str(self.args.port)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
