//! How a checked configuration's `[elasticsearch]` section becomes the
//! options of the HTTP client: credentials and the CA are read here, when
//! the client is built, so `config` knows nothing of HTTP clients.

use super::{Auth, ConnectOptions};
use crate::config::{ClusterAuth, ClusterConfig, ConfigError};

impl ConnectOptions {
    /// The client options `cluster` describes; reads its password or API
    /// key and CA files now. An unreadable file is named by its key.
    pub fn from_config(cluster: &ClusterConfig) -> Result<Self, ConfigError> {
        let auth = match &cluster.auth {
            ClusterAuth::None => Auth::None,
            ClusterAuth::Basic { username, password } => Auth::Basic {
                username: username.clone(),
                password: password.read("elasticsearch.password")?,
            },
            ClusterAuth::ApiKey(key) => Auth::ApiKey(key.read("elasticsearch.api_key")?),
        };
        let ca_pem = match &cluster.ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                ConfigError::key(
                    "elasticsearch.ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
        };
        Ok(ConnectOptions {
            urls: cluster.urls.clone(),
            auth,
            ca_pem,
            request_timeout: cluster.timeout,
        })
    }
}
