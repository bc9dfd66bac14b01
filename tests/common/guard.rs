//! Names no other test uses, and guards that delete what a test made under
//! its name when they are dropped — also when the test panics, so a failing
//! test leaves nothing behind on the shared node.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reindexd::es::{ConnectOptions, EsClient};

use super::cluster;

/// A prefix unique to this test in this run, so tests run in parallel and
/// never see each other's indexes: `t{pid}_{n}_{label}`.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t{}_{}_{}", std::process::id(), n, label.to_lowercase())
}

/// Deletes every index whose name starts with its prefix when dropped,
/// even when the test panics: a test owns one guard per prefix.
pub struct IndexGuard {
    pub prefix: String,
    /// How to reach the cluster for the cleanup (directly, never through a
    /// test's fault proxy).
    options: ConnectOptions,
}

impl IndexGuard {
    /// A fresh [`unique`] prefix on the main test node, guarded.
    pub fn new(label: &str) -> IndexGuard {
        IndexGuard::on(cluster::options(&cluster::es_url()), unique(label))
    }

    /// Guards `prefix` on the cluster `options` reach.
    pub fn on(options: ConnectOptions, prefix: String) -> IndexGuard {
        IndexGuard { prefix, options }
    }

    /// An index name under the guarded prefix.
    pub fn index(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.prefix)
    }
}

impl Drop for IndexGuard {
    /// Cleans up on a runtime of its own, on a thread of its own: drop
    /// cannot await, the test's runtime may be the one unwinding, and a
    /// current-thread runtime blocked here could not drive its own client's
    /// connections — so the cleanup makes a client of its own too.
    fn drop(&mut self) {
        let (prefix, mut options) = (self.prefix.clone(), self.options.clone());
        options.request_timeout = Duration::from_secs(30);
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(async {
                let client = EsClient::connect(&options).map_err(|e| e.to_string())?;
                for index in client
                    .list_indexes(&format!("{prefix}*"))
                    .await
                    .map_err(|e| e.to_string())?
                {
                    client
                        .delete_index(&index)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the cleanup thread panicked".into()));
        if let Err(e) = cleaned {
            // A second panic while unwinding would abort the test binary
            // and hide the first failure: then only say so.
            let what = format!("cleaning up the indexes {}* failed: {e}", self.prefix);
            if std::thread::panicking() {
                eprintln!("{what}");
            } else {
                panic!("{what}");
            }
        }
    }
}
