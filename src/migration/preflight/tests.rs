//! The preflight rules on canned cluster answers, including what the test
//! node cannot produce (ILM/ISM settings, ISM policies, data-stream
//! aliases of Elasticsearch).

use std::path::Path;

use serde_json::{json, Map, Value};

use super::source::{lost_fields, ROLLOVER_SETTINGS};
use super::*;
use crate::es::{IndexTemplate, LegacyTemplate};

const SOURCE: &str = "kb_20260101000000";
const TARGET: &str = "kb_20260202000000";

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn file(text: &str) -> MappingFile {
    MappingFile::parse(Path::new("mappings/kb.json"), text.as_bytes()).unwrap()
}

/// A mapping file stating shards and replicas and two fields.
fn kb_file() -> MappingFile {
    file(
        r#"{"settings": {"number_of_shards": 2, "index": {"max_result_window": 100}},
             "mappings": {"dynamic": false, "properties": {"title": {"type": "text"},
               "meta": {"properties": {"a": {"type": "keyword"}}}}}}"#,
    )
}

fn run(seen: &Observed, accepted: &[&str]) -> Vec<Finding> {
    let accepted: Vec<String> = accepted.iter().map(|s| s.to_string()).collect();
    judge(
        &Names::new("", "kb"),
        &accepted,
        &kb_file(),
        SOURCE,
        TARGET,
        seen,
    )
}

fn codes(findings: &[Finding]) -> Vec<(Level, &'static str)> {
    findings.iter().map(|f| (f.level, f.code)).collect()
}

fn with_source(mappings: Value, settings: Value) -> Observed {
    Observed {
        source: IndexDefinition {
            settings: map(settings),
            mappings: map(mappings),
            aliases: Vec::new(),
        },
        ..Observed::default()
    }
}

fn composable(name: &str, pattern: &str, priority: i64, data_stream: bool) -> IndexTemplate {
    IndexTemplate {
        name: name.into(),
        index_patterns: vec![pattern.into()],
        priority,
        composed_of: Vec::new(),
        data_stream,
    }
}

#[test]
fn glob_matches_like_the_engines() {
    for (p, t) in [
        ("kb*", "kb_1"),
        ("*", "x"),
        ("k*_*1", "kb_21"),
        ("kb_1", "kb_1"),
        ("*b_*", "kb_1"),
    ] {
        assert!(glob(p, t), "{p} matches {t}");
    }
    for (p, t) in [
        ("kb", "kb_1"),
        ("x*", "kb"),
        ("*a*a", "xa"),
        ("kb*2", "kb_21"),
    ] {
        assert!(!glob(p, t), "{p} does not match {t}");
    }
}

#[test]
fn a_plain_source_has_no_findings() {
    assert_eq!(
        run(&with_source(json!({"properties": {}}), json!({})), &[]),
        []
    );
}

#[test]
fn source_disabled_is_refused() {
    let seen = with_source(json!({"_source": {"enabled": false}}), json!({}));
    assert_eq!(
        codes(&run(&seen, &[])),
        [(Level::Refuse, "source_disabled")]
    );
}

