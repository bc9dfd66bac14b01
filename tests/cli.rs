//! The `reindexd` binary against the real node, with no daemon running:
//! the staged change driven from the command line, megapacks, status
//! output, `check-config`, and bad input — each failure a non-zero exit
//! with a one-line reason on stderr and the cluster left as it was.

mod common;

use std::path::Path;

use common::binary::reindexd;
use common::{dead_url, es_url, Env, MAPPING_V1, MAPPING_V2};

fn path(env: &Env) -> String {
    env.config_path().display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_change_from_the_command_line_without_a_daemon() {
    let env = Env::new("cli", &["kb"], "").await;
    let config = path(&env);
    // --config before the subcommand.
    let run = reindexd(&["--config", &config, "init", "kb"]).await;
    let a = env.aliases("kb").await.0[0].clone();
    assert!(
        run.ok().stdout.contains(&format!("kb: live on {a}")),
        "{run:#?}"
    );
    env.load_docs("kb", 300).await;
    env.set_mapping("kb", MAPPING_V2);

    // --config after the subcommand; the copy runs in the foreground.
    reindexd(&["reindex", "kb", "--config", &config]).await.ok();
    let (read, write) = env.aliases("kb").await;
    let b = write[0].clone();
    assert_eq!((read, write.len()), (vec![a.clone()], 1));
    assert_ne!(a, b);
    assert_eq!(env.es.count(&b).await.unwrap(), 300);

    let run = reindexd(&["status", "kb", "--config", &config]).await;
    assert!(
        run.ok()
            .stdout
            .starts_with(&format!("kb: ready (read {a}, write {b})")),
        "{run:#?}"
    );
    let run = reindexd(&["--config", &config, "status", "--json"]).await;
    let views = run.ok().json();
    let view = &views[0];
    assert_eq!(
        (view["name"].as_str(), view["phase"].as_str()),
        (Some("kb"), Some("ready")),
        "{views}"
    );
    assert_eq!(
        (view["read_index"].as_str(), view["write_index"].as_str()),
        (Some(a.as_str()), Some(b.as_str()))
    );
    let p = &view["progress"];
    assert_eq!(
        (p["total"].as_u64(), p["failed"].as_u64()),
        (Some(300), Some(0)),
        "{view}"
    );
    assert_eq!(
        p["copied"].as_u64().unwrap() + p["superseded"].as_u64().unwrap(),
        300
    );

    let run = reindexd(&["flip", "kb", "--config", &config]).await;
    assert!(run.ok().stdout.contains("STUCK THE LANDING!"), "{run:#?}");
    assert_eq!(env.aliases("kb").await, (vec![b.clone()], vec![b.clone()]));
    let view = &reindexd(&["status", "--json", "kb", "--config", &config])
        .await
        .json()[0];
    assert_eq!(
        (view["phase"].as_str(), view["previous_index"].as_str()),
        (Some("flipped"), Some(a.as_str())),
        "{view}"
    );

    reindexd(&["rollback", "kb", "--config", &config])
        .await
        .ok();
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![a.clone()]));
    let view = &reindexd(&["status", "--json", "kb", "--config", &config])
        .await
        .json()[0];
    assert_eq!(view["phase"], "live", "{view}");
    assert_eq!(view["abandoned"], serde_json::json!([b]), "{view}");

    // Flip now is illegal: refused, one line naming the phase, nothing moved.
    let before = env.snapshot(&["kb"]).await;
    reindexd(&["flip", "kb", "--config", &config])
        .await
        .fails_with("it is live");
    assert_eq!(env.snapshot(&["kb"]).await, before);
}

