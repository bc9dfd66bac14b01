//! Preflight: what the cluster would silently change or lose if stage 1
//! ran now — a source whose `_source` cannot give back every document, a
//! source that is a data stream or managed by rollover, an extra write
//! alias on the source, templates or ISM policies that would shape the new
//! generation beyond its mapping file (see `templates`), a server engine
//! the cluster cannot run (see `engine`); first of all, credentials that
//! lack a privilege reindexd needs (see `privileges`).
//!
//! It only reads the cluster. What it read is judged by pure functions, so
//! `plan` shows exactly the findings that stage 1 refuses on.

mod engine;
mod pipeline;
mod privileges;
mod source;
mod templates;

use tracing::warn;

use super::error::MigrationError;
use super::fill_plan::FillPlan;
pub use super::finding::{Finding, Level, PreflightRefusal};
use super::mapping::MappingFile;
use super::names::Names;
use super::ops::Migrator;
use crate::config::CopyEngine;
use crate::es::{
    AliasDefinition, IndexDefinition, IndexTemplate, IsmTemplate, LegacyTemplate, Resolved,
    ServerCopySupport, SimulatedIndex,
};

/// What preflight reads from the cluster.
#[derive(Debug, Clone, Default)]
pub(super) struct Observed {
    /// The live generation: settings, mappings, aliases.
    pub source: IndexDefinition,
    /// The source and the read alias resolved.
    pub resolved: Resolved,
    pub composable: Vec<IndexTemplate>,
    /// What composable templates would give the new generation.
    pub simulated: SimulatedIndex,
    pub legacy: Vec<LegacyTemplate>,
    pub ism: Ism,
    /// What the cluster offers the server engine; read only when the
    /// index is configured with `engine = "server"`.
    pub server_copy: Option<ServerCopySupport>,
    /// The ingest pipelines the new generation's writes would run.
    pub pipelines: pipeline::Pipelines,
}

/// The `ism_template`s of ISM policies, as far as they could be read.
#[derive(Debug, Clone, Default)]
pub(super) enum Ism {
    /// No ISM on this cluster.
    #[default]
    Absent,
    Templates(Vec<IsmTemplate>),
    /// The policies could not be read (no privilege); the reason.
    Unreadable(String),
}

impl Migrator {
    /// Findings for a stage 1 of `name` from `source` into a generation
    /// called `target`. Reads the cluster, changes nothing.
    pub async fn preflight(
        &self,
        name: &str,
        source: &str,
        target: &str,
        mapping: &MappingFile,
        plan: &FillPlan,
    ) -> Result<Vec<Finding>, MigrationError> {
        let config = self.index_config(name)?;
        let accepted = &config.accept_lost_fields;
        let server = plan.engine == CopyEngine::Server;
        let names = self.names(name);
        let es = self.es();
        let state_index = &self.config().migration.state_index;
        let asked = privileges::required(&names, state_index);
        if let Some(missing) = es.missing_privileges(&privileges::CLUSTER, &asked).await? {
            if !missing.is_empty() {
                // The other reads would only be refused.
                return Ok(privileges::findings(&missing));
            }
        }
        let read = names.read_alias();
        let resolve = [source, read.as_str()];
        let (source_def, resolved, composable, simulated, legacy, ism, server_copy) = tokio::try_join!(
            es.index_definition(source),
            es.resolve_index(&resolve),
            es.index_templates(),
            es.simulate_index(target),
            es.legacy_templates(),
            async {
                match es.ism_templates().await {
                    Ok(None) => Ok(Ism::Absent),
                    Ok(Some(templates)) => Ok(Ism::Templates(templates)),
                    Err(e) if e.is_auth() => Ok(Ism::Unreadable(e.to_string())),
                    Err(e) => Err(e),
                }
            },
            async {
                match server {
                    true => es.server_copy_support().await.map(Some),
                    false => Ok(None),
                }
            },
        )?;
        let pipelines = self.pipelines(plan, mapping).await?;
        let seen = Observed {
            source: source_def,
            resolved,
            composable,
            simulated,
            legacy,
            ism,
            server_copy,
            pipelines,
        };
        Ok(judge(&names, accepted, mapping, source, target, &seen))
    }

