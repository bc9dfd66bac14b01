"""What the measurements run: reindexd and the bulk tool built from this
checkout, and the other engines' clients installed into a cache."""

import json
import os
import shutil
import subprocess
import sys

from .common import CACHE, ROOT, BenchError, log, sh


class Tools:
    """Bench steps that build or install the programs measured."""

    def build(self):
        bindir = os.path.join(self.work, "bin")
        os.makedirs(bindir, exist_ok=True)
        self.reindexd = os.path.join(bindir, "reindexd")
        # The bulk tool (examples/bulk.rs): loads the source (gen-kb pipes
        # into it) and replays the write ceiling, through reindexd's own
        # batcher and bulk writer.
        self.bulk = os.path.join(bindir, "bulk")
        if self.args.reindexd_bin:
            shutil.copy2(self.args.reindexd_bin, self.reindexd)
        else:
            # Always: the source is set up through reindexd (init, write alias).
            log("building reindexd (release)")
            # A private copy: other builds of target/ must not change it mid-run.
            shutil.copy2(cargo_executable(["--bin", "reindexd"], "reindexd"), self.reindexd)
        if getattr(self.args, "bulk_bin", None):
            shutil.copy2(self.args.bulk_bin, self.bulk)
        else:
            log("building examples/bulk.rs (release)")
            shutil.copy2(cargo_executable(["--example", "bulk"], "bulk"), self.bulk)
        try:
            self.commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
            if sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "src"]).strip():
                self.commit += " + uncommitted src changes"
        except (subprocess.CalledProcessError, OSError):
            self.commit = "unknown"

    def install_tools(self):
        os.makedirs(CACHE, exist_ok=True)
        self.python = None
        if self.wanted("python"):
            venv = os.path.join(CACHE, "venv")
            py = os.path.join(venv, "bin", "python")
            pkg = "opensearch-py" if self.engine == "opensearch" else "elasticsearch"
            module = "opensearchpy" if self.engine == "opensearch" else "elasticsearch"
            if not os.path.exists(py):
                log(f"creating {venv}")
                subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            if subprocess.call([py, "-c", f"import {module}"], stderr=subprocess.DEVNULL) != 0:
                log(f"pip install {pkg} (into {venv})")
                subprocess.run([py, "-m", "pip", "install", "--quiet", pkg], check=True)
            self.python = py
            self.python_pkg = pkg + " " + sh([py, "-c", f"import {module}; print({module}.__versionstr__)"]).strip()
        self.elasticdump = None
        if self.wanted("elasticdump"):
            prefix = os.path.join(CACHE, "npm")
            exe = os.path.join(prefix, "node_modules", ".bin", "elasticdump")
            if not os.path.exists(exe):
                log(f"npm install elasticdump (into {prefix})")
                os.makedirs(prefix, exist_ok=True)
                subprocess.run(["npm", "install", "--no-fund", "--no-audit", "--prefix", prefix, "elasticdump"],
                               check=True, stdout=subprocess.DEVNULL)
            self.elasticdump = exe
            self.elasticdump_version = sh([exe, "--version"]).strip()


def cargo_executable(target, name):
    """Builds `target` (cargo target flags) in release; returns the path
    cargo reports for the executable `name`."""
    out = subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", *target, "--message-format=json"],
                         cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE).stdout
    exe = None
    for line in out.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == name:
            exe = m.get("executable") or exe
    if not exe:
        raise BenchError(f"cargo did not report the {name} executable")
    return exe