/// Output to a reader that went away (`| head -1`) ends a one-shot
/// command quietly, and never stops a foreground copy half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_pipe_neither_kills_a_foreground_copy_nor_fails_status() {
    use std::process::Stdio;
    let env = Env::new("clipipe", &["kb"], "").await;
    let config = path(&env);
    env.migrator.init("kb").await.unwrap();
    env.load_docs("kb", 300).await;
    env.set_mapping("kb", MAPPING_V2);
    let closed = |args: &[&str]| {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reindexd"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        // Both read ends closed before the command writes anything.
        drop(child.stdout.take());
        drop(child.stderr.take());
        child
    };
    let status = closed(&["--config", &config, "reindex", "kb"])
        .wait()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let state = env.migrator.load("kb").await.unwrap().state;
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    let copy = state.phase.copy().unwrap();
    assert_eq!((copy.copied, copy.failed), (300, 0), "{copy:?}");
    assert!(copy.lease.is_none(), "{copy:?}");

    let status = closed(&["--config", &config, "status", "kb"])
        .wait()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn rollback_of_a_detached_stage_1_needs_no_daemon() {
    let env = Env::new("clidetach", &["kb"], "").await;
    let config = path(&env);
    reindexd(&["init", "kb", "--config", &config]).await.ok();
    let a = env.aliases("kb").await.0[0].clone();
    env.load_docs("kb", 100).await;
    reindexd(&["reindex", "--detach", "kb", "--config", &config])
        .await
        .ok();
    let (read, write) = env.aliases("kb").await;
    assert_eq!(read, [a.as_str()]);
    assert_ne!(write, [a.as_str()]);
    let view = &reindexd(&["status", "--json", "kb", "--config", &config])
        .await
        .json()[0];
    assert_eq!(view["phase"], "copying", "{view}");

    reindexd(&["rollback", "kb", "--config", &config])
        .await
        .ok();
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![a.clone()]));
    let run = reindexd(&["status", "kb", "--config", &config]).await;
    assert!(
        run.ok()
            .stdout
            .starts_with(&format!("kb: live (read {a}, write {a})")),
        "{run:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megapack_from_the_command_line_brings_both_to_ready() {
    let env = Env::new("climega", &["a", "b"], "").await;
    let config = path(&env);
    reindexd(&["--config", &config, "init", "a", "b"])
        .await
        .ok();
    let (a_old, b_old) = (
        env.aliases("a").await.0[0].clone(),
        env.aliases("b").await.0[0].clone(),
    );
    env.load_docs("a", 200).await;
    env.load_docs("b", 150).await;
    reindexd(&["--config", &config, "reindex", "a", "b"])
        .await
        .ok();
    let views = reindexd(&["--config", &config, "status", "--json"])
        .await
        .json();
    for (name, old, docs) in [("a", &a_old, 200), ("b", &b_old, 150)] {
        let view = views
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        assert_eq!(
            (view["phase"].as_str(), view["read_index"].as_str()),
            (Some("ready"), Some(old.as_str())),
            "{view}"
        );
        let new = view["write_index"].as_str().unwrap();
        assert!(
            new != old && new.starts_with(&format!("{}{name}_", env.prefix)),
            "{view}"
        );
        assert_eq!(env.es.count(new).await.unwrap(), docs);
    }
}

#[tokio::test]
async fn megapack_from_the_command_line_that_cannot_start_all_changes_nothing() {
    let env = Env::new("climeganot", &["a", "b"], "").await;
    let config = path(&env);
    reindexd(&["--config", &config, "init", "a", "b"])
        .await
        .ok();
    env.load_docs("a", 50).await;
    env.load_docs("b", 50).await;
    reindexd(&["--config", &config, "reindex", "b"]).await.ok();
    let before = env.snapshot(&["a", "b"]).await;
    let run = reindexd(&["--config", &config, "reindex", "a", "nope"]).await;
    assert_eq!(env.snapshot(&["a", "b"]).await, before, "unknown name");
    run.fails_with("\"nope\"");
    // b is ready, not live: a must not be started (and then rolled back).
    let run = reindexd(&["--config", &config, "reindex", "a", "b"]).await;
    assert_eq!(
        env.snapshot(&["a", "b"]).await,
        before,
        "b not live: {run:#?}"
    );
    run.fails_with("it is ready");
}

/// Writes a config (with `mappings/kb.json`) into `dir` and returns its path.
fn write_config(dir: &Path, toml: &str) -> String {
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::write(dir.join("mappings/kb.json"), MAPPING_V1).unwrap();
    let path = dir.join("reindexd.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = |api: &str, index: &str, url: &str| {
        format!("[elasticsearch]\nurl = \"{url}\"\n[api]\nlisten = \"127.0.0.1:9600\"\n{api}\n[migration]\nretention = \"2h\"\n[[indexes]]\n{index}\n")
    };
    let index = "name = \"kb\"\nmapping = \"mappings/kb.json\"";
    let config = write_config(dir.path(), &good("", index, &es_url()));
    let run = reindexd(&["check-config", "--config", &config]).await;
    assert_eq!(run.ok().json()["indexes"][0]["name"], "kb", "{run:#?}");
    let missing = dir.path().join("absent.toml").display().to_string();
    reindexd(&["check-config", "--config", &missing])
        .await
        .fails_with("absent.toml");

    let cases = [
        (
            "unknown key",
            good("listen_port = 3", index, &es_url()),
            "listen_port",
        ),
        (
            "unknown index key",
            good("", &format!("{index}\nbogus = 1"), &es_url()),
            "indexes[0]",
        ),
        (
            "bad url scheme",
            good("", index, "ftp://x"),
            "elasticsearch.url",
        ),
        (
            "not a url",
            good("", index, "not a url"),
            "elasticsearch.url",
        ),
        (
            "bad listen",
            good("", index, &es_url()).replace("127.0.0.1:9600", "nowhere"),
            "api.listen",
        ),
        (
            "remote listen",
            good("", index, &es_url()).replace("127.0.0.1:9600", "0.0.0.0:9600"),
            "api.listen",
        ),
        (
            "bad retention",
            good("", index, &es_url()).replace("2h", "soon"),
            "migration.retention",
        ),
        (
            "bad name",
            good(
                "",
                "name = \"Wiki\"\nmapping = \"mappings/kb.json\"",
                &es_url(),
            ),
            "indexes[0].name",
        ),
        (
            "no mapping key",
            good("", "name = \"kb\"", &es_url()),
            "indexes[0].mapping",
        ),
        (
            "missing mapping file",
            good(
                "",
                "name = \"kb\"\nmapping = \"mappings/none.json\"",
                &es_url(),
            ),
            "indexes[0].mapping",
        ),
    ];
    for (case, toml, key) in cases {
        let config = write_config(dir.path(), &toml);
        let run = reindexd(&["--config", &config, "check-config"]).await;
        assert!(run.code.is_some_and(|c| c != 0), "{case}: {run:#?}");
        assert!(
            run.stderr.contains(key),
            "{case}: stderr names {key}: {run:#?}"
        );
        run.fails_with(key);
        if case == "unknown key" {
            assert!(
                run.stderr.contains("`api`"),
                "the section is named: {run:#?}"
            );
        }
    }
}