    /// Looks up the pipelines `plan` and the mapping file name.
    async fn pipelines(
        &self,
        plan: &FillPlan,
        mapping: &MappingFile,
    ) -> Result<pipeline::Pipelines, MigrationError> {
        let settings = mapping.flat_settings();
        let mut seen = pipeline::Pipelines {
            copy: plan.pipeline.clone(),
            default: settings
                .get("index.default_pipeline")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            ..Default::default()
        };
        for (name, by) in pipeline::wanted(plan.pipeline.as_deref(), &settings) {
            let exists = match self.es().pipeline_exists(&name).await {
                Ok(found) => Ok(found),
                Err(e) if e.is_auth() => Err(e.to_string()),
                Err(e) => return Err(e.into()),
            };
            seen.uses.push(pipeline::PipelineUse { name, by, exists });
        }
        if !seen.uses.is_empty() {
            seen.ingest_nodes = self.es().ingest_nodes().await?;
        }
        Ok(seen)
    }

    /// Runs [`Migrator::preflight`]; refuses when any finding is a
    /// refusal and logs the warnings otherwise.
    pub(super) async fn check_preflight(
        &self,
        name: &str,
        source: &str,
        target: &str,
        mapping: &MappingFile,
        plan: &FillPlan,
    ) -> Result<(), MigrationError> {
        let findings = self.preflight(name, source, target, mapping, plan).await?;
        let (refusals, rest): (Vec<Finding>, Vec<Finding>) =
            findings.into_iter().partition(|f| f.level == Level::Refuse);
        if !refusals.is_empty() {
            return Err(MigrationError::Preflight(PreflightRefusal {
                index: name.to_owned(),
                findings: refusals,
            }));
        }
        for f in rest.iter().filter(|f| f.level == Level::Warn) {
            warn!(index = name, code = f.code, "preflight: {}", f.message);
        }
        Ok(())
    }

    /// The aliases on generation `index` other than `name`'s read and
    /// write aliases, each with its full definition (filter, routing,
    /// flags) so it can be recreated on another generation.
    pub async fn extra_aliases(
        &self,
        name: &str,
        index: &str,
    ) -> Result<Vec<AliasDefinition>, MigrationError> {
        let names = self.names(name);
        let mut links = self.es().alias_definitions(index).await?;
        links.retain(|l| !is_own(&names, &l.alias));
        Ok(links)
    }
}

fn is_own(names: &Names, alias: &str) -> bool {
    alias == names.read_alias() || alias == names.write_alias()
}

/// Every finding, refusals of the source first, then aliases, then what
/// templates would do to the new generation.
pub(super) fn judge(
    names: &Names,
    accepted: &[String],
    file: &MappingFile,
    source: &str,
    target: &str,
    seen: &Observed,
) -> Vec<Finding> {
    let mut findings = source::data_stream(&names.read_alias(), &seen.resolved);
    findings.extend(source::lifecycle(source, &seen.source));
    findings.extend(source::source_field(source, &seen.source, accepted));
    findings.extend(aliases(names, &seen.source.aliases));
    findings.extend(templates::findings(target, file, seen));
    findings.extend(engine::server_copy(seen.server_copy.as_ref()));
    findings.extend(pipeline::findings(&seen.pipelines));
    findings
}

/// Extra aliases on the source: listed; one that is a write alias refused,
/// since reindexd cannot say where its writes should go during the copy.
fn aliases(names: &Names, links: &[AliasDefinition]) -> Vec<Finding> {
    links
        .iter()
        .filter(|l| !is_own(names, &l.alias))
        .map(|l| {
            let mut parts = Vec::new();
            if let Some(f) = &l.filter {
                parts.push(format!("filter {f}"));
            }
            if let Some(r) = &l.index_routing {
                parts.push(format!("index_routing {r}"));
            }
            if let Some(r) = &l.search_routing {
                parts.push(format!("search_routing {r}"));
            }
            if l.is_hidden == Some(true) {
                parts.push("hidden".into());
            }
            let detail = if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            };
            if l.is_write_index == Some(true) {
                Finding::new(
                    Level::Refuse,
                    "extra_write_alias",
                    format!(
                        "{} is a write alias of {}{detail}: writes through it would keep going to the old generation during the copy and be lost; \
                         remove it or make applications write through {}",
                        l.alias,
                        l.index,
                        names.write_alias()
                    ),
                )
            } else {
                Finding::new(
                    Level::Info,
                    "extra_alias",
                    format!("{} also points at {}{detail}", l.alias, l.index),
                )
            }
        })
        .collect()
}

/// The engines' index-pattern match: `*` stands for any run of characters.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut text) = text.strip_prefix(head) else {
        return false;
    };
    let mut parts: Vec<&str> = rest.split('*').collect();
    let last = parts.pop().unwrap_or_default();
    for part in parts {
        match text.find(part) {
            Some(at) => text = &text[at + part.len()..],
            None => return false,
        }
    }
    text.len() >= last.len() && text.ends_with(last)
}

#[cfg(test)]
mod tests;
