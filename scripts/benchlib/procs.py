"""Processes: CPU seconds from /proc, commands run under GNU time."""

import re
import subprocess
import time


def cpu_ticks(pid):
    """user+sys CPU seconds of a process (USER_HZ = 100)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / 100.0
    except (OSError, IndexError, ValueError):
        return None


def machine_busy():
    """Busy CPU seconds of the whole machine (all cores; /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / 100.0
    except (OSError, ValueError, IndexError):
        return None


def parse_time_v(path):
    """(user+sys seconds, peak RSS KiB) from /usr/bin/time -v output."""
    text = open(path).read()
    def grab(label):
        m = re.search(re.escape(label) + r":\s*([0-9.]+)", text)
        return float(m.group(1)) if m else None
    user, sys_ = grab("User time (seconds)"), grab("System time (seconds)")
    rss = grab("Maximum resident set size (kbytes)")
    return ((user or 0) + (sys_ or 0)), rss


def run_timed(cmd, logfile, timefile, env=None, cwd=None):
    """Runs cmd under /usr/bin/time -v; returns (exit status, wall seconds)."""
    full = ["/usr/bin/time", "-v", "-o", timefile] + cmd
    started = time.monotonic()
    with open(logfile, "w") as out:
        rc = subprocess.call(full, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    return rc, time.monotonic() - started
