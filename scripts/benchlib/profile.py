"""--node-profile: where the node's own CPU goes during a measurement, from
Java Flight Recorder (shipped with the node's JDK: jcmd starts and stops a
recording, `jfr print` reads it). Every sample of a thread running Java
code counts once: by the thread's pool (write, search, HTTP workers,
merges, ...), and by what its stack is doing (JSON, Lucene indexing,
reading stored fields)."""

import os
import re
import subprocess

from .common import BenchError, log

# Thread names look like `opensearch[node][write][T#1]`; merges run on
# `...[[index][0]: Lucene Merge Thread #0]`.
POOL = re.compile(r"\]\[([a-z_]+)\]\[T#\d+\]")
GROUPS = {
    "write": "write",
    "search": "search",
    "http_server_worker": "HTTP",
    "transport_worker": "HTTP",
    "refresh": "refresh/flush",
    "flush": "refresh/flush",
}
GROUP_ORDER = ("write", "search", "HTTP", "merge", "refresh/flush", "other")
# What a stack is doing: a sample counts for each kind one of its frames
# belongs to (shares may add up to more or less than 100 %).
KINDS = (
    ("JSON", ("com.fasterxml.jackson.", ".xcontent.")),
    ("Lucene indexing", ("org.apache.lucene.index.IndexingChain", "org.apache.lucene.index.DefaultIndexingChain",
                         "org.apache.lucene.index.DocumentsWriter")),
    ("stored fields read", ("StoredFieldsReader",)),
)


def group_of(thread):
    if "Lucene Merge Thread" in thread:
        return "merge"
    m = POOL.search(thread)
    return GROUPS.get(m.group(1), "other") if m else "other"


def samples(lines):
    """(thread name, [frame, ...]) of each event in the text of `jfr print
    --events jdk.ExecutionSample` (frames top first, e.g.
    `org.apache.lucene.index.IndexingChain.processDocument(int, Iterable) line: 500`)."""
    thread, frames, in_stack = None, [], False
    for line in lines:
        text = line.strip()
        if text.startswith("jdk.ExecutionSample {"):
            thread, frames, in_stack = "", [], False
        elif thread is None:
            continue
        elif text.startswith("sampledThread = "):
            m = re.match(r'sampledThread = "(.*)" \(javaThreadId', text)
            thread = m.group(1) if m else text
        elif text.startswith("stackTrace = ["):
            in_stack = True
        elif in_stack and text == "]":
            in_stack = False
        elif in_stack:
            frames.append(text)
        elif text == "}":
            yield thread, frames
            thread = None


def summarize(events):
    """Shares of samples by thread group and by kind of work, from
    (thread, frames) pairs."""
    groups = dict.fromkeys(GROUP_ORDER, 0)
    kinds = dict.fromkeys((k for k, _ in KINDS), 0)
    total = 0
    for thread, frames in events:
        total += 1
        groups[group_of(thread)] += 1
        for kind, marks in KINDS:
            if any(mark in f for f in frames for mark in marks):
                kinds[kind] += 1
    if total == 0:
        return None
    return {"samples": total,
            "groups": {g: n / total for g, n in groups.items()},
            "kinds": {k: n / total for k, n in kinds.items()}}


class NodeProfile:
    """One JFR recording of the node at a time."""

    def __init__(self, pid, work):
        if pid is None:
            raise BenchError("--node-profile needs the node's pid (a node scripts/test-cluster started)")
        java = os.path.realpath(f"/proc/{pid}/exe")
        self.bin = os.path.dirname(java)
        self.pid = str(pid)
        self.work = work
        for tool in ("jcmd", "jfr"):
            if not os.access(os.path.join(self.bin, tool), os.X_OK):
                raise BenchError(f"--node-profile: no {tool} next to the node's {java} (a full JDK is needed)")

    def _jcmd(self, *args):
        r = subprocess.run([os.path.join(self.bin, "jcmd"), self.pid, *args], text=True, capture_output=True)
        if r.returncode != 0:
            raise BenchError(f"jcmd {' '.join(args)}: {r.stdout.strip()} {r.stderr.strip()}")

    def start(self, tag):
        self.file = os.path.join(self.work, "logs", f"{tag}.jfr")
        if os.path.exists(self.file):
            os.remove(self.file)
        self._jcmd("JFR.start", "name=reindexd-bench", "settings=profile", f"filename={self.file}")

    def stop(self):
        """Ends the recording; returns its summary (None when it holds no sample)."""
        self._jcmd("JFR.stop", "name=reindexd-bench")
        with subprocess.Popen([os.path.join(self.bin, "jfr"), "print", "--stack-depth", "64",
                               "--events", "jdk.ExecutionSample", self.file],
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as jfr:
            summary = summarize(samples(jfr.stdout))
            err = jfr.stderr.read()
        if jfr.returncode != 0:
            raise BenchError(f"jfr print {self.file}: {err.strip()}")
        log(f"  node profile: {summary['samples'] if summary else 0} samples in {self.file}")
        return summary
