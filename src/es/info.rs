//! Which engine and version answer at the cluster URL, what they support,
//! and where their APIs differ: the one place that knows each engine's
//! differences (minimum versions, point in time, `_shard_doc`).

use std::fmt;

use elasticsearch::http::Method;
use serde::Deserialize;

use super::{EsClient, EsError};

/// The search engine family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Elasticsearch,
    OpenSearch,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Elasticsearch => "elasticsearch",
            Engine::OpenSearch => "opensearch",
        })
    }
}

/// The point-in-time API differs by family in its paths and bodies (the
/// rest of the read path is the same): Elasticsearch's `_pit` takes one
/// `id`, OpenSearch's `_search/point_in_time` a list of `pit_id`s.
impl Engine {
    /// Where a point in time over `index` (already path-escaped) is opened.
    pub fn pit_open_path(self, index: &str) -> String {
        match self {
            Engine::Elasticsearch => format!("/{index}/_pit"),
            Engine::OpenSearch => format!("/{index}/_search/point_in_time"),
        }
    }

    /// Where and with what body the point in time `id` is closed.
    pub fn pit_close_request(self, id: &str) -> (&'static str, serde_json::Value) {
        match self {
            Engine::Elasticsearch => ("/_pit", serde_json::json!({ "id": id })),
            Engine::OpenSearch => (
                "/_search/point_in_time",
                serde_json::json!({ "pit_id": [id] }),
            ),
        }
    }
}

/// A release number; pre-release suffixes (`-SNAPSHOT`) are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    const fn at_least(self, major: u32, minor: u32) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What `GET /` told about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub engine: Engine,
    pub version: Version,
    pub cluster_name: String,
}

impl ServerInfo {
    /// Whether point in time + `search_after` can be used with slices.
    /// Elasticsearch has PIT from 7.10; OpenSearch from 2.4.
    pub fn supports_pit(&self) -> bool {
        match self.engine {
            Engine::Elasticsearch => self.version.at_least(7, 10),
            Engine::OpenSearch => self.version.at_least(2, 4),
        }
    }

    /// Why reindexd does not run against this engine, when it does not:
    /// below Elasticsearch 7.17 and OpenSearch 2.12. Alias removals with
    /// `must_exist` (every transition's compare-and-set on aliases) need
    /// Elasticsearch 7.9 / OpenSearch 2.12, and sliced point-in-time reads
    /// a later 7.x than 7.10; 7.17 is the last 7.x line.
    pub fn unsupported(&self) -> Option<String> {
        let (major, minor) = match self.engine {
            Engine::Elasticsearch => (7, 17),
            Engine::OpenSearch => (2, 12),
        };
        (!self.version.at_least(major, minor)).then(|| {
            format!(
                "{self} is too old: reindexd needs {} {major}.{minor} or later (alias changes with must_exist, sliced point-in-time reads)",
                self.engine
            )
        })
    }

    /// Whether a PIT search may sort on the `_shard_doc` tiebreaker.
    pub fn supports_shard_doc(&self) -> bool {
        match self.engine {
            Engine::Elasticsearch => self.version.at_least(7, 12),
            Engine::OpenSearch => self.version.at_least(3, 3),
        }
    }
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.engine, self.version)
    }
}

#[derive(Deserialize)]
struct RootResponse {
    cluster_name: String,
    version: RootVersion,
}

#[derive(Deserialize)]
struct RootVersion {
    number: String,
    distribution: Option<String>,
}

/// Reads `GET /` into a [`ServerInfo`].
pub(super) fn parse_root(body: &[u8]) -> Result<ServerInfo, String> {
    let root: RootResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let engine = match root.version.distribution.as_deref() {
        Some("opensearch") => Engine::OpenSearch,
        None | Some("elasticsearch") => Engine::Elasticsearch,
        Some(other) => return Err(format!("unknown engine distribution {other:?}")),
    };
    let version = Version::parse(&root.version.number)
        .ok_or_else(|| format!("cannot read version number {:?}", root.version.number))?;
    Ok(ServerInfo {
        engine,
        version,
        cluster_name: root.cluster_name,
    })
}

impl EsClient {
    /// `GET /`: checks that the cluster answers and tells which engine it is.
    pub async fn info(&self) -> Result<ServerInfo, EsError> {
        let bytes = self.send_ok(Method::Get, "/", &[], None, None).await?;
        parse_root(&bytes).map_err(|detail| EsError::Decode {
            call: "GET /".into(),
            detail,
        })
    }

    /// `GET /_cluster/health`: the cluster's status word (green, yellow, red).
    pub async fn health_status(&self) -> Result<String, EsError> {
        #[derive(Deserialize)]
        struct Health {
            status: String,
        }
        let health: Health = self
            .send_json(Method::Get, "/_cluster/health", &[], None)
            .await?;
        Ok(health.status)
    }
}

impl EsClient {
    /// Waits (up to 30 s) until the master has no cluster-state change
    /// queued: after a lost answer, a change still waiting there would
    /// apply after a read-back said it had not.
    pub async fn wait_for_pending_changes(&self) -> Result<(), EsError> {
        let query = [("wait_for_events", "languid"), ("timeout", "30s")];
        self.send_ok(Method::Get, "/_cluster/health", &query, None, None)
            .await
            .map(drop)
    }

