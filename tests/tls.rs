//! TLS with a custom CA, basic auth and API keys, for real: Debian's nginx
//! terminates TLS in front of the test node with certificates from a
//! throwaway CA and authenticates like a secured cluster would (basic auth
//! on one port, an API key on another; see `common::tls::TlsProxy`). Good
//! settings work; a wrong CA, a wrong password, a wrong API key or plain
//! HTTP each fail with a one-line reason and leave the node untouched
//! (checked over plain HTTP on the node's own port). No secret ever shows
//! in output, logs (debug and trace) or API answers.
//!
//! Needs `nginx` and `openssl` (`apt-get install -y nginx openssl`); each
//! test runs its own nginx in the foreground from a temp dir.

mod common;

use common::tls::{TlsProxy, TLS_USER as USER};
use common::{es_url, Env, Served};
use reindexd::es::{Auth, ConnectOptions, EsClient};
use reindexd::secret::Secret;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    /// Non-zero exit, and exactly one line on stderr that is not a log line,
    /// `reindexd: ...`, containing every one of `needles`.
    fn fails_with(&self, needles: &[&str]) {
        assert!(matches!(self.code, Some(c) if c != 0), "{self:#?}");
        let is_log = |l: &str| {
            l.len() > 5
                && l.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && l.as_bytes()[4] == b'-'
        };
        let lines: Vec<&str> = (self.stderr.lines())
            .filter(|l| !l.trim().is_empty() && !is_log(l))
            .collect();
        assert_eq!(lines.len(), 1, "one line of reason: {self:#?}");
        assert!(lines[0].starts_with("reindexd: "), "{self:#?}");
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "reason names {needle:?}: {self:#?}"
            );
        }
    }
}

