//! Running as a service: the systemd notification protocol (this test plays
//! systemd's side on a datagram socket it owns), graceful stop on SIGTERM
//! with a resumable checkpoint, and SIGHUP reloads.

mod common;

use std::time::Duration;

use common::{Env, Served, MAPPING_V2};
use tokio::net::UnixDatagram;

fn serve(env: &Env) -> tokio::process::Command {
    common::serve_command(&env.config_path())
}

async fn recv(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_systemd_ready_status_watchdog_and_stopping_in_order() {
    let env = Env::new("notify", &["kb"], "").await;
    env.migrator.init("kb").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut command = serve(&env);
    command
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000");
    let served = Served::start(command).await;

    let mut messages = Vec::new();
    let watchdog = async {
        while !messages.iter().any(|m: &String| m.contains("WATCHDOG=1")) {
            if let Some(m) = recv(&socket, Duration::from_secs(5)).await {
                messages.push(m);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), watchdog)
        .await
        .is_err()
    {
        panic!("no watchdog ping within 20 s: {messages:?}");
    }
    // READY comes first, once the API answers, with a status line.
    assert!(messages[0].contains("READY=1"), "{messages:?}");
    assert!(messages[0].contains("STATUS=kb live"), "{messages:?}");
    let health = reqwest::get(format!("{}/healthz", served.url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    served.signal("TERM");
    let mut stopping = false;
    while let Some(m) = recv(&socket, Duration::from_secs(10)).await {
        if m.contains("STOPPING=1") {
            stopping = true;
            break;
        }
        assert!(!m.contains("READY=1"), "READY twice: {m}");
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    let (status, log) = served.wait().await;
    assert!(status.success(), "exit status {status}:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_copy_saves_a_checkpoint_and_a_new_daemon_resumes_at_once() {
    let env = Env::new(
        "sigterm",
        &["kb"],
        "[copy]\ncheckpoint_interval = \"1s\"\npage_size = 200",
    )
    .await;
    let m = &env.migrator;
    m.init("kb").await.unwrap();
    env.load_docs("kb", 6_000).await;
    env.set_mapping("kb", MAPPING_V2);
    let first = Served::start(serve(&env)).await;
    let http = reqwest::Client::new();
    let api = format!("{}/v1/indexes/kb", first.url());
    let started = http
        .post(format!("{api}/reindex"))
        .body(r#"{"requests_per_second": 1500}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    // Stopped mid-copy: well after it started, well before its end.
    common::eventually_value("1000 documents copied", Duration::from_secs(60), || async {
        let view: serde_json::Value = http.get(&api).send().await.unwrap().json().await.unwrap();
        match view["progress"]["copied"].as_u64() {
            Some(n) if n >= 1_000 => Ok(()),
            _ => Err(view.to_string()),
        }
    })
    .await;

    let (status, log) = first.stop().await;
    assert!(
        status.success(),
        "graceful stop exits 0, got {status}:\n{log}"
    );
    let stored = m.load("kb").await.unwrap().state;
    assert_eq!(stored.phase.name(), "copying");
    let copy = stored.phase.copy().unwrap();
    assert!(
        copy.lease.is_none(),
        "a graceful stop gives the copy up: {:?}",
        copy.lease
    );
    let confirmed: u64 = copy
        .slices
        .iter()
        .map(|s| s.copied + s.superseded + s.resent)
        .sum();
    assert!(confirmed > 0, "a checkpoint was saved: {copy:?}");

    // The next daemon takes the copy over without waiting for a lease.
    let second = Served::start(serve(&env)).await;
    // The copy is resumed and finished.
    let state = common::copy_ended(m, "kb", Duration::from_secs(60)).await;
    let (status, log) = second.stop().await;
    assert!(status.success(), "{status}:\n{log}");
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    let p = state.phase.copy().unwrap();
    assert_eq!(p.copied + p.superseded + p.resent, 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_log_level_and_refuses_a_bad_file() {
    let env = Env::new("hup", &["kb"], "").await;
    let mut served = Served::start(serve(&env)).await;

    let original = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(
        env.config_path(),
        format!("{original}\n[log]\nlevel = \"debug\"\n"),
    )
    .unwrap();
    served.signal("HUP");
    let line = served.line_with("configuration reloaded").await;
    assert!(line.contains("debug"), "{line}");

    std::fs::write(
        env.config_path(),
        format!("{original}\n[log]\nlevel = \"debug\"\nbogus_key = 1\n"),
    )
    .unwrap();
    served.signal("HUP");
    let line = served.line_with("configuration refused").await;
    assert!(line.contains("bogus_key"), "{line}");
    // Still serving after both.
    let health = reqwest::get(format!("{}/healthz", served.url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (status, log) = served.stop().await;
    assert!(status.success(), "{status}:\n{log}");
}

/// SIGHUP while copying: a lower `copy.max_concurrency` bounds the running
/// copy at once; an unchanged `copy.requests_per_second` leaves the throttle
/// set through the API alone; a changed one becomes the copy's throttle;
/// settings that need a restart are named, not applied. The copy is paused
/// for the checks, so none of them races its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_retunes_a_running_copy() {
    let copy = |max: u32, rate: u32| {
        format!(
            "[copy]\npage_size = 100\nmax_concurrency = {max}\nrequests_per_second = {rate}.0\n"
        )
    };
    let env = Env::new("hupcopy", &["kb"], &copy(6, 300)).await;
    env.migrator.init("kb").await.unwrap();
    env.load_docs("kb", 4_000).await;
    env.set_mapping("kb", MAPPING_V2);
    let original = std::fs::read_to_string(env.config_path()).unwrap();
    let mut served = Served::start(serve(&env)).await;
    let http = reqwest::Client::new();
    let (base, api) = (served.url(), format!("{}/v1/indexes/kb", served.url()));
    let post = |what: &'static str, body: &'static str| {
        let request = http.post(format!("{api}/{what}")).body(body);
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 200, "{what}");
        }
    };
    let get = || async {
        let answer = http.get(&api).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.json::<serde_json::Value>().await.unwrap()
    };
    let rate = |body: &serde_json::Value| body["progress"]["requests_per_second"].clone();
    let limit = || async {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("reindexd_concurrency_limit{") && l.contains("\"kb\""))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse::<f64>().unwrap())
    };

    post("reindex", "").await;
    assert_eq!(
        rate(&get().await),
        300.0,
        "the file's throttle is the default"
    );
    post("throttle", r#"{"requests_per_second": 250}"#).await;
    // The limit starts at 2 and small bodies never lower it without 429s.
    common::eventually_value(
        "a concurrency gauge of 2 or more",
        Duration::from_secs(20),
        || async {
            match limit().await {
                Some(l) if l >= 2.0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    post("pause", "").await;

    // A lower bound, the same rate, and a key that needs a restart.
    let next = original.replace(
        &copy(6, 300),
        &format!("{}batch_bytes = \"1MiB\"\n", copy(1, 300)),
    );
    assert_ne!(next, original);
    std::fs::write(env.config_path(), &next).unwrap();
    served.signal("HUP");
    let later = served.line_with("take effect at the next start").await;
    assert!(later.contains("copy.batch_bytes"), "{later}");
    let applied = served.line_with("copy settings applied").await;
    assert!(applied.contains("max_concurrency=1"), "{applied}");
    common::eventually_value(
        "the lower bound applied",
        Duration::from_secs(5),
        || async {
            match limit().await {
                Some(1.0) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let body = get().await;
    assert_eq!(body["phase"], "copying", "{body}");
    assert_eq!(
        rate(&body),
        250.0,
        "an unchanged file rate keeps the API's throttle"
    );

    // A new rate in the file becomes the running copy's throttle.
    std::fs::write(
        env.config_path(),
        next.replace(&copy(1, 300), &copy(1, 20_000)),
    )
    .unwrap();
    served.signal("HUP");
    let replaced = served.line_with("throttle replaced").await;
    assert!(replaced.contains("kb"), "{replaced}");
    let body = get().await;
    assert_eq!(body["phase"], "copying", "{body}");
    assert_eq!(rate(&body), 20_000.0, "{body}");

    // Resumed, the retuned copy ends exact.
    post("resume", "").await;
    common::eventually_value("the copy finished", Duration::from_secs(60), || async {
        let body = get().await;
        assert!(
            body["phase"] == "ready" || body["phase"] == "copying",
            "{body}"
        );
        if body["phase"] == "ready" {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await;
    let state = env.migrator.load("kb").await.unwrap().state;
    let p = state.phase.copy().unwrap();
    assert_eq!(p.copied + p.superseded + p.resent, 4_000);
    let (status, log) = served.stop().await;
    assert!(status.success(), "{status}:\n{log}");
}