    /// Waits until `index`'s primaries are active (health yellow or green).
    pub async fn wait_for_index(
        &self,
        index: &str,
        timeout: std::time::Duration,
    ) -> Result<(), EsError> {
        let path = format!("/_cluster/health/{}", super::seg(index));
        let secs = format!("{}s", timeout.as_secs().max(1));
        // A new index's first primary may report yellow while still
        // initialising: wait for it to be active too.
        let query = [
            ("wait_for_status", "yellow"),
            ("wait_for_active_shards", "1"),
            ("wait_for_no_initializing_shards", "true"),
            ("timeout", secs.as_str()),
        ];
        #[derive(Deserialize)]
        struct Health {
            timed_out: bool,
        }
        let health: Health = self.send_json(Method::Get, &path, &query, None).await?;
        if health.timed_out {
            return Err(EsError::Status {
                call: format!("GET {path}"),
                status: 408,
                error_type: None,
                reason: format!("{index} did not become available within {secs}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_older_than_the_minimum_are_refused_by_name() {
        let info = |engine, v: &str| ServerInfo {
            engine,
            version: Version::parse(v).unwrap(),
            cluster_name: "c".into(),
        };
        for (engine, v) in [
            (Engine::Elasticsearch, "7.17.29"),
            (Engine::Elasticsearch, "8.19.21"),
            (Engine::Elasticsearch, "9.1.0"),
            (Engine::OpenSearch, "2.12.0"),
            (Engine::OpenSearch, "2.19.6"),
            (Engine::OpenSearch, "3.6.0"),
        ] {
            assert_eq!(info(engine, v).unsupported(), None, "{engine} {v}");
        }
        for (engine, v) in [
            (Engine::Elasticsearch, "7.10.2"),
            (Engine::Elasticsearch, "6.8.23"),
            (Engine::OpenSearch, "2.11.1"),
            (Engine::OpenSearch, "1.3.19"),
        ] {
            let why = info(engine, v).unsupported().expect("refused");
            assert!(why.contains(v) && why.contains("or later"), "{why}");
        }
    }

    /// The read path per engine and version of the test matrix (and the
    /// edges around it): point in time, and the `_shard_doc` tiebreaker
    /// that lets it be sliced freely.
    #[test]
    fn read_features_per_engine_and_version() {
        let cases = [
            (Engine::Elasticsearch, "7.17.29", true, true),
            (Engine::Elasticsearch, "8.19.21", true, true),
            (Engine::Elasticsearch, "9.1.0", true, true),
            (Engine::Elasticsearch, "7.11.2", true, false),
            (Engine::OpenSearch, "2.19.6", true, false),
            (Engine::OpenSearch, "3.2.0", true, false),
            (Engine::OpenSearch, "3.6.0", true, true),
            (Engine::OpenSearch, "2.3.0", false, false),
        ];
        for (engine, v, pit, shard_doc) in cases {
            let info = ServerInfo {
                engine,
                version: Version::parse(v).unwrap(),
                cluster_name: "c".into(),
            };
            assert_eq!(
                (info.supports_pit(), info.supports_shard_doc()),
                (pit, shard_doc),
                "{info}"
            );
        }
    }

    #[test]
    fn point_in_time_requests_per_family() {
        assert_eq!(Engine::Elasticsearch.pit_open_path("kb-1"), "/kb-1/_pit");
        assert_eq!(
            Engine::OpenSearch.pit_open_path("kb-1"),
            "/kb-1/_search/point_in_time"
        );
        let (path, body) = Engine::Elasticsearch.pit_close_request("abc");
        assert_eq!(
            (path, body.to_string()),
            ("/_pit", r#"{"id":"abc"}"#.into())
        );
        let (path, body) = Engine::OpenSearch.pit_close_request("abc");
        assert_eq!(
            (path, body.to_string()),
            ("/_search/point_in_time", r#"{"pit_id":["abc"]}"#.into())
        );
    }

    /// `GET /` of the Elasticsearch 8/9 test engines, as our test module
    /// answers it (no `distribution`, like Elasticsearch's own).
    #[test]
    fn reads_the_elasticsearch_root_answer() {
        let es9 = br#"{"name":"reindexd-test-node","cluster_name":"reindexd-test","version":{"number":"9.1.0","build_flavor":"default","build_type":"zip","build_hash":"00e7d33bf08f1476229d9d1642e2da46cfebdd53","build_date":"2025-07-23T22:09:53.891289976Z","build_snapshot":false,"lucene_version":"10.2.2","minimum_wire_compatibility_version":"8.19.0","minimum_index_compatibility_version":"8.0.0"}}"#;
        let info = parse_root(es9).unwrap();
        assert_eq!(info.to_string(), "elasticsearch 9.1.0");
        assert_eq!(info.cluster_name, "reindexd-test");
        assert_eq!(info.unsupported(), None);
    }

    #[test]
    fn detects_opensearch_and_elasticsearch() {
        let os = br#"{"name":"n","cluster_name":"c","version":{"distribution":"opensearch","number":"2.19.6","build_type":"tar"},"tagline":"The OpenSearch Project"}"#;
        let info = parse_root(os).unwrap();
        assert_eq!(info.engine, Engine::OpenSearch);
        assert_eq!(info.version, Version::parse("2.19.6").unwrap());
        assert!(info.supports_pit());
        assert!(!info.supports_shard_doc());

        let es = br#"{"name":"n","cluster_name":"c","version":{"number":"8.15.0-SNAPSHOT","build_flavor":"default"}}"#;
        let info = parse_root(es).unwrap();
        assert_eq!(info.engine, Engine::Elasticsearch);
        assert_eq!(info.to_string(), "elasticsearch 8.15.0");
        assert!(info.supports_shard_doc());
    }

    #[test]
    fn rejects_what_is_not_a_cluster() {
        assert!(parse_root(b"<html></html>").is_err());
        assert!(parse_root(br#"{"cluster_name":"c","version":{"number":"x"}}"#).is_err());
    }

    #[test]
    fn version_ordering() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("3.3.0") > v("2.19.6"));
        assert_eq!(v("7"), v("7.0.0"));
        assert!(v("7.10.1").at_least(7, 10));
        assert!(!v("7.9.9").at_least(7, 10));
    }
}
