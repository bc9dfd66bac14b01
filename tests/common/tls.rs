//! Helpers of the TLS tests: a throwaway PKI (openssl CLI) and Debian's
//! nginx as a TLS-terminating, authenticating proxy in front of a test node.

use std::time::Duration;

/// A loopback port the kernel handed out, then freed, for nginx (which
/// cannot be told to pick one itself and say which). Another process may
/// take it before nginx binds it: [`TlsProxy::start`] then starts again on
/// new ports.
fn released_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The user name the TLS proxy's basic auth accepts.
pub const TLS_USER: &str = "reindexd";

/// Finds `name` on PATH or in /usr/sbin; fails saying how to install it.
pub fn tool(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d: std::path::PathBuf| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: the TLS tests need it (apt-get install -y nginx openssl)")
        })
}

/// Runs `openssl` with the whitespace-separated `args` in `dir`, `input`
/// on stdin; returns stdout.
pub fn openssl(dir: &std::path::Path, args: &str, input: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
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
pub fn make_pki(dir: &std::path::Path) {
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
    let csr = "-keyout server.key -out server.csr -subj /CN=127.0.0.1";
    openssl(dir, &format!("req -new {new_key} {csr}"), "");
    let sign = "-CA ca.pem -CAkey ca.key -set_serial 2 -days 2 -extfile server.ext";
    openssl(
        dir,
        &format!("x509 -req -in server.csr {sign} -out server.pem"),
        "",
    );
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c.iter().enumerate()).fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            let sextet = (n >> (18 - 6 * i) & 63) as usize;
            out.push(if i > c.len() { '=' } else { A[sextet] as char });
        }
    }
    out
}

/// nginx (in the foreground, everything in a temp dir) in front of a node:
/// `basic_url` wants basic auth ([`TLS_USER`], `password`), `api_key_url`
/// the API key `api_key`; both speak TLS only, with a certificate of the
/// throwaway CA `ca.pem`. The temp dir also holds `wrong-ca.pem` and the
/// secret files `password`, `wrong-password`, `api-key`, `wrong-api-key`
/// (each ending with a newline, as `echo` writes them).
pub struct TlsProxy {
    pub dir: tempfile::TempDir,
    pub basic_url: String,
    pub api_key_url: String,
    pub password: String,
    /// As the engine issues it: base64 of `api_key_raw`.
    pub api_key: String,
    /// `id:key`.
    pub api_key_raw: String,
    nginx: tokio::process::Child,
}

impl TlsProxy {
    pub async fn start(node: &str) -> TlsProxy {
        let nginx_bin = tool("nginx");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_pki(d);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let salt = format!("{}x{}", std::process::id(), now.unwrap().as_nanos());
        let password = format!("Pw{salt}Zq");
        let api_key_raw = format!("kid{salt}:Ak{salt}Yv");
        let api_key = base64(api_key_raw.as_bytes());
        let htpasswd = openssl(d, "passwd -apr1 -stdin", &password);
        std::fs::write(d.join("htpasswd"), format!("{TLS_USER}:{htpasswd}")).unwrap();
        let wrong_key = base64(format!("{api_key_raw}0").as_bytes());
        for (file, value) in [
            ("password", &password),
            ("wrong-password", &format!("{password}0")),
            ("api-key", &api_key),
            ("wrong-api-key", &wrong_key),
        ] {
            std::fs::write(d.join(file), format!("{value}\n")).unwrap();
        }
        let p = d.display();
        let log = d.join("error.log");
        // Up means our nginx answers: a TLS handshake only our CA's server
        // certificate passes, then 401 without credentials — never a
        // process that took a port in between.
        let ca = std::fs::read(d.join("ca.pem")).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        for attempt in 0.. {
            let (basic, keyed) = (released_port(), released_port());
            let tls = format!(
                "ssl_certificate {p}/server.pem; ssl_certificate_key {p}/server.key;\n  \
                 proxy_set_header Authorization \"\"; location / {{ proxy_pass {node}; }}"
            );
            let conf = format!(
                "daemon off; master_process off; pid {p}/nginx.pid; error_log {p}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n access_log {p}/access.log; map_hash_bucket_size 256;\n \
                 client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; \
                 fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n \
                 map $http_authorization $api_key_ok {{ \"ApiKey {api_key}\" 1; default 0; }}\n \
                 server {{ listen 127.0.0.1:{basic} ssl;\n  auth_basic \"test node\"; \
                 auth_basic_user_file {p}/htpasswd;\n  {tls} }}\n \
                 server {{ listen 127.0.0.1:{keyed} ssl;\n  if ($api_key_ok = 0) {{ return 401; }}\n  {tls} }}\n}}\n"
            );
            std::fs::write(d.join("nginx.conf"), conf).unwrap();
            let mut nginx = tokio::process::Command::new(&nginx_bin)
                .arg("-p")
                .arg(d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-e")
                .arg(&log)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("nginx starts");
            let up = |port: u16| {
                let request = http.get(format!("https://127.0.0.1:{port}/")).send();
                async move { request.await.is_ok_and(|r| r.status() == 401) }
            };
            // 400 rounds of 25 ms: 10 s for nginx to start or fail.
            for _ in 0..400 {
                if up(basic).await && up(keyed).await {
                    return TlsProxy {
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
            let retry = attempt < 5 && errors.contains("in use");
            assert!(
                retry,
                "nginx did not start (config {p}/nginx.conf):\n{errors}"
            );
        }
        unreachable!()
    }

    /// The path of `name` in the proxy's temp dir.
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Every form of the secrets that must never be shown: the password,
    /// the basic `Authorization` value, the API key, its `id:key` and key.
    pub fn secrets(&self) -> Vec<String> {
        let key = self.api_key_raw.split_once(':').unwrap().1.to_owned();
        let basic = base64(format!("{TLS_USER}:{}", self.password).as_bytes());
        let key_raw = self.api_key_raw.clone();
        vec![
            self.password.clone(),
            basic,
            self.api_key.clone(),
            key_raw,
            key,
        ]
    }

    /// Fails when any secret shows in `text`.
    pub fn assert_hidden(&self, what: &str, text: &str) {
        for s in self.secrets() {
            assert!(!text.contains(&s), "a secret shows in {what}:\n{text}");
        }
    }

    pub async fn stop(mut self) {
        self.nginx.kill().await.unwrap();
    }
}
