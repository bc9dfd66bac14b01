//! A copy's claim in the stored state: the lease that says which process
//! runs it, the checkpoints that renew it, and giving it up or handing the
//! finished copy to the lifecycle. Both engines save progress only here.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::CopyError;
use super::handle::CopyHandle;
use crate::migration::{
    Action, CopyProgress, IndexState, Lease, MigrationError, Migrator, Phase, Stored,
};

/// An id for this process in leases: host, pid and start time.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    )
}

/// How long a copy's claim holds without renewal: three checkpoints, so a
/// dead owner is replaced quickly and a slow checkpoint is not.
pub(super) fn lease_duration(checkpoint_interval: Duration) -> Duration {
    checkpoint_interval
        .saturating_mul(3)
        .max(Duration::from_secs(3))
}

/// The copy of one index, claimed by this process for one run.
pub(super) struct Claim<'a> {
    pub migrator: &'a Migrator,
    pub name: &'a str,
    owner: &'a str,
    lease_for: Duration,
    pub source: String,
    pub target: String,
    /// The ingest pipeline the copy's writes run (stage 1 chose it).
    pub pipeline: Option<String>,
}

impl<'a> Claim<'a> {
    /// Takes the lease of `name`'s copy unless another live process holds
    /// it; returns the claim and the stored progress to resume from.
    pub async fn take(
        migrator: &'a Migrator,
        name: &'a str,
        owner: &'a str,
    ) -> Result<(Claim<'a>, CopyProgress), CopyError> {
        let lease_for = lease_duration(migrator.config().copy.checkpoint_interval);
        let stored = migrator.load(name).await?;
        let (source, target, stored_copy) = copying(&stored, name, owner, migrator.now())?;
        let pipeline = stored_copy.pipeline.clone();
        let claim = Claim {
            migrator,
            name,
            owner,
            lease_for,
            source: source.to_owned(),
            target: target.to_owned(),
            pipeline,
        };
        let next = stored
            .state
            .update_copy(
                Action::Reindex,
                |c| c.lease = Some(claim.lease()),
                migrator.now(),
            )
            .map_err(MigrationError::from)?;
        let written = migrator.store().replace(&stored, next).await?;
        let Phase::Copying { copy, .. } = written.state.phase else {
            unreachable!("update_copy keeps the phase")
        };
        Ok((claim, copy))
    }

    /// Saves the counters `apply` writes and renews the lease; picks up
    /// pause and throttle set by other processes (the CLI) in the stored
    /// state.
    pub async fn checkpoint(
        &self,
        apply: impl Fn(&mut CopyProgress),
        handle: &CopyHandle,
    ) -> Result<(), CopyError> {
        for _ in 0..5 {
            let stored = self.migrator.load(self.name).await?;
            let (source, stored_target, copy) =
                copying(&stored, self.name, self.owner, self.migrator.now())?;
            if stored_target != self.target {
                return Err(CopyError::stopped(
                    self.name.to_owned(),
                    format!("a newer copy targets {stored_target}"),
                ));
            }
            if let Some(reason) = self.migrator.target_replaced(&self.target, copy).await? {
                return Err(CopyError::fatal(reason));
            }
            let mut updated = copy.clone();
            apply(&mut updated);
            let old_writes = self
                .migrator
                .old_generation_writes(source, &updated)
                .await?;
            handle.set_control(super::Control::of(copy));
            let next = stored
                .state
                .update_copy(
                    Action::Reindex,
                    |c| {
                        apply(c);
                        c.old_generation_writes = old_writes;
                        c.lease = Some(self.lease());
                    },
                    self.migrator.now(),
                )
                .map_err(MigrationError::from)?;
            match self.migrator.store().replace(&stored, next).await {
                Ok(_) => return Ok(()),
                Err(MigrationError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MigrationError::Conflict(self.name.to_owned()).into())
    }

    /// Gives the lease up (after a last checkpoint), so that a restarted
    /// daemon need not wait for it to expire.
    pub async fn release(&self) -> Result<(), MigrationError> {
        self.migrator
            .update_copy(self.name, Action::Reindex, |c| {
                if c.lease.as_ref().is_some_and(|l| l.owner == self.owner) {
                    c.lease = None;
                }
            })
            .await
            .map(drop)
    }

    /// Hands the finished copy, with the counters `apply` writes, to the
    /// lifecycle: `ready`, or `failed` by its verification.
    pub async fn complete(
        &self,
        apply: impl Fn(&mut CopyProgress),
    ) -> Result<IndexState, CopyError> {
        let state = self
            .migrator
            .complete_copy(self.name, self.owner, |c| {
                apply(c);
                c.finished_at = Some(self.migrator.now());
            })
            .await?;
        Ok(state)
    }

    fn lease(&self) -> Lease {
        lease_until(self.owner, self.migrator.now(), self.lease_for)
    }
}

/// The `Copying` state of `name`, if this process may run it.
fn copying<'s>(
    stored: &'s Stored,
    name: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<(&'s str, &'s str, &'s CopyProgress), CopyError> {
    let Some((source, target, copy)) = stored.state.phase.copying() else {
        return Err(CopyError::stopped(
            name.to_owned(),
            format!("the index is {} now", stored.state.phase.name()),
        ));
    };
    if let Some(lease) = &copy.lease {
        if lease.owner != owner && lease.expires_at > now {
            return Err(CopyError::LeaseHeld {
                owner: lease.owner.clone(),
                until: lease.expires_at.to_rfc3339(),
            });
        }
    }
    Ok((source, target, copy))
}

fn lease_until(owner: &str, now: DateTime<Utc>, lease_for: Duration) -> Lease {
    // `DateTime + TimeDelta` panics past the calendar's end; a lease that
    // long never expires, which is what the caller asked for.
    let expires_at = chrono::Duration::from_std(lease_for)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    Lease {
        owner: owner.to_owned(),
        expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lasts_three_checkpoints_and_at_least_three_seconds() {
        assert_eq!(
            lease_duration(Duration::from_secs(5)),
            Duration::from_secs(15)
        );
        assert_eq!(
            lease_duration(Duration::from_millis(200)),
            Duration::from_secs(3)
        );
        assert_eq!(lease_duration(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn a_lease_past_the_calendar_never_expires() {
        let now = Utc::now();
        let lease = lease_until("me", now, Duration::from_secs(10));
        assert_eq!(lease.expires_at - now, chrono::Duration::seconds(10));
        assert_eq!(
            lease_until("me", now, Duration::MAX).expires_at,
            DateTime::<Utc>::MAX_UTC
        );
    }
}