#[test]
fn filtered_source_is_refused_until_every_lost_field_is_accepted() {
    let seen = with_source(
        json!({"_source": {"excludes": ["secret", "meta.*"]}, "properties": {"secret": {"type": "keyword"}}}),
        json!({}),
    );
    let refused = run(&seen, &["secret"]);
    assert_eq!(codes(&refused), [(Level::Refuse, "source_filtered")]);
    let message = &refused[0].message;
    assert!(message.contains(r#"keeps "meta.*" out"#), "{message}");
    assert!(
        message.contains(r#"accept_lost_fields = ["secret", "meta.*"]"#),
        "{message}"
    );
    assert_eq!(
        codes(&run(&seen, &["meta.*", "secret"])),
        [(Level::Warn, "source_filtered")]
    );
}

#[test]
fn includes_lose_the_mapped_fields_they_do_not_cover() {
    let mappings = map(
        json!({"_source": {"includes": ["title", "meta"]}, "properties": {
        "title": {"type": "text"}, "body": {"type": "text"},
        "meta": {"properties": {"a": {"type": "keyword"}}},
        "other": {"properties": {"b": {"type": "keyword"}}}}}),
    );
    assert_eq!(lost_fields(&mappings), ["body", "other.b"]);
}

#[test]
fn synthetic_source_and_lifecycle_policies_warn() {
    for seen in [
        with_source(json!({"_source": {"mode": "synthetic"}}), json!({})),
        with_source(json!({}), json!({"index.mapping.source.mode": "synthetic"})),
    ] {
        assert_eq!(codes(&run(&seen, &[])), [(Level::Warn, "synthetic_source")]);
    }
    let seen = with_source(
        json!({}),
        json!({"index.plugins.index_state_management.policy_id": "hot"}),
    );
    assert_eq!(codes(&run(&seen, &[])), [(Level::Warn, "source_lifecycle")]);
}

#[test]
fn rollover_managed_sources_are_refused() {
    for key in ROLLOVER_SETTINGS {
        let seen = with_source(
            json!({}),
            json!({ key: "logs_write", "index.lifecycle.name": "p" }),
        );
        let found = run(&seen, &[]);
        assert_eq!(
            codes(&found),
            [(Level::Refuse, "unsupported_source")],
            "{key}"
        );
        assert!(found[0].message.contains(key));
    }
}

#[test]
fn data_streams_are_refused_however_they_are_reached() {
    let cases = [
        Resolved {
            data_streams: vec!["kb_20260101000000".into()],
            ..Resolved::default()
        },
        Resolved {
            indices: vec![(".ds-logs-000001".into(), Some("logs".into()))],
            ..Resolved::default()
        },
        // Elasticsearch data-stream aliases: the read alias points at a stream.
        Resolved {
            aliases: vec![("kb_read".into(), vec!["logs".into()])],
            data_streams: vec!["logs".into()],
            ..Resolved::default()
        },
    ];
    for resolved in cases {
        let seen = Observed {
            resolved: resolved.clone(),
            ..Observed::default()
        };
        assert_eq!(
            codes(&run(&seen, &[])),
            [(Level::Refuse, "unsupported_source")],
            "{resolved:?}"
        );
    }
}

#[test]
fn extra_aliases_are_listed_and_an_extra_write_alias_refused() {
    let link = |alias: &str, props: Value| AliasDefinition::from_props(alias, SOURCE, &props);
    let mut seen = Observed::default();
    seen.source.aliases = vec![
        link("kb_read", json!({})),
        link("kb_write", json!({"is_write_index": true})),
        link(
            "kb_public",
            json!({"filter": {"term": {"p": true}}, "index_routing": "1", "search_routing": "1", "is_hidden": true}),
        ),
        link("legacy_write", json!({"is_write_index": true})),
    ];
    let found = run(&seen, &[]);
    assert_eq!(
        codes(&found),
        [
            (Level::Info, "extra_alias"),
            (Level::Refuse, "extra_write_alias")
        ]
    );
    let m = &found[0].message;
    assert!(
        m.contains(r#"filter {"term":{"p":true}}"#)
            && m.contains("index_routing 1")
            && m.contains("hidden"),
        "{m}"
    );
    assert!(found[1].message.contains("legacy_write"));
}

fn with_template(settings: Value, mappings: Value, aliases: Value) -> Observed {
    Observed {
        composable: vec![composable("kb-template", "kb_*", 10, false)],
        simulated: SimulatedIndex {
            settings: crate::es::flat_settings(&map(settings)),
            mappings: map(mappings),
            aliases: map(aliases),
        },
        ..Observed::default()
    }
}

#[test]
fn a_template_stating_only_what_the_file_states_is_harmless() {
    let seen = with_template(
        json!({"index": {"number_of_shards": "3", "max_result_window": "5", "number_of_replicas": "2", "refresh_interval": "30s"}}),
        json!({"dynamic": true, "_meta": {"team": "x"}, "properties": {"title": {"type": "keyword"}, "meta": {"properties": {"a": {"type": "text"}}}}}),
        json!({}),
    );
    assert_eq!(run(&seen, &[]), []);
}

#[test]
fn a_template_adding_anything_unstated_is_refused_and_named() {
    let seen = with_template(
        json!({"index": {"default_pipeline": "enrich", "lifecycle": {"name": "hot"}, "codec": "best_compression"}}),
        json!({"_source": {"excludes": ["x"]}, "properties": {"added": {"type": "keyword"}, "meta": {"properties": {"b": {"type": "long"}}}},
               "dynamic_templates": [{"strings": {"match_mapping_type": "string"}}]}),
        json!({"kb_all": {}, "kb_w": {"is_write_index": true}}),
    );
    let found = run(&seen, &[]);
    assert_eq!(codes(&found), [(Level::Refuse, "template_conflict")]);
    let m = &found[0].message;
    for part in [
        "index template kb-template would add to kb_20260202000000",
        "alias kb_all",
        "write alias kb_w",
        "ingest pipeline index.default_pipeline = enrich",
        "lifecycle policy index.lifecycle.name = hot",
        "setting index.codec = best_compression",
        r#"mapping parameter _source = {"excludes":["x"]}"#,
        "field added",
        "field meta.b",
        "dynamic template strings",
        "mappings/kb.json",
    ] {
        assert!(m.contains(part), "{part:?} in {m}");
    }
}

#[test]
fn only_the_winning_composable_template_counts_and_it_hides_legacy_ones() {
    let mut seen = with_template(json!({"index": {"codec": "x"}}), json!({}), json!({}));
    seen.composable.push(composable("low", "kb*", 1, true));
    seen.composable
        .push(composable("other", "wiki_*", 99, true));
    seen.legacy = vec![legacy("old", json!({"index.codec": "y"}))];
    let found = run(&seen, &[]);
    assert_eq!(found.len(), 1);
    assert!(found[0]
        .message
        .starts_with("index template kb-template would add"));

    seen.composable
        .push(composable("streams", "kb_2*", 50, true));
    let found = run(&seen, &[]);
    assert_eq!(codes(&found), [(Level::Refuse, "template_conflict")]);
    assert!(found[0]
        .message
        .contains("streams matches kb_20260202000000 and makes data streams only"));
}

fn legacy(name: &str, settings: Value) -> LegacyTemplate {
    LegacyTemplate {
        name: name.into(),
        index_patterns: vec!["kb_*".into()],
        order: 0,
        settings: map(settings),
        mappings: Map::new(),
        aliases: Map::new(),
    }
}

#[test]
fn legacy_templates_count_when_no_composable_template_matches() {
    let seen = Observed {
        legacy: vec![
            legacy("harmless", json!({"index.number_of_shards": "1"})),
            legacy("wide", json!({"index.final_pipeline": "audit"})),
        ],
        ..Observed::default()
    };
    let found = run(&seen, &[]);
    assert_eq!(codes(&found), [(Level::Refuse, "template_conflict")]);
    assert!(found[0].message.contains("legacy template wide would add"));
    assert!(found[0]
        .message
        .contains("ingest pipeline index.final_pipeline = audit"));
}

#[test]
fn ism_policies_that_would_attach_are_refused() {
    let seen = Observed {
        ism: Ism::Templates(vec![
            IsmTemplate {
                policy: "rollover".into(),
                index_patterns: vec!["kb_*".into()],
            },
            IsmTemplate {
                policy: "logs".into(),
                index_patterns: vec!["logs-*".into()],
            },
        ]),
        ..Observed::default()
    };
    let found = run(&seen, &[]);
    assert_eq!(codes(&found), [(Level::Refuse, "template_conflict")]);
    assert!(found[0].message.contains("ISM policy rollover"));
    let seen = Observed {
        ism: Ism::Unreadable("403".into()),
        ..Observed::default()
    };
    assert_eq!(codes(&run(&seen, &[])), [(Level::Warn, "ism_unchecked")]);
}

#[test]
fn a_refusal_reads_as_one_line_with_every_code() {
    let seen = with_source(json!({"_source": {"enabled": false}}), json!({}));
    let mut findings = run(&seen, &[]);
    findings.extend(run(
        &with_template(json!({"index": {"codec": "x"}}), json!({}), json!({})),
        &[],
    ));
    let refusal = PreflightRefusal {
        index: "kb".into(),
        findings,
    };
    let text = refusal.to_string();
    assert_eq!(refusal.code(), "source_disabled");
    assert!(
        text.starts_with("kb: stage 1 refused, nothing was changed: [source_disabled] "),
        "{text}"
    );
    assert!(
        text.contains("; [template_conflict] index template kb-template"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}
