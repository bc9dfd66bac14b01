//! Read-only questions about logical indexes: status views and the plan
//! (which live generations differ from their mapping file, and what
//! preflight finds before their next stage 1).

use serde::Serialize;

use super::error::MigrationError;
use super::fill_plan::FillPlan;
use super::mapping::MappingFile;
use super::ops::Migrator;
use super::phase::{IndexState, PhaseKind};
use super::preflight::Finding;
use super::progress::CopyProgress;
use super::view::IndexView;

/// What `plan` says about one logical index.
/// What `plan` advises for one logical index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanAction {
    /// No generation yet: `init` creates one.
    Init,
    /// The live generation was built from the mapping file as it is.
    UpToDate,
    /// The mapping file changed: a stage 1 would build the next generation.
    Reindex,
    /// A migration is under way.
    InProgress,
    /// The mapping file cannot be read or parsed.
    Error,
}

impl PlanAction {
    pub fn name(self) -> &'static str {
        match self {
            PlanAction::Init => "init",
            PlanAction::UpToDate => "up-to-date",
            PlanAction::Reindex => "reindex",
            PlanAction::InProgress => "in-progress",
            PlanAction::Error => "error",
        }
    }
}

impl std::fmt::Display for PlanAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanEntry {
    pub name: String,
    pub phase: PhaseKind,
    /// The generation behind the read alias.
    pub live_index: Option<String>,
    /// Fingerprint stored in the live generation's `_meta.reindexd`.
    pub live_sha256: Option<String>,
    /// Fingerprint of the mapping file now.
    pub mapping_sha256: Option<String>,
    pub action: PlanAction,
    pub detail: String,
    /// What preflight finds for a stage 1 now (live indexes only).
    pub findings: Vec<Finding>,
}

/// Whether a view must include what the cluster says now (drift,
/// writes to the old generation), may do without when the look fails
/// (metrics keep going on a flaky cluster), or needs none of it (systemd's
/// status line shows phase and progress only, every few seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterLook {
    Required,
    BestEffort,
    Skip,
}

impl Migrator {
    /// The status view of `name` (also for indexes not initialised yet),
    /// with any drift between its phase and the aliases.
    pub async fn view(&self, name: &str) -> Result<IndexView, MigrationError> {
        self.view_with(name, |_| None, ClusterLook::Required).await
    }

    /// The one place a status view is built, for the API, the CLI, the
    /// metrics and systemd's status line: the stored state, the live
    /// counters of a copy this process runs (`live`), and what the aliases
    /// and the old generation say now (`look`).
    pub async fn view_with(
        &self,
        name: &str,
        live: impl Fn(&IndexState) -> Option<CopyProgress>,
        look: ClusterLook,
    ) -> Result<IndexView, MigrationError> {
        self.index_config(name)?;
        let Some(stored) = self.store().get(name).await? else {
            let mut view = IndexView::uninitialized(name);
            if look == ClusterLook::Skip {
                return Ok(view);
            }
            view.drift = match self.missing_state(name).await {
                Err(e) if look == ClusterLook::Required => return Err(e),
                found => found.unwrap_or(None),
            };
            return Ok(view);
        };
        let mut view = IndexView::new(&stored.state, live(&stored.state), self.now());
        if look == ClusterLook::Skip {
            return Ok(view);
        }
        match self.observe(&stored.state, &mut view).await {
            Err(e) if look == ClusterLook::Required => Err(e),
            // A failed look leaves the stored numbers.
            _ => Ok(view),
        }
    }

    /// Status views of every configured logical index.
    pub async fn views(&self) -> Result<Vec<IndexView>, MigrationError> {
        let mut views = Vec::new();
        for index in &self.config().indexes {
            views.push(self.view(&index.name).await?);
        }
        Ok(views)
    }

    /// Compares every configured index's live generation with its mapping file.
    pub async fn plan(&self) -> Result<Vec<PlanEntry>, MigrationError> {
        let mut entries = Vec::new();
        for index in &self.config().indexes {
            let mapping = MappingFile::load(&index.mapping);
            let mut entry = PlanEntry {
                name: index.name.clone(),
                phase: PhaseKind::Uninitialized,
                live_index: None,
                live_sha256: None,
                mapping_sha256: mapping.as_ref().ok().map(|m| m.sha256.clone()),
                action: PlanAction::Init,
                detail: String::new(),
                findings: Vec::new(),
            };
            if let Err(e) = &mapping {
                entry.action = PlanAction::Error;
                entry.detail = e.to_string();
            }
            if let Some(stored) = self.store().get(&index.name).await? {
                let live = stored.state.phase.read_index().to_owned();
                let meta = self.es().mapping_meta(&live).await?;
                entry.phase = stored.state.phase.kind();
                entry.live_sha256 = meta["reindexd"]["sha256"].as_str().map(str::to_owned);
                if let (Ok(file), PhaseKind::Live) = (&mapping, stored.state.phase.kind()) {
                    let target = self.names(&index.name).generation(self.now());
                    let plan = FillPlan::configured(index, self.config().copy.priority);
                    entry.findings = self
                        .preflight(&index.name, &live, &target, file, &plan)
                        .await?;
                }
                entry.live_index = Some(live);
                if entry.action != PlanAction::Error {
                    (entry.action, entry.detail) = match stored.state.phase.kind() {
                        PhaseKind::Live | PhaseKind::Flipped
                            if entry.live_sha256 == entry.mapping_sha256 =>
                        {
                            (
                                PlanAction::UpToDate,
                                "the live generation was built from this mapping file".into(),
                            )
                        }
                        PhaseKind::Live | PhaseKind::Flipped => (
                            PlanAction::Reindex,
                            format!(
                                "{} differs from the live generation",
                                index.mapping.display()
                            ),
                        ),
                        phase => (PlanAction::InProgress, format!("a migration is {phase}")),
                    };
                }
            } else if entry.action != PlanAction::Error {
                entry.detail = "no generation yet".into();
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}
