//! Other aliases on the live generation (a filtered view, a routed one, a
//! hidden one) follow the read alias at the flip and come back at rollback,
//! in the same atomic request, with their definitions kept exactly.

mod common;

use common::{Env, MAPPING_V2};
use reindexd::es::{AliasAction, AliasDefinition};
use reindexd::migration::WritesPolicy;
use serde_json::json;

/// The definitions without the index they sit on, by alias.
async fn definitions(env: &Env, index: &str) -> Vec<AliasDefinition> {
    let names = [env.read_alias("kb"), env.write_alias("kb")];
    let mut defs: Vec<AliasDefinition> = env
        .es
        .alias_definitions(index)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| !names.contains(&d.alias))
        .map(|mut d| {
            d.index = String::new();
            d
        })
        .collect();
    defs.sort_by(|a, b| a.alias.cmp(&b.alias));
    defs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_aliases_move_with_the_read_alias_and_back() {
    let env = Env::new("extra", &["kb"], "").await;
    let m = &env.migrator;
    let a = env.init("kb").await;
    env.load_docs("kb", 100).await;
    let p = &env.prefix;
    let define = |alias: &str, extra: serde_json::Value| {
        AliasAction::AddDefined(AliasDefinition {
            alias: alias.to_owned(),
            index: a.clone(),
            filter: extra.get("filter").cloned(),
            index_routing: extra["index_routing"].as_str().map(str::to_owned),
            search_routing: extra["search_routing"].as_str().map(str::to_owned),
            is_write_index: None,
            is_hidden: extra["is_hidden"].as_bool(),
        })
    };
    env.es
        .update_aliases(&[
            define(
                &format!("{p}recent"),
                json!({"filter": {"term": {"tag": "t1"}}}),
            ),
            define(
                &format!("{p}routed"),
                json!({"index_routing": "r1", "search_routing": "r1,r2"}),
            ),
            define(&format!("{p}hidden"), json!({"is_hidden": true})),
        ])
        .await
        .unwrap();
    let extras = definitions(&env, &a).await;
    assert_eq!(extras.len(), 3, "{extras:?}");

    env.set_mapping("kb", MAPPING_V2);
    let b = m
        .reindex("kb")
        .await
        .unwrap()
        .phase
        .write_index()
        .to_owned();
    let state = env.spawn_copy("kb", "extra-test").await.unwrap().unwrap();
    assert_eq!(state.phase.name(), "ready");
    assert_eq!(
        definitions(&env, &a).await,
        extras,
        "they stay until the flip"
    );

    m.flip("kb").await.unwrap();
    assert_eq!(
        definitions(&env, &b).await,
        extras,
        "moved with the read alias"
    );
    assert!(definitions(&env, &a).await.is_empty());
    let recent = env.es.count(&format!("{p}recent")).await.unwrap();
    assert_eq!(recent, 100 / 7 + 1, "the filter still applies");

    m.rollback("kb", WritesPolicy::Refuse).await.unwrap();
    assert_eq!(
        definitions(&env, &a).await,
        extras,
        "back with the rollback"
    );
    assert!(definitions(&env, &b).await.is_empty());
}
