//! `/v1/indexes` handlers: status, stage 1, controls, stage 2, rollback,
//! cleanup. Bodies are parsed strictly: unknown fields are refused.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::config::bounds::check_rate;
use crate::config::{CopyEngine, Priority};
use crate::migration::{
    Action, ClusterLook, CopyProgress, IndexState, IndexView, Stage1Options, WritesPolicy,
};

/// Parses an optional JSON body; empty means `T::default()`.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let malformed =
        |detail: String| ApiError::bad_request("malformed_body", format!("request body: {detail}"));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("expected a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
}

/// A view with the live counters of a copy this daemon runs.
fn view_of(app: &AppState, state: &IndexState) -> IndexView {
    IndexView::new(state, app.jobs.live(state), Utc::now())
}

pub async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut views = Vec::new();
    for index in &app.migrator.config().indexes {
        views.push(one_view(&app, &index.name).await?);
    }
    Ok(Json(json!({ "indexes": views })))
}

pub async fn get(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<IndexView>, ApiError> {
    Ok(Json(one_view(&app, &name).await?))
}

async fn one_view(app: &AppState, name: &str) -> Result<IndexView, ApiError> {
    let live = |state: &IndexState| app.jobs.live(state);
    Ok(app
        .migrator
        .view_with(name, live, ClusterLook::Required)
        .await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReindexBody {
    /// Start throttled at this many documents per second.
    requests_per_second: Option<f64>,
    /// `client`, `server` or `external` instead of the configured engine.
    engine: Option<CopyEngine>,
    /// An ingest pipeline instead of the configured one.
    pipeline: Option<String>,
    /// `normal` or `background` instead of `copy.priority`.
    priority: Option<Priority>,
}

impl ReindexBody {
    fn options(self) -> Stage1Options {
        Stage1Options {
            engine: self.engine,
            pipeline: self.pipeline,
            requests_per_second: self.requests_per_second,
            priority: self.priority,
        }
    }
}

pub async fn init(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    body::<Empty>(&bytes)?;
    let state = app.migrator.init(&name).await?;
    Ok(Json(view_of(&app, &state)))
}

pub async fn reindex(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    let request: ReindexBody = body(&bytes)?;
    let mut states = start(&app, std::slice::from_ref(&name), &request.options()).await?;
    Ok(Json(view_of(&app, &states.remove(0))))
}

/// Stage 1 for all of `names` (all or nothing), then their copies (an
/// external refill has none: the application fills it).
async fn start(
    app: &AppState,
    names: &[String],
    options: &Stage1Options,
) -> Result<Vec<IndexState>, ApiError> {
    let states = app.migrator.reindex_all(names, options).await?;
    for state in states.iter().filter(|s| s.phase.copying().is_some()) {
        app.jobs.start(&state.name);
    }
    Ok(states)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MegapackBody {
    indexes: Vec<String>,
    #[serde(default)]
    requests_per_second: Option<f64>,
    #[serde(default)]
    engine: Option<CopyEngine>,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
}

/// `POST /v1/reindex`: stage 1 for several logical indexes at once. All
/// are checked first; if one cannot start, none is left changed.
pub async fn megapack(State(app): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let request: MegapackBody = body(&bytes)?;
    let options = Stage1Options {
        engine: request.engine,
        pipeline: request.pipeline,
        requests_per_second: request.requests_per_second,
        priority: request.priority,
    };
    let started = start(&app, &request.indexes, &options).await?;
    let views: Vec<IndexView> = started.iter().map(|s| view_of(&app, s)).collect();
    Ok(Json(json!({ "indexes": views })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleBody {
    /// Documents per second; `null` removes the limit.
    requests_per_second: Option<f64>,
}

pub async fn pause(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    body::<Empty>(&bytes)?;
    control(&app, &name, Action::Pause, |c| c.paused = true).await
}

pub async fn resume(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    body::<Empty>(&bytes)?;
    control(&app, &name, Action::Resume, |c| c.paused = false).await
}

pub async fn throttle(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_body",
            "send {\"requests_per_second\": N} (or null for no limit)",
        ));
    }
    let request: ThrottleBody = body(&bytes)?;
    if let Some(r) = request.requests_per_second {
        check_rate(r).map_err(|e| ApiError::bad_request("invalid_value", e))?;
    }
    control(&app, &name, Action::Throttle, move |c| {
        c.requests_per_second = request.requests_per_second
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityBody {
    priority: Option<Priority>,
}

/// `POST /v1/indexes/{name}/priority` with `{"priority": "background"}`
/// (or `"normal"`): whether the running copy yields to live search.
pub async fn priority(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    let Some(priority) = body::<PriorityBody>(&bytes)?.priority else {
        return Err(ApiError::bad_request(
            "malformed_body",
            "send {\"priority\": \"background\"} or {\"priority\": \"normal\"}",
        ));
    };
    control(&app, &name, Action::Priority, move |c| {
        c.background = priority == Priority::Background
    })
    .await
}

/// Stores a control change and tells the running copy at once.
async fn control(
    app: &AppState,
    name: &str,
    action: Action,
    f: impl Fn(&mut CopyProgress),
) -> Result<Json<IndexView>, ApiError> {
    let state = app.migrator.update_copy(name, action, f).await?;
    app.jobs.apply_control(&state);
    Ok(Json(view_of(app, &state)))
}

pub async fn accept(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    body::<Empty>(&bytes)?;
    let state = app.migrator.accept(&name).await?;
    Ok(Json(view_of(&app, &state)))
}

/// `POST /v1/indexes/{name}/filled`: the application's refill is done.
pub async fn filled(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<IndexView>, ApiError> {
    body::<Empty>(&bytes)?;
    let state = app.migrator.filled(&name).await?;
    Ok(Json(view_of(&app, &state)))
}

pub async fn flip(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    body::<Empty>(&bytes)?;
    let state = app.migrator.flip(&name).await?;
    Ok(Json(
        json!({"message": "STUCK THE LANDING!", "index": view_of(&app, &state)}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// `replay` or `discard`; absent: refuse when writes would be lost.
    #[serde(default)]
    writes: Option<RollbackWrites>,
}

/// The body's spelling of a rollback's writes policy: only the two
/// explicit choices, so a typo is a 400 rather than a bare rollback.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RollbackWrites {
    Replay,
    Discard,
}

/// The index view with a `rollback` report: what happened to the
/// application's writes since stage 1.
pub async fn rollback(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let policy = match body::<RollbackBody>(&bytes)?.writes {
        None => WritesPolicy::Refuse,
        Some(RollbackWrites::Replay) => WritesPolicy::Replay,
        Some(RollbackWrites::Discard) => WritesPolicy::Discard,
    };
    // A task of its own: a client that gives up must not cut a replay
    // short between blocking writes and moving the aliases.
    let rollback = {
        let (migrator, name) = (app.migrator.clone(), name.clone());
        tokio::spawn(async move { migrator.rollback(&name, policy).await })
    };
    let (state, report) = rollback.await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the rollback task stopped: {e}"),
        )
    })??;
    if let Some(handle) = app.jobs.get(&name) {
        handle.cancel();
    }
    let mut answer = serde_json::to_value(view_of(&app, &state)).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )
    })?;
    answer["rollback"] = json!(report);
    Ok(Json(answer))
}

/// Rebuilds a lost state or aligns drifted aliases with the state.
pub async fn repair(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    body::<Empty>(&bytes)?;
    let (state, repaired) = app.migrator.repair(&name).await?;
    Ok(Json(
        json!({"repaired": repaired, "index": view_of(&app, &state)}),
    ))
}

pub async fn cleanup(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    body::<Empty>(&bytes)?;
    let (state, deleted) = app.migrator.cleanup(&name).await?;
    Ok(Json(
        json!({"deleted": deleted, "index": view_of(&app, &state)}),
    ))
}
