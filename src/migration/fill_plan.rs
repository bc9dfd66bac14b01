//! How stage 1 fills the new generation: the index's configured engine and
//! ingest pipeline, overridden by the request, checked before anything
//! changes.

use crate::config::bounds::check_rate;
use crate::config::{check_pipeline, CopyEngine, IndexConfig, Priority};

use super::error::MigrationError;

/// What a stage-1 request may override (API body, command-line flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage1Options {
    pub engine: Option<CopyEngine>,
    pub pipeline: Option<String>,
    /// Start the copy throttled at this many documents per second.
    pub requests_per_second: Option<f64>,
    /// Start the copy at this priority instead of `copy.priority`.
    pub priority: Option<Priority>,
}

/// The fill one index gets: configuration and request combined.
#[derive(Debug, Clone, PartialEq)]
pub struct FillPlan {
    pub engine: CopyEngine,
    pub pipeline: Option<String>,
    pub requests_per_second: Option<f64>,
    /// Yield to live search: asked by the request, or `copy.priority`
    /// for a client copy (the only engine that can yield).
    pub background: bool,
}

impl FillPlan {
    /// The index's configuration as it is, without overrides.
    pub fn configured(config: &IndexConfig, default: Priority) -> FillPlan {
        FillPlan {
            engine: config.engine,
            pipeline: config.pipeline.clone(),
            requests_per_second: None,
            background: config.engine == CopyEngine::Client && default == Priority::Background,
        }
    }
}

impl Stage1Options {
    /// The plan for `config`'s index (`default`: `copy.priority`), or why
    /// the combination is refused.
    pub fn plan(
        &self,
        config: &IndexConfig,
        default: Priority,
    ) -> Result<FillPlan, MigrationError> {
        let invalid = |m: String| Err(MigrationError::Invalid(m));
        if let Some(rate) = self.requests_per_second {
            check_rate(rate).map_err(MigrationError::Invalid)?;
        }
        if let Some(pipeline) = &self.pipeline {
            check_pipeline(pipeline).map_err(MigrationError::Invalid)?;
        }
        let engine = self.engine.unwrap_or(config.engine);
        // A request that names another engine leaves the configured
        // pipeline behind only when it says so by naming none for external.
        let pipeline = match (&self.pipeline, engine) {
            (Some(p), _) => Some(p.clone()),
            (None, CopyEngine::External) => None,
            (None, _) => config.pipeline.clone(),
        };
        if self.priority.is_some() && engine != CopyEngine::Client {
            return invalid(format!(
                "{}: only the client engine can change its pace for live search; the {} engine has no priority",
                config.name,
                engine.name()
            ));
        }
        if engine == CopyEngine::External {
            if self.requests_per_second.is_some() {
                return invalid(format!(
                    "{}: an external refill is written by the application, which sets its own pace; \
                     reindexd has no copy to throttle",
                    config.name
                ));
            }
            if pipeline.is_some() {
                return invalid(format!(
                    "{}: an external refill is written by the application, not reindexd; to transform its \
                     documents set index.default_pipeline in the mapping file",
                    config.name
                ));
            }
        }
        let priority = match engine {
            CopyEngine::Client => self.priority.unwrap_or(default),
            _ => Priority::Normal,
        };
        Ok(FillPlan {
            engine,
            pipeline,
            requests_per_second: self.requests_per_second,
            background: priority == Priority::Background,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(engine: CopyEngine, pipeline: Option<&str>) -> IndexConfig {
        IndexConfig {
            name: "kb".into(),
            mapping: "mappings/kb.json".into(),
            engine,
            pipeline: pipeline.map(str::to_owned),
            fill_tolerance: 0,
            accept_lost_fields: Vec::new(),
        }
    }

    fn options(
        engine: Option<CopyEngine>,
        pipeline: Option<&str>,
        rate: Option<f64>,
    ) -> Stage1Options {
        Stage1Options {
            engine,
            pipeline: pipeline.map(str::to_owned),
            requests_per_second: rate,
            priority: None,
        }
    }

    #[test]
    fn only_client_copies_take_a_priority() {
        use CopyEngine::*;
        let background = |engine| Stage1Options {
            engine: Some(engine),
            priority: Some(Priority::Background),
            ..Default::default()
        };
        let plan = background(Client).plan(&config(Client, None), Priority::Normal);
        assert!(plan.unwrap().background);
        for engine in [Server, External] {
            let refused = background(engine).plan(&config(Client, None), Priority::Normal);
            assert!(
                matches!(refused, Err(MigrationError::Invalid(_))),
                "{engine:?}"
            );
        }
        // The configured default reaches client copies only.
        let by_default = |engine| {
            Stage1Options::default()
                .plan(&config(engine, None), Priority::Background)
                .unwrap()
                .background
        };
        assert_eq!(
            (by_default(Client), by_default(Server), by_default(External)),
            (true, false, false)
        );
    }

    /// (configured engine, configured pipeline, request, the plan's engine
    /// and pipeline or `None` for refused)
    type Row = (
        CopyEngine,
        Option<&'static str>,
        Stage1Options,
        Option<(CopyEngine, Option<&'static str>)>,
    );

    #[test]
    fn requests_override_the_configuration() {
        use CopyEngine::*;
        let table: Vec<Row> = vec![
            (
                Client,
                None,
                options(None, None, None),
                Some((Client, None)),
            ),
            (
                Client,
                Some("p"),
                options(None, None, None),
                Some((Client, Some("p"))),
            ),
            (
                Client,
                Some("p"),
                options(None, Some("q"), None),
                Some((Client, Some("q"))),
            ),
            (
                Client,
                Some("p"),
                options(Some(Server), None, None),
                Some((Server, Some("p"))),
            ),
            (
                Client,
                Some("p"),
                options(Some(External), None, None),
                Some((External, None)),
            ),
            (
                External,
                None,
                options(None, None, None),
                Some((External, None)),
            ),
            (
                External,
                None,
                options(Some(Client), Some("p"), Some(5.0)),
                Some((Client, Some("p"))),
            ),
            (External, None, options(None, None, Some(5.0)), None),
            (External, None, options(None, Some("p"), None), None),
            (Client, None, options(Some(External), Some("p"), None), None),
            (Client, None, options(None, Some("no spaces"), None), None),
            (Client, None, options(None, None, Some(0.5)), None),
            (Client, None, options(None, None, Some(f64::NAN)), None),
        ];
        for (engine, pipeline, request, expected) in table {
            let got = request.plan(&config(engine, pipeline), Priority::Normal);
            match expected {
                Some((engine, pipeline)) => {
                    let plan = got.unwrap_or_else(|e| panic!("{request:?} refused: {e}"));
                    assert_eq!(
                        (plan.engine, plan.pipeline.as_deref()),
                        (engine, pipeline),
                        "{request:?}"
                    );
                }
                None => assert!(
                    matches!(got, Err(MigrationError::Invalid(_))),
                    "{request:?} on {engine:?} should be refused, got {got:?}"
                ),
            }
        }
    }
}