/// `reindexd --config <env's config> --log-level debug args...` with a
/// clean environment; fails when a secret of `proxy` shows in its output.
async fn reindexd(env: &Env, proxy: &TlsProxy, args: &[&str]) -> Run {
    let config = env.config_path().display().to_string();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_reindexd"))
        .args(["--config", &config, "--log-level", "debug"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("the binary runs");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let what = format!("the output of {args:?}");
    proxy.assert_hidden(&what, &format!("{}{}", run.stdout, run.stderr));
    run
}

/// Replaces the `[elasticsearch]` section of the env's config with `lines`.
fn configure(env: &Env, lines: &str) {
    let path = env.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("[elasticsearch]").unwrap();
    let end = text.find("[api]").unwrap();
    let (head, tail) = (&text[..start], &text[end..]);
    let section = format!("[elasticsearch]\ntimeout = \"10s\"\n{lines}\n");
    std::fs::write(&path, format!("{head}{section}{tail}")).unwrap();
}

/// With `lines` as the cluster settings, `init kb` and `status kb` are
/// refused with a reason naming all of `needles`, and the node has no
/// index of this test (not even the state index).
async fn refused(env: &Env, proxy: &TlsProxy, lines: &str, needles: &[&str]) {
    configure(env, lines);
    for command in ["init", "status"] {
        let run = reindexd(env, proxy, &[command, "kb"]).await;
        run.fails_with(needles);
    }
    let none = Vec::<String>::new();
    assert_eq!(env.indexes().await, none, "{lines}: nothing may change");
}

/// `url`, basic auth with the password in `password_file`, `ca_file`.
fn basic(proxy: &TlsProxy, url: &str, password_file: &str, ca_file: &str) -> String {
    let (pw, ca) = (proxy.file(password_file), proxy.file(ca_file));
    format!("url = \"{url}\"\nusername = \"{USER}\"\npassword_file = \"{pw}\"\nca_file = \"{ca}\"")
}

/// `url`, the API key in `key_file`, `ca_file`.
fn keyed(proxy: &TlsProxy, url: &str, key_file: &str, ca_file: &str) -> String {
    let (key, ca) = (proxy.file(key_file), proxy.file(ca_file));
    format!("url = \"{url}\"\napi_key_file = \"{key}\"\nca_file = \"{ca}\"")
}

/// After a successful `init kb`: one generation behind both aliases, on the
/// node itself, and `status kb` shows it live.
async fn assert_live(env: &Env, proxy: &TlsProxy, init: Run) {
    let (read, write) = env.aliases("kb").await;
    assert_eq!(
        (read.len(), &read),
        (1, &write),
        "one generation, both aliases"
    );
    let live = format!("kb: live on {}", read[0]);
    assert!(init.ok().stdout.contains(&live), "{init:#?}");
    let run = reindexd(env, proxy, &["status", "kb"]).await;
    let status = format!("kb: live (read {0}, write {0})", read[0]);
    assert!(run.ok().stdout.starts_with(&status), "{run:#?}");
    assert_eq!(env.es.count(&read[0]).await.unwrap(), 0, "on the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls_needs_the_right_ca_and_password() {
    let env = Env::new("tlsbasic", &["kb"], "").await;
    let proxy = TlsProxy::start(&es_url()).await;
    let url = proxy.basic_url.clone();

    // A CA that did not sign the server's certificate, or none (system roots).
    let certificate = ["invalid peer certificate", "UnknownIssuer", url.as_str()];
    let wrong_ca = basic(&proxy, &url, "password", "wrong-ca.pem");
    refused(&env, &proxy, &wrong_ca, &certificate).await;
    let no_ca = format!("url = \"{url}\"\nusername = \"{USER}\"\npassword = \"x\"");
    refused(&env, &proxy, &no_ca, &certificate).await;
    // A CA file that holds no certificate.
    let not_pem = basic(&proxy, &url, "password", "server.key");
    refused(&env, &proxy, &not_pem, &["CA certificate is not valid PEM"]).await;
    // The right CA, a wrong password or none: the proxy's 401.
    let wrong_password = basic(&proxy, &url, "wrong-password", "ca.pem");
    refused(&env, &proxy, &wrong_password, &["answered 401"]).await;
    let anonymous = format!("url = \"{url}\"\nca_file = \"{}\"", proxy.file("ca.pem"));
    refused(&env, &proxy, &anonymous, &["answered 401"]).await;
    // Plain HTTP to the TLS port. (The first call is a HEAD, whose answer
    // has no body: the reason cannot say "plain HTTP to an HTTPS port";
    // `info()` below does.)
    let plain = basic(
        &proxy,
        &url.replace("https:", "http:"),
        "password",
        "ca.pem",
    );
    refused(&env, &proxy, &plain, &["answered 400"]).await;

    // Right CA, right password (from a file ending with a newline).
    configure(&env, &basic(&proxy, &url, "password", "ca.pem"));
    let init = reindexd(&env, &proxy, &["init", "kb"]).await;
    assert_live(&env, &proxy, init).await;

    // The library directly: `ConnectOptions` with the same settings.
    let mut options = ConnectOptions::new(url.parse().unwrap());
    let password = Secret::new(proxy.password.clone());
    options.auth = Auth::Basic {
        username: USER.into(),
        password,
    };
    options.ca_pem = Some(std::fs::read(proxy.file("ca.pem")).unwrap());
    proxy.assert_hidden("ConnectOptions' Debug", &format!("{options:?}"));
    let info = EsClient::connect(&options).unwrap().info().await;
    info.expect("info through the proxy");
    let shown = &proxy;
    let fails = |options: ConnectOptions| async move {
        let e = EsClient::connect(&options)
            .unwrap()
            .info()
            .await
            .unwrap_err();
        shown.assert_hidden("an error", &format!("{e} {e:?}"));
        e
    };
    let mut plain = options.clone();
    plain.urls = vec![url.replace("https:", "http:").parse().unwrap()];
    let e = fails(plain).await;
    let why = "The plain HTTP request was sent to HTTPS port";
    assert!(
        e.status() == Some(400) && e.to_string().contains(why),
        "{e}"
    );
    let mut wrong_ca = options.clone();
    wrong_ca.ca_pem = Some(std::fs::read(proxy.file("wrong-ca.pem")).unwrap());
    let e = fails(wrong_ca).await;
    assert!(
        e.is_unavailable() && e.to_string().contains("UnknownIssuer"),
        "{e}"
    );
    let password = Secret::new(format!("{}0", proxy.password));
    options.auth = Auth::Basic {
        username: USER.into(),
        password,
    };
    assert_eq!(fails(options).await.status(), Some(401));

    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_over_tls_works_and_a_wrong_one_is_refused() {
    let env = Env::new("tlskey", &["kb"], "").await;
    let proxy = TlsProxy::start(&es_url()).await;
    let url = proxy.api_key_url.clone();

    let wrong_key = keyed(&proxy, &url, "wrong-api-key", "ca.pem");
    refused(&env, &proxy, &wrong_key, &["answered 401"]).await;
    let wrong_ca = keyed(&proxy, &url, "api-key", "wrong-ca.pem");
    refused(&env, &proxy, &wrong_ca, &["UnknownIssuer"]).await;
    // Basic auth is no API key, and an API key is no password.
    let password = basic(&proxy, &url, "password", "ca.pem");
    refused(&env, &proxy, &password, &["answered 401"]).await;
    let key_as_password = keyed(&proxy, &proxy.basic_url, "api-key", "ca.pem");
    refused(&env, &proxy, &key_as_password, &["answered 401"]).await;

    configure(&env, &keyed(&proxy, &url, "api-key", "ca.pem"));
    let init = reindexd(&env, &proxy, &["init", "kb"]).await;
    assert_live(&env, &proxy, init).await;
    let run = reindexd(&env, &proxy, &["status", "--json"]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.ok().stdout).unwrap()[0]["phase"],
        "live"
    );
    proxy.stop().await;
}

/// Runs `reindexd serve` at trace level with JSON logs, GETs `paths`, stops
/// it with SIGTERM. Returns each path's status and body, and the log.
async fn serve(env: &Env, paths: &[&str]) -> (Vec<(u16, String)>, String) {
    let mut command = common::serve_command(&env.config_path());
    command
        .args(["--log-level", "trace", "--log-format", "json"])
        .env_clear();
    let daemon = Served::start(command).await;
    let (http, base) = (reqwest::Client::new(), daemon.url());
    let mut answers = Vec::new();
    for path in paths {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        let status = response.status().as_u16();
        answers.push((status, response.text().await.unwrap()));
    }
    let (status, log) = daemon.stop().await;
    assert!(status.success(), "{log}");
    assert!(log.contains("API listening"), "{log}");
    (answers, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_show_in_output_logs_or_the_api() {
    let env = Env::new("tlssecret", &["kb"], "").await;
    let proxy = TlsProxy::start(&es_url()).await;
    let ca = proxy.file("ca.pem");

    // Inline secrets: check-config prints `<redacted>` in their place.
    let password = format!("username = \"{USER}\"\npassword = \"{}\"", proxy.password);
    let key = format!("api_key = \"{}\"", proxy.api_key);
    for (url, secret) in [(&proxy.basic_url, password), (&proxy.api_key_url, key)] {
        configure(
            &env,
            &format!("url = \"{url}\"\nca_file = \"{ca}\"\n{secret}"),
        );
        let run = reindexd(&env, &proxy, &["check-config"]).await;
        assert!(run.ok().stdout.contains("<redacted>"), "{run:#?}");
        reindexd(&env, &proxy, &["status"]).await.ok();
    }
    // Secret files: check-config reads them and shows the path only.
    configure(&env, &basic(&proxy, &proxy.basic_url, "password", "ca.pem"));
    let run = reindexd(&env, &proxy, &["check-config"]).await;
    assert!(
        run.ok().stdout.contains(&proxy.file("password")),
        "{run:#?}"
    );
    reindexd(&env, &proxy, &["init", "kb"]).await.ok();

    // The daemon: its log at trace level, its API and its metrics.
    let paths = ["/healthz", "/v1/indexes/kb", "/v1/indexes", "/metrics"];
    let (answers, log) = serve(&env, &paths).await;
    assert!(answers[1].1.contains("\"live\""), "{answers:?}");
    for ((status, body), path) in answers.iter().zip(paths) {
        assert_eq!(*status, 200, "GET {path}: {body}");
        proxy.assert_hidden(&format!("GET {path}"), body);
    }
    proxy.assert_hidden("the daemon's log", &log);

    // The daemon with a wrong password: errors everywhere, no secret.
    configure(
        &env,
        &basic(&proxy, &proxy.basic_url, "wrong-password", "ca.pem"),
    );
    let (answers, log) = serve(&env, &paths).await;
    let (status, body) = &answers[1];
    assert!(
        *status == 502 && body.contains("answered 401"),
        "{answers:?}"
    );
    assert!(
        answers[3].1.contains("reindexd_cluster_up 0"),
        "{answers:?}"
    );
    for (status, body) in &answers {
        proxy.assert_hidden(&format!("an answer ({status})"), body);
    }
    proxy.assert_hidden("the daemon's log", &log);

    // The proxy saw the credentials: they were really sent.
    let access = std::fs::read_to_string(proxy.file("access.log")).unwrap();
    assert!(access.contains(&format!(" {USER} [")), "{access}");
    proxy.stop().await;
}
