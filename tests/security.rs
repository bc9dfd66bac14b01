//! Elasticsearch's own security (`scripts/test-cluster start --security`:
//! HTTPS with a throwaway CA, basic auth as the users and roles of
//! tests/es-security/roles.yml): the whole lifecycle
//! works with exactly the privileges the README lists, and with one of
//! them missing preflight names it and nothing changes.

mod common;

use common::binary::Run;
use common::{Env, MAPPING_V2};
use reindexd::copy::drive;

/// `reindexd ARGS --config CONFIG`.
async fn reindexd(config: &std::path::Path, args: &[&str]) -> Run {
    let config = config.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--config", config.as_str()]);
    common::binary::reindexd(&all).await
}

/// A node with security on: its URL, CA file and the test users' password.
struct Secure {
    url: String,
    ca: String,
    password: String,
}

async fn secure_node() -> Option<Secure> {
    let (caps, info) = common::capabilities::of_test_node().await;
    if !caps.security {
        common::capabilities::not_on(&info, "tests/security.rs", "x-pack security");
        return None;
    }
    let how = "scripts/test-cluster start --engine ENGINE --security --port N, then \
               REINDEXD_TEST_SECURE_URL, REINDEXD_TEST_SECURE_ADMIN=`scripts/test-cluster admin --port N` \
               and REINDEXD_TEST_SECURE_CA=`scripts/test-cluster ca --port N`";
    let url = std::env::var("REINDEXD_TEST_SECURE_URL").unwrap_or_else(|_| {
        panic!("{info} has security: the security tests need a node with it on ({how})")
    });
    let admin = std::env::var("REINDEXD_TEST_SECURE_ADMIN")
        .unwrap_or_else(|_| panic!("REINDEXD_TEST_SECURE_ADMIN is not set ({how})"));
    let ca = std::env::var("REINDEXD_TEST_SECURE_CA")
        .unwrap_or_else(|_| panic!("REINDEXD_TEST_SECURE_CA is not set ({how})"));
    let password = admin.split_once(':').expect("user:password").1.to_owned();
    assert!(
        url.starts_with("https://"),
        "{url}: the secure node serves HTTPS"
    );
    // Its certificate is trusted only through the CA, and without
    // credentials it refuses everything.
    assert!(
        reqwest::get(&url).await.is_err(),
        "{url}: a certificate no known CA signed was accepted"
    );
    let pem = std::fs::read(&ca).expect("the CA file");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let status = http
        .get(&url)
        .send()
        .await
        .expect("the secure node answers")
        .status();
    assert_eq!(
        status, 401,
        "{url} answers without credentials: security is off"
    );
    Some(Secure { url, ca, password })
}

#[tokio::test]
async fn the_lifecycle_works_with_exactly_the_documented_privileges() {
    let Some(node) = secure_node().await else {
        return;
    };
    let env = Env::secured(&node.url, &node.ca, "reindexd", &node.password, "secure").await;
    let m = &env.migrator;
    let (first, target) = env.stage1("kb", 2_000).await;
    assert!(m.plan().await.is_ok(), "plan as the reindexd user");
    let handle = common::detached_handle("kb");
    let state = drive(m, "kb", "security-test", &handle).await.unwrap();
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    env.es.refresh(&target).await.unwrap();
    assert_eq!(env.es.count(&target).await.unwrap(), 2_000);

    m.flip("kb").await.unwrap();
    assert_eq!(
        env.aliases("kb").await,
        (vec![target.clone()], vec![target.clone()])
    );
    let (state, _) = m
        .rollback("kb", reindexd::migration::WritesPolicy::Refuse)
        .await
        .unwrap();
    assert_eq!(state.phase.name(), "live");
    assert_eq!(
        env.aliases("kb").await,
        (vec![first.clone()], vec![first.clone()])
    );

    // The same user through the binary: status and a second stage 1.
    let run = reindexd(&env.config_path(), &["status", "kb"]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    let run = reindexd(&env.config_path(), &["reindex", "kb"]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
}

/// Stage 1 as `user` (whose role lacks one privilege) is refused naming
/// `missing`, and the cluster is unchanged.
async fn refused_for(user: &str, label: &str, missing: &str) {
    let Some(node) = secure_node().await else {
        return;
    };
    // Set up by the full user; the lacking one only tries stage 1, with
    // the same config but its own name.
    let full = Env::secured(&node.url, &node.ca, "reindexd", &node.password, label).await;
    full.init("kb").await;
    full.load_docs("kb", 100).await;
    full.set_mapping("kb", MAPPING_V2);
    let lacking = full.dir.path().join("lacking.toml");
    let toml = std::fs::read_to_string(full.config_path())
        .unwrap()
        .replace("username = \"reindexd\"", &format!("username = \"{user}\""));
    assert!(toml.contains(user));
    std::fs::write(&lacking, toml).unwrap();

    let before = full.snapshot(&["kb"]).await;
    let run = reindexd(&lacking, &["reindex", "kb"]).await;
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stderr.contains("[missing_privileges]") && run.stderr.contains(missing),
        "names {missing}: {run:#?}"
    );
    let plan = reindexd(&lacking, &["plan"]).await;
    assert!(plan.stdout.contains(missing), "plan shows it: {plan:#?}");
    assert_eq!(full.snapshot(&["kb"]).await, before, "the cluster changed");
}

#[tokio::test]
async fn a_missing_cluster_privilege_is_named_and_nothing_changes() {
    refused_for(
        "reindexd-no-templates",
        "secure",
        "cluster privilege manage_index_templates",
    )
    .await;
}

#[tokio::test]
async fn a_missing_index_privilege_is_named_and_nothing_changes() {
    refused_for("reindexd-no-write", "secure", "index privilege write on").await;
}
