//! TLS with a custom CA, basic auth and API keys, for real: Debian's nginx
//! terminates TLS in front of the test node with certificates from a
//! throwaway CA and authenticates like a secured cluster would (basic auth
//! on one port, an API key on another). Good settings work; a wrong CA, a
//! wrong password, a wrong API key or plain HTTP each fail with a one-line
//! reason and leave the node untouched (checked over plain HTTP on the
//! node's own port). No secret ever shows in output, logs or API answers.
//!
//! Needs `nginx` and `openssl` (`apt-get install -y nginx openssl`); the
//! test runs its own nginx in the foreground from a temp dir.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{es_url, Env};
use reindexd::es::{Auth, ConnectOptions, EsClient};
use reindexd::secret::Secret;

const USER: &str = "reindexd";

/// Finds `name` on PATH or in /usr/sbin; fails saying how to install it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: the TLS tests need it (apt-get install -y nginx openssl)")
        })
}

/// Runs `openssl` with the whitespace-separated `args` in `dir`, `input`
/// on stdin; returns stdout.
fn openssl(dir: &Path, args: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(tool("openssl"))
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

/// Two unrelated throwaway CAs, `ca` and `wrong-ca` (`.pem`, `.key`), and
/// `server.pem`/`server.key` for 127.0.0.1 (SAN IP) signed by `ca`.
fn make_pki(dir: &Path) {
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "wrong-ca"] {
        openssl(
            dir,
            &format!(
                "req -x509 -new {new_key} -keyout {ca}.key -out {ca}.pem -days 2 \
            -subj /CN=reindexd-test-{ca} -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign"
            ),
            "",
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &format!("req -new {new_key} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
        "",
    );
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 \
        -out server.pem -extfile server.ext",
        "",
    );
}

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            let pad = i > c.len();
            out.push(if pad {
                '='
            } else {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            });
        }
    }
    out
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// nginx in front of the node: `basic_url` wants basic auth, `api_key_url`
/// an API key; both speak TLS only, with a certificate of the throwaway CA.
struct Proxy {
    dir: tempfile::TempDir,
    basic_url: String,
    api_key_url: String,
    password: String,
    /// As the engine issues it: base64 of `id:key`.
    api_key: String,
    api_key_raw: String,
    nginx: tokio::process::Child,
}

impl Proxy {
    async fn start(node: &str) -> Proxy {
        let nginx_bin = tool("nginx");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_pki(d);
        let salt = format!(
            "{}x{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let password = format!("Pw{salt}Zq");
        let api_key_raw = format!("kid{salt}:Ak{salt}Yv");
        let api_key = base64(api_key_raw.as_bytes());
        let htpasswd = openssl(d, "passwd -apr1 -stdin", &password);
        std::fs::write(d.join("htpasswd"), format!("{USER}:{htpasswd}")).unwrap();
        // Secret files end with a newline, as `echo` and editors write them.
        for (file, value) in [
            ("password", password.clone()),
            ("wrong-password", format!("{password}0")),
            ("api-key", api_key.clone()),
            (
                "wrong-api-key",
                base64(format!("{api_key_raw}0").as_bytes()),
            ),
        ] {
            std::fs::write(d.join(file), format!("{value}\n")).unwrap();
        }
        for attempt in 0.. {
            let (basic, keyed) = (free_port(), free_port());
            let p = d.display();
            let tls = format!(
                "ssl_certificate {p}/server.pem; ssl_certificate_key {p}/server.key;\n\
                proxy_set_header Authorization \"\"; location / {{ proxy_pass {node}; }}"
            );
            let conf = format!(
                "daemon off; master_process off; pid {p}/nginx.pid; error_log {p}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log {p}/access.log; map_hash_bucket_size 256; client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
                 fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
                 map $http_authorization $api_key_ok {{ \"ApiKey {api_key}\" 1; default 0; }}\n\
                 server {{ listen 127.0.0.1:{basic} ssl; auth_basic \"test node\"; auth_basic_user_file {p}/htpasswd; {tls} }}\n\
                 server {{ listen 127.0.0.1:{keyed} ssl; if ($api_key_ok = 0) {{ return 401; }} {tls} }}\n}}\n");
            std::fs::write(d.join("nginx.conf"), conf).unwrap();
            let log = d.join("error.log");
            let mut nginx = tokio::process::Command::new(&nginx_bin)
                .arg("-p")
                .arg(d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-e")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("nginx starts");
            for _ in 0..200 {
                let up = |port| tokio::net::TcpStream::connect(("127.0.0.1", port));
                if up(basic).await.is_ok() && up(keyed).await.is_ok() {
                    return Proxy {
                        basic_url: format!("https://127.0.0.1:{basic}"),
                        api_key_url: format!("https://127.0.0.1:{keyed}"),
                        dir,
                        password,
                        api_key,
                        api_key_raw,
                        nginx,
                    };
                }
                if nginx.try_wait().unwrap().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let _ = nginx.kill().await;
            let errors = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                attempt < 5 && errors.contains("in use"),
                "nginx did not start:\n{errors}"
            );
        }
        unreachable!()
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Every form of a secret that must never be shown.
    fn secrets(&self) -> Vec<String> {
        let key = self.api_key_raw.split_once(':').unwrap().1.to_owned();
        vec![
            self.password.clone(),
            base64(format!("{USER}:{}", self.password).as_bytes()),
            self.api_key.clone(),
            self.api_key_raw.clone(),
            key,
        ]
    }

    fn assert_hidden(&self, what: &str, text: &str) {
        for s in self.secrets() {
            assert!(!text.contains(&s), "a secret shows in {what}:\n{text}");
        }
    }

    async fn stop(mut self) {
        self.nginx.kill().await.unwrap();
    }
}

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
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !is_log(l))
            .collect();
        assert_eq!(lines.len(), 1, "one line of reason: {self:#?}");
        assert!(lines[0].starts_with("reindexd: "), "{self:#?}");
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "the reason names {needle:?}: {self:#?}"
            );
        }
    }
}

