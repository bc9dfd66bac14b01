//! How stage 1 fills the new generation: the index's configured engine and
//! ingest pipeline, overridden by the request, checked before anything
//! changes.

use crate::config::bounds::check_rate;
use crate::config::{check_pipeline, CopyEngine, IndexConfig};

use super::error::MigrationError;

/// What a stage-1 request may override (API body, command-line flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage1Options {
    pub engine: Option<CopyEngine>,
    pub pipeline: Option<String>,
    /// Start the copy throttled at this many documents per second.
    pub requests_per_second: Option<f64>,
}

/// The fill one index gets: configuration and request combined.
#[derive(Debug, Clone, PartialEq)]
pub struct FillPlan {
    pub engine: CopyEngine,
    pub pipeline: Option<String>,
    pub requests_per_second: Option<f64>,
}

impl FillPlan {
    /// The index's configuration as it is, without overrides.
    pub fn configured(config: &IndexConfig) -> FillPlan {
        FillPlan {
            engine: config.engine,
            pipeline: config.pipeline.clone(),
            requests_per_second: None,
        }
    }
}

impl Stage1Options {
    /// The plan for `config`'s index, or why the combination is refused.
    pub fn plan(&self, config: &IndexConfig) -> Result<FillPlan, MigrationError> {
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
        Ok(FillPlan {
            engine,
            pipeline,
            requests_per_second: self.requests_per_second,
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
        }
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
            let got = request.plan(&config(engine, pipeline));
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
