//! The cluster client layer against the real test node.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reindexd::es::{AliasAction, AliasEntry, ConnectOptions, EsClient, EsError, Slice};
use serde_json::json;
use url::Url;

#[tokio::test]
async fn reports_engine_and_version() {
    let (client, info) = common::client().await;
    eprintln!("testing against {info} at {}", client.url());
    assert!(info.version.major >= 2);
    let health = client.health_status().await.unwrap();
    assert!(health == "green" || health == "yellow", "health {health}");
}

#[tokio::test]
async fn creates_index_bulks_counts_and_reads_settings() {
    let (client, _) = common::client().await;
    let prefix = common::unique("crud");
    let index = format!("{prefix}_a");
    let body = json!({
        "settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"_meta": {"reindexd": {"sha256": "abc"}}, "properties": {"title": {"type": "text"}, "n": {"type": "long"}}}
    });
    client.create_index(&index, &body).await.unwrap();
    assert!(client.index_exists(&index).await.unwrap());

    // Creating it twice is a typed error naming the call and the engine's reason.
    let err = client.create_index(&index, &body).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.error_type(), Some("resource_already_exists_exception"));
    assert!(err.to_string().contains(&format!("PUT /{index}")), "{err}");

    let response = client
        .bulk(common::ndjson_docs(&index, 0..250), Some("true"), None)
        .await
        .unwrap();
    assert!(!response.errors);
    assert_eq!(response.items.len(), 250);
    assert!(response.items.iter().all(|i| i.status == 201));
    assert_eq!(client.count(&index).await.unwrap(), 250);

    client
        .put_settings(&index, &json!({"index": {"refresh_interval": "-1"}}))
        .await
        .unwrap();
    let settings = client.get_settings(&index).await.unwrap();
    assert_eq!(settings["index.refresh_interval"], "-1");
    assert_eq!(client.primary_shards(&index).await.unwrap(), 2);
    assert_eq!(
        client.mapping_meta(&index).await.unwrap(),
        json!({"reindexd": {"sha256": "abc"}})
    );
    assert_eq!(
        client.list_indexes(&format!("{prefix}*")).await.unwrap(),
        std::slice::from_ref(&index)
    );

    client.delete_index(&index).await.unwrap();
    assert!(!client.index_exists(&index).await.unwrap());
    let err = client.delete_index(&index).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn bulk_reports_per_item_outcomes() {
    let (client, info) = common::client().await;
    let prefix = common::unique("items");
    let index = format!("{prefix}_a");
    client
        .create_index(
            &index,
            &json!({"mappings": {"properties": {"n": {"type": "long"}}}}),
        )
        .await
        .unwrap();
    // An external version conflict and a mapping rejection in one 200 answer.
    let body = format!(
        "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"1\",\"version\":5,\"version_type\":\"external\"}}}}\n{{\"n\":1}}\n\
         {{\"index\":{{\"_index\":\"{index}\",\"_id\":\"1\",\"version\":1,\"version_type\":\"external\"}}}}\n{{\"n\":2}}\n\
         {{\"index\":{{\"_index\":\"{index}\",\"_id\":\"2\"}}}}\n{{\"n\":\"not a number\"}}\n"
    );
    let response = client.bulk(body.into(), None, None).await.unwrap();
    assert!(response.errors);
    let statuses: Vec<u16> = response.items.iter().map(|i| i.status).collect();
    assert_eq!(statuses, [201, 409, 400]);
    assert_eq!(
        response.items[1].error_type.as_deref(),
        Some("version_conflict_engine_exception")
    );
    assert_eq!(
        response.items[2].error_type.as_deref(),
        Some(common::capabilities::parsing_exception(&info))
    );
    common::cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn alias_swap_is_atomic() {
    let (client, _) = common::client().await;
    let prefix = common::unique("alias");
    let (a, b) = (format!("{prefix}_a"), format!("{prefix}_b"));
    let (read, write) = (format!("{prefix}_read"), format!("{prefix}_write"));
    for index in [&a, &b] {
        client.create_index(index, &json!({})).await.unwrap();
    }
    client
        .update_aliases(&[
            AliasAction::Add {
                index: a.clone(),
                alias: read.clone(),
                is_write_index: None,
            },
            AliasAction::Add {
                index: a.clone(),
                alias: write.clone(),
                is_write_index: Some(true),
            },
        ])
        .await
        .unwrap();

    // Move the write alias to B in one request.
    client
        .update_aliases(&[
            AliasAction::Remove {
                index: a.clone(),
                alias: write.clone(),
                must_exist: Some(true),
            },
            AliasAction::Add {
                index: b.clone(),
                alias: write.clone(),
                is_write_index: Some(true),
            },
        ])
        .await
        .unwrap();
    let expected = vec![
        AliasEntry {
            alias: read.clone(),
            index: a.clone(),
            is_write_index: None,
        },
        AliasEntry {
            alias: write.clone(),
            index: b.clone(),
            is_write_index: Some(true),
        },
    ];
    assert_eq!(
        client.get_aliases(&format!("{prefix}_*")).await.unwrap(),
        expected
    );

    // A list whose precondition fails changes nothing, not even its valid parts.
    let err = client
        .update_aliases(&[
            AliasAction::Add {
                index: b.clone(),
                alias: read.clone(),
                is_write_index: None,
            },
            AliasAction::Remove {
                index: a.clone(),
                alias: write.clone(),
                must_exist: Some(true),
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, EsError::Status { .. }), "{err}");
    assert_eq!(
        client.get_aliases(&format!("{prefix}_*")).await.unwrap(),
        expected
    );

    assert!(client
        .get_aliases(&format!("{prefix}_none"))
        .await
        .unwrap()
        .is_empty());
    common::cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn sliced_scroll_returns_every_document_exactly_once() {
    let (client, _) = common::client().await;
    let prefix = common::unique("scroll");
    let index = format!("{prefix}_a");
    client
        .create_index(&index, &json!({"settings": {"number_of_shards": 3}}))
        .await
        .unwrap();
    let total = 2_000u64;
    let mut body = String::new();
    for i in 0..total {
        // Some documents carry a custom routing, which must come back.
        let routing = if i % 7 == 0 {
            format!(",\"routing\":\"r{}\"", i % 3)
        } else {
            String::new()
        };
        body.push_str(&format!(
            "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{i}\"{routing}}}}}\n{{\"n\":{i},\"raw\":1.50}}\n"
        ));
    }
    let response = client.bulk(body.into(), Some("true"), None).await.unwrap();
    assert!(!response.errors);

    let slices = 4;
    let mut seen = HashSet::new();
    let mut slice_totals = 0;
    for id in 0..slices {
        let keep = Duration::from_secs(60);
        let mut page = client
            .scroll_start(&index, Some(Slice { id, max: slices }), 173, keep)
            .await
            .unwrap();
        slice_totals += page.total.unwrap();
        loop {
            if page.hits.is_empty() {
                break;
            }
            for hit in page.hits.drain(..) {
                let n: u64 = hit.id.parse().unwrap();
                assert_eq!(hit.routing.is_some(), n % 7 == 0, "routing of {n}");
                // The source bytes are the bytes that were indexed.
                assert_eq!(
                    hit.source.unwrap().get(),
                    format!("{{\"n\":{n},\"raw\":1.50}}")
                );
                assert!(seen.insert(n), "document {n} returned twice");
            }
            let scroll_id = page.scroll_id.clone().unwrap();
            page = client.scroll_next(&scroll_id, keep).await.unwrap();
        }
        client
            .clear_scroll(page.scroll_id.as_deref().unwrap())
            .await
            .unwrap();
    }
    assert_eq!(slice_totals, total);
    assert_eq!(seen.len() as u64, total);
    common::cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn point_in_time_pages_with_search_after() {
    let (client, info) = common::client().await;
    assert!(info.supports_pit(), "{info} should support point in time");
    let prefix = common::unique("pit");
    let index = format!("{prefix}_a");
    client
        .create_index(&index, &json!({"settings": {"number_of_shards": 1}}))
        .await
        .unwrap();
    client
        .bulk(common::ndjson_docs(&index, 0..300), Some("true"), None)
        .await
        .unwrap();
    let keep = Duration::from_secs(60);
    let pit = client.open_pit(info.engine, &index, keep).await.unwrap();
    // Documents written after the PIT opened are not part of it.
    client
        .bulk(common::ndjson_docs(&index, 300..310), Some("true"), None)
        .await
        .unwrap();
    // `_doc` is unique within one shard; `_shard_doc` is the general tiebreaker.
    let sort = if info.supports_shard_doc() {
        json!(["_shard_doc"])
    } else {
        json!(["_doc"])
    };
    let mut seen = HashSet::new();
    let mut after = None;
    loop {
        let page = client
            .pit_page(&pit, None, &sort, 64, after.as_deref(), keep)
            .await
            .unwrap();
        let Some(last) = page.hits.last() else { break };
        after = last.sort.clone();
        for hit in &page.hits {
            assert!(seen.insert(hit.id.clone()), "{} twice", hit.id);
        }
    }
    assert_eq!(seen.len(), 300);
    client.close_pit(&pit).await.unwrap();
    // Closing twice is harmless.
    client.close_pit(&pit).await.unwrap();
    common::cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn server_reindex_runs_as_a_task() {
    let (caps, info) = common::capabilities::of_test_node().await;
    if !caps.reindex {
        return common::capabilities::not_on(&info, "server_reindex_runs_as_a_task", "_reindex");
    }
    let (client, _) = common::client().await;
    let prefix = common::unique("task");
    let (a, b) = (format!("{prefix}_a"), format!("{prefix}_b"));
    client.create_index(&a, &json!({})).await.unwrap();
    client
        .bulk(common::ndjson_docs(&a, 0..500), Some("true"), None)
        .await
        .unwrap();
    let task = client
        .start_reindex(
            &json!({"source": {"index": a}, "dest": {"index": b}}),
            "auto",
            None,
        )
        .await
        .unwrap();
    let status = common::eventually_value(
        &format!("reindex task {task} finished"),
        Duration::from_secs(60),
        || async {
            let status = client.get_task(&task).await.map_err(|e| e.to_string())?;
            match status.completed {
                true => Ok(status),
                false => Err("not completed".to_owned()),
            }
        },
    )
    .await;
    let response = status.response.unwrap();
    assert_eq!(response["created"], 500);
    assert_eq!(response["failures"], json!([]));
    client.refresh(&b).await.unwrap();
    assert_eq!(client.count(&b).await.unwrap(), 500);
    common::cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn dead_cluster_fails_fast_with_a_clear_error() {
    // Nothing listens on this port: connection refused at once.
    let dead = common::dead_url();
    let port = dead.port;
    let mut options = ConnectOptions::new(Url::parse(&dead.url).unwrap());
    options.request_timeout = Duration::from_secs(2);
    let client = EsClient::connect(&options).unwrap();
    let started = Instant::now();
    let err = client.info().await.unwrap_err();
    assert!(matches!(err, EsError::Unreachable { .. }), "{err}");
    assert!(err.is_unavailable());
    let text = err.to_string();
    assert!(
        text.contains("GET /") && text.contains(&port.to_string()),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // A server that accepts but never answers: the timeout ends the call.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut options = ConnectOptions::new(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    options.request_timeout = Duration::from_millis(800);
    let client = EsClient::connect(&options).unwrap();
    let err = client.count("anything").await.unwrap_err();
    assert!(matches!(err, EsError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("within 800ms"), "{err}");
    hold.abort();
}

#[tokio::test]
async fn rejects_unusable_connection_settings() {
    let mut options = ConnectOptions::new(Url::parse("ftp://127.0.0.1:9200").unwrap());
    let err = EsClient::connect(&options).unwrap_err();
    assert!(err.to_string().contains("http:// or https://"), "{err}");
    options.urls = vec![Url::parse("https://127.0.0.1:9200").unwrap()];
    options.ca_pem = Some(b"not a certificate".to_vec());
    let err = EsClient::connect(&options).unwrap_err();
    assert!(err.to_string().contains("CA certificate"), "{err}");
}