#[tokio::test]
async fn bad_input_on_the_command_line_fails_in_one_line_and_changes_nothing() {
    let env = Env::new("clibad", &["kb"], "").await;
    let config = path(&env);
    reindexd(&["init", "kb", "--config", &config]).await.ok();
    env.load_docs("kb", 50).await;
    let before = env.snapshot(&["kb", "nope"]).await;

    for args in [
        &["status", "nope"][..],
        &["init", "nope"],
        &["reindex", "nope"],
        &["flip", "nope"],
        &["rollback", "nope"],
        &["cleanup", "nope"],
        &["throttle", "nope", "5"],
        &["reindex", "kb", "nope"],
    ] {
        let args: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--config", config.as_str()])
            .collect();
        reindexd(&args).await.fails_with("\"nope\"");
    }
    for rate in ["abc", "0", "NaN", "inf"] {
        reindexd(&["throttle", "kb", rate, "--config", &config])
            .await
            .fails_with(rate);
    }
    reindexd(&["rollback", "kb", "--config", &config])
        .await
        .fails_with("nothing to roll back");
    reindexd(&["cleanup", "kb", "--config", &config])
        .await
        .fails_with("it is live");
    reindexd(&["pause", "kb", "--config", &config])
        .await
        .fails_with("it is live");
    assert_eq!(env.snapshot(&["kb", "nope"]).await, before);

    // A broken mapping file fails stage 1 before anything is made.
    env.set_mapping("kb", "{ not json");
    reindexd(&["reindex", "kb", "--config", &config])
        .await
        .fails_with("kb.json");
    env.set_mapping(
        "kb",
        r#"{"mappings": {"properties": {"title": {"type": "no_such_type"}}}}"#,
    );
    reindexd(&["reindex", "kb", "--config", &config])
        .await
        .fails_with("no_such_type");
    assert_eq!(env.snapshot(&["kb", "nope"]).await, before);
}

#[tokio::test]
async fn unreachable_cluster_fails_in_one_line() {
    let env = Env::new("clidead", &["kb"], "").await;
    let config = path(&env);
    let dead = dead_url();
    for command in ["status", "init", "rollback", "flip", "repair"] {
        let mut args = vec![
            "--config",
            config.as_str(),
            "--es-url",
            dead.url.as_str(),
            command,
        ];
        if command != "status" {
            args.push("kb");
        }
        reindexd(&args).await.fails_with("cannot reach the cluster");
    }
    assert!(
        env.indexes().await.is_empty(),
        "nothing was made on the real cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_refill_from_the_command_line() {
    let env = Env::new("clirefill", &["kb"], "").await;
    let config = path(&env);
    env.init("kb").await;
    env.load_docs("kb", 40).await;
    env.set_mapping("kb", MAPPING_V2);
    let before = env.snapshot(&["kb"]).await;
    // Bad combinations change nothing.
    // A value clap refuses: its usage message, exit 2.
    let run = reindexd(&["--config", &config, "reindex", "kb", "--engine", "nope"]).await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr
            .contains("expected \"client\", \"server\" or \"external\", found \"nope\""),
        "{run:#?}"
    );
    reindexd(&[
        "--config",
        &config,
        "reindex",
        "kb",
        "--engine",
        "external",
        "--requests-per-second",
        "10",
    ])
    .await
    .fails_with("no copy to throttle");
    reindexd(&["--config", &config, "filled", "kb"])
        .await
        .fails_with("cannot declare filled kb: it is live");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    // Stage 1 only: the command returns at once, nothing is copied.
    let run = reindexd(&["--config", &config, "reindex", "kb", "--engine", "external"]).await;
    assert!(
        run.ok()
            .stdout
            .contains("run `reindexd filled kb` when it is done"),
        "{run:#?}"
    );
    let b = env.aliases("kb").await.1[0].clone();
    let answer = env
        .es
        .bulk(
            common::ndjson_docs(&env.write_alias("kb"), 0..40),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(!answer.errors);
    let run = reindexd(&["--config", &config, "filled", "kb"]).await;
    assert!(run.ok().stdout.starts_with("kb: ready"), "{run:#?}");
    assert!(
        run.stdout
            .contains("40 in the new generation, 40 in the old"),
        "{run:#?}"
    );
    assert_eq!(env.es.count(&b).await.unwrap(), 40);
}