/// `reindexd --config <env's config> --log-level debug args...`, with a
/// clean environment. Asserts no secret of `proxy` shows in its output.
async fn reindexd(env: &Env, proxy: &Proxy, args: &[&str]) -> Run {
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
    proxy.assert_hidden(
        &format!("the output of {args:?}"),
        &format!("{}{}", run.stdout, run.stderr),
    );
    run
}

/// Replaces the `[elasticsearch]` section of the env's config with `lines`.
fn configure(env: &Env, lines: &str) {
    let path = env.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let (start, end) = (
        text.find("[elasticsearch]").unwrap(),
        text.find("[api]").unwrap(),
    );
    let text = format!(
        "{}[elasticsearch]\ntimeout = \"10s\"\n{lines}\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&path, text).unwrap();
}

/// `init kb` and `status kb` are refused with a reason naming all of
/// `needles`, and the node has no index of this test.
async fn refused(env: &Env, proxy: &Proxy, lines: &str, needles: &[&str]) {
    configure(env, lines);
    reindexd(env, proxy, &["init", "kb"])
        .await
        .fails_with(needles);
    reindexd(env, proxy, &["status", "kb"])
        .await
        .fails_with(needles);
    assert_eq!(
        env.indexes().await,
        Vec::<String>::new(),
        "{lines}: nothing may change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls_needs_the_right_ca_and_password() {
    let env = Env::new("tlsbasic", &["kb"], "").await;
    let proxy = Proxy::start(&es_url()).await;
    let (url, ca, wrong_ca) = (
        &proxy.basic_url,
        proxy.file("ca.pem"),
        proxy.file("wrong-ca.pem"),
    );
    let auth = |file: &str| {
        format!(
            "username = \"{USER}\"\npassword_file = \"{}\"",
            proxy.file(file)
        )
    };

    // A CA that did not sign the server's certificate, or none (system roots).
    let certificate = ["invalid peer certificate", "UnknownIssuer", url.as_str()];
    refused(
        &env,
        &proxy,
        &format!(
            "url = \"{url}\"\n{}\nca_file = \"{wrong_ca}\"",
            auth("password")
        ),
        &certificate,
    )
    .await;
    refused(
        &env,
        &proxy,
        &format!("url = \"{url}\"\n{}", auth("password")),
        &certificate,
    )
    .await;
    // The right CA, a wrong password: the proxy's 401, with the call.
    refused(
        &env,
        &proxy,
        &format!(
            "url = \"{url}\"\n{}\nca_file = \"{ca}\"",
            auth("wrong-password")
        ),
        &["answered 401"],
    )
    .await;
    // No credentials at all.
    refused(
        &env,
        &proxy,
        &format!("url = \"{url}\"\nca_file = \"{ca}\""),
        &["answered 401"],
    )
    .await;
    // Plain HTTP to the TLS port.
    let plain = url.replace("https://", "http://");
    refused(
        &env,
        &proxy,
        &format!(
            "url = \"{plain}\"\n{}\nca_file = \"{ca}\"",
            auth("password")
        ),
        &["400", "plain HTTP"],
    )
    .await;

    // Right CA, right password (from a file with a trailing newline).
    configure(
        &env,
        &format!("url = \"{url}\"\n{}\nca_file = \"{ca}\"", auth("password")),
    );
    let run = reindexd(&env, &proxy, &["init", "kb"]).await;
    let (read, write) = env.aliases("kb").await;
    assert_eq!(
        (read.len(), &read),
        (1, &write),
        "init made the generation and both aliases"
    );
    assert!(
        run.ok()
            .stdout
            .contains(&format!("kb: live on {}", read[0])),
        "{run:#?}"
    );
    let run = reindexd(&env, &proxy, &["status", "kb"]).await;
    assert!(
        run.ok()
            .stdout
            .starts_with(&format!("kb: live (read {0}, write {0})", read[0])),
        "{run:#?}"
    );
    assert_eq!(
        env.es.count(&read[0]).await.unwrap(),
        0,
        "the index is really on the node"
    );

    // The library directly: the same settings, as `ConnectOptions`.
    let mut options = ConnectOptions::new(url.parse().unwrap());
    options.auth = Auth::Basic {
        username: USER.into(),
        password: Secret::new(proxy.password.clone()),
    };
    options.ca_pem = Some(std::fs::read(&ca).unwrap());
    proxy.assert_hidden("ConnectOptions' Debug", &format!("{options:?}"));
    let client = EsClient::connect(&options).unwrap();
    client.info().await.expect("info through the proxy");
    options.auth = Auth::Basic {
        username: USER.into(),
        password: Secret::new("nope"),
    };
    let e = EsClient::connect(&options)
        .unwrap()
        .info()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    options.ca_pem = Some(std::fs::read(&wrong_ca).unwrap());
    let e = EsClient::connect(&options)
        .unwrap()
        .info()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("UnknownIssuer") && !e.is_conflict(),
        "{e}"
    );

    proxy.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_over_tls_works_and_a_wrong_one_is_refused() {
    let env = Env::new("tlskey", &["kb"], "").await;
    let proxy = Proxy::start(&es_url()).await;
    let (url, ca) = (&proxy.api_key_url, proxy.file("ca.pem"));
    let key = |file: &str| {
        format!(
            "url = \"{url}\"\nca_file = \"{ca}\"\napi_key_file = \"{}\"",
            proxy.file(file)
        )
    };

    refused(&env, &proxy, &key("wrong-api-key"), &["answered 401"]).await;
    // Basic auth is no API key.
    let basic = format!(
        "url = \"{url}\"\nca_file = \"{ca}\"\nusername = \"{USER}\"\npassword_file = \"{}\"",
        proxy.file("password")
    );
    refused(&env, &proxy, &basic, &["answered 401"]).await;
    // An API key is no password either.
    let swapped = format!(
        "url = \"{}\"\nca_file = \"{ca}\"\napi_key_file = \"{}\"",
        proxy.basic_url,
        proxy.file("api-key")
    );
    refused(&env, &proxy, &swapped, &["answered 401"]).await;

    configure(&env, &key("api-key"));
    reindexd(&env, &proxy, &["init", "kb"]).await.ok();
    let (read, write) = env.aliases("kb").await;
    assert_eq!(
        (read.len(), &read),
        (1, &write),
        "init made the generation and both aliases"
    );
    let run = reindexd(&env, &proxy, &["status", "--json"]).await;
    assert!(run.ok().stdout.contains("\"live\""), "{run:#?}");
    proxy.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_show_in_output_logs_or_the_api() {
    let env = Env::new("tlssecret", &["kb"], "").await;
    let proxy = Proxy::start(&es_url()).await;
    let ca = proxy.file("ca.pem");

    // Inline secrets: check-config prints `<redacted>` in their place.
    for (url, secret) in [
        (
            &proxy.basic_url,
            format!("username = \"{USER}\"\npassword = \"{}\"", proxy.password),
        ),
        (
            &proxy.api_key_url,
            format!("api_key = \"{}\"", proxy.api_key),
        ),
    ] {
        configure(
            &env,
            &format!("url = \"{url}\"\nca_file = \"{ca}\"\n{secret}"),
        );
        let run = reindexd(&env, &proxy, &["check-config"]).await;
        assert!(run.ok().stdout.contains("<redacted>"), "{run:#?}");
        reindexd(&env, &proxy, &["status"]).await.ok();
    }
    // Secret files: check-config reads them and shows the path only.
    configure(
        &env,
        &format!(
            "url = \"{}\"\nca_file = \"{ca}\"\nusername = \"{USER}\"\npassword_file = \"{}\"",
            proxy.basic_url,
            proxy.file("password")
        ),
    );
    let run = reindexd(&env, &proxy, &["check-config"]).await;
    assert!(
        run.ok().stdout.contains(&proxy.file("password")),
        "{run:#?}"
    );
    reindexd(&env, &proxy, &["init", "kb"]).await.ok();

    // The daemon, at trace level: its log, its API and its metrics.
    let listen = format!("127.0.0.1:{}", free_port());
    let config = env.config_path().display().to_string();
    let daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_reindexd"))
        .args([
            "--config",
            &config,
            "--log-level",
            "trace",
            "serve",
            "--listen",
            &listen,
        ])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in [
        "/healthz",
        "/v1/indexes/kb",
        "/v1/indexes",
        "/metrics",
        "/v1/indexes/nope",
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        let (status, body) = (response.status(), response.text().await.unwrap());
        if path == "/v1/indexes/kb" {
            assert!(
                status.is_success() && body.contains("\"live\""),
                "{status} {body}"
            );
        }
        proxy.assert_hidden(&format!("GET {path}"), &body);
    }
    let pid = daemon.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = tokio::time::timeout(Duration::from_secs(30), daemon.wait_with_output())
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    assert!(log.contains("API listening"), "{log}");
    proxy.assert_hidden("the daemon's log", &log);

    // The proxy saw the credentials: they were really sent.
    let access = std::fs::read_to_string(proxy.file("access.log")).unwrap();
    assert!(access.contains(&format!(" {USER} [")), "{access}");
    proxy.stop().await;
    env.cleanup().await;
}
