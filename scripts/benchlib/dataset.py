"""The dataset: reindexd's config, the loaded source, the bulk NDJSON of the
write ceiling and the body every other target is created from."""

import json
import os
import subprocess
import time

from .common import BULK_SETTINGS, LOGICAL, PREFIX, ROOT, BenchError, log


class Dataset:
    """Bench steps that prepare the source and the targets."""

    def write_config(self):
        a = self.args
        self.config = os.path.join(self.work, "reindexd.toml")
        self.mapping = os.path.join(self.work, "mappings", "wiki.json")
        copy = [f"page_size = {a.page_size}", f'batch_bytes = "{a.batch_bytes}"',
                f"max_concurrency = {a.max_concurrency}"]
        if a.slices is not None:
            copy.insert(0, f"slices = {a.slices}")
        if getattr(a, "daemon_search_probe", None):
            copy.append(f"search_probe = '{a.daemon_search_probe}'")
        with open(self.config, "w") as f:
            f.write(f"""[elasticsearch]
url = "{self.node.url}"
timeout = "120s"

[api]
listen = "127.0.0.1:0"

[migration]
prefix = "{PREFIX}"
state_index = "{PREFIX}state"

[copy]
{chr(10).join(copy)}

[log]
level = "warn"

[[indexes]]
name = "{LOGICAL}"
mapping = "mappings/wiki.json"
""")
        self.copy_settings = ", ".join(copy)

    def rd(self, *args, check=True):
        p = subprocess.run([self.reindexd, "--config", self.config, *args], text=True, capture_output=True)
        if check and p.returncode != 0:
            raise BenchError(f"reindexd {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p

    def alias_index(self, alias):
        got = self.node.call("GET", f"/_alias/{alias}", ok=(200, 404))
        if not isinstance(got, dict) or "error" in got or "status" in got:
            return None
        names = [k for k in got]
        return names[0] if len(names) == 1 else None

    def prepare_source(self):
        """The loaded source (reused or loaded anew), the ceiling's NDJSON and
        the target body."""
        self.put_mapping("wiki.json")
        source = self.reusable_source()
        if source:
            log(f"reusing the loaded source {source} ({self.args.docs} documents)")
        else:
            source = self.load_source()
        self.source = source
        stats = self.node.call("GET", f"/{source}/_stats/store,docs")["_all"]["primaries"]
        self.source_bytes = stats["store"]["size_in_bytes"]
        self.source_shards = self.shards_of(source)
        self.sources[self.source_shards] = {"index": source, "bytes": self.source_bytes}
        if self.wanted("ceiling"):
            self.write_ceiling_ndjson()
        self.write_target_body()

    def reusable_source(self):
        """With --reuse-source, the loaded source when it is live and of the
        wanted size and shards; else None."""
        a = self.args
        source = self.alias_index(f"{PREFIX}{LOGICAL}_read")
        if not (a.reuse_source and source):
            return None
        try:
            view = json.loads(self.rd("status", LOGICAL, "--json").stdout)[0]
            reuse = (view["phase"] == "live" and self.node.count(source) == a.docs
                     and self.shards_of(source) == self.wanted_shards())
        except (BenchError, ValueError, KeyError, IndexError):
            reuse = False
        return source if reuse else None

    def load_source(self):
        """A new source: `reindexd init`, then gen-kb through the write alias
        (loading with the bulk tool). Returns its name."""
        a = self.args
        log(f"removing {PREFIX}* indexes")
        for row in self.node.call("GET", f"/_cat/indices/{PREFIX}*?format=json&h=index&expand_wildcards=all"):
            self.node.delete(row["index"])
        self.rd("init", LOGICAL)
        source = self.alias_index(f"{PREFIX}{LOGICAL}_read")
        log(f"loading {a.docs} documents into {source} through {PREFIX}{LOGICAL}_write (gen-kb)")
        t = time.monotonic()
        subprocess.run([os.path.join(ROOT, "scripts", "gen-kb"), "--url", self.node.url,
                        "--index", f"{PREFIX}{LOGICAL}_write", "--count", str(a.docs),
                        "--seed", str(a.seed), "--doc-bytes", str(a.doc_bytes),
                        "--routing-every", str(a.routing_every), "--refresh", "--quiet",
                        "--bulk-bin", self.bulk],
                       check=True)
        log(f"loaded in {time.monotonic() - t:.0f} s")
        return source

    def write_ceiling_ndjson(self):
        """The dataset's bulk NDJSON for the write ceiling (same generator
        arguments), kept in --work for the next run of the same size."""
        a = self.args
        self.ndjson = os.path.join(self.work, f"data-{a.docs}-{a.seed}-{a.doc_bytes}-{a.routing_every}.ndjson")
        for old in os.listdir(self.work):
            if old.startswith("data-") and old.endswith(".ndjson") and os.path.join(self.work, old) != self.ndjson:
                os.remove(os.path.join(self.work, old))
        if not os.path.exists(self.ndjson):
            log("writing the dataset's bulk NDJSON for the write ceiling (gen-kb --output)")
            subprocess.run([os.path.join(ROOT, "scripts", "gen-kb"), "--index", f"{PREFIX}ceiling",
                            "--count", str(a.docs), "--seed", str(a.seed), "--doc-bytes", str(a.doc_bytes),
                            "--routing-every", str(a.routing_every), "--output", self.ndjson + ".part",
                            "--quiet"], check=True)
            os.rename(self.ndjson + ".part", self.ndjson)

    def write_target_body(self):
        """The one body every non-reindexd target is created from."""
        body = self.mapping_body("wiki.v2.json")
        settings = body.setdefault("settings", {})
        nested = settings.get("index", {}) if isinstance(settings.get("index"), dict) else {}
        for key in BULK_SETTINGS:
            settings.pop(key, None)
            settings.pop("index." + key, None)
            nested.pop(key, None)
        settings.update(BULK_SETTINGS)
        self.target_body = body
        self.target_body_file = os.path.join(self.work, "target-body.json")
        json.dump(body, open(self.target_body_file, "w"))

    def mapping_body(self, name):
        """mappings/NAME, with the current --shards count when given."""
        with open(os.path.join(ROOT, "mappings", name)) as f:
            body = json.load(f)
        if self.shards is not None:
            settings = body.setdefault("settings", {})
            if isinstance(settings.get("index"), dict):
                settings["index"].pop("number_of_shards", None)
            settings.pop("index.number_of_shards", None)
            settings["number_of_shards"] = self.shards
        return body

    def put_mapping(self, name):
        """Makes mappings/NAME the mapping reindexd's next generation uses."""
        with open(self.mapping, "w") as f:
            json.dump(self.mapping_body(name), f, indent=2)

    def wanted_shards(self):
        settings = self.mapping_body("wiki.json").get("settings", {})
        nested = settings.get("index") if isinstance(settings.get("index"), dict) else {}
        got = settings.get("number_of_shards", settings.get("index.number_of_shards", nested.get("number_of_shards", 1)))
        return int(got)

    def shards_of(self, index):
        got = self.node.call("GET", f"/{index}/_settings")[index]["settings"]["index"]["number_of_shards"]
        return int(got)

    def create_target(self, name):
        self.node.delete(name)
        self.node.call("PUT", f"/{name}", self.target_body)
