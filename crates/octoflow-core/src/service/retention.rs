//! `limits.run_retention`: runs that ended longer ago than that are removed — their records
//! from the store (the run, its step runs, its log lines) and their workspaces from the
//! disk — a batch at a time, in the background.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::Service;
use crate::store::StoreError;

/// Runs removed per store call.
const BATCH: u32 = 500;

impl Service {
    /// Removes every run that ended more than `keep` ago, with its workspace; returns how
    /// many. Counted in the metric `octoflow_runs_pruned_total`.
    pub async fn prune_old_runs(&self, keep: Duration) -> Result<usize, StoreError> {
        let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now()
            .checked_sub_signed(keep)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        let mut pruned = 0;
        loop {
            let ids = self.store().prune_runs(before, BATCH).await?;
            for id in &ids {
                let dir = self.engine().config().files.run_dir(id);
                match tokio::fs::remove_dir_all(&dir).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(run_id = %id, error = %e, "Cannot remove a pruned run's workspace.");
                    }
                }
            }
            pruned += ids.len();
            metrics::counter!("octoflow_runs_pruned_total").increment(ids.len() as u64);
            if ids.len() < BATCH as usize {
                return Ok(pruned);
            }
        }
    }

    /// Prunes runs older than `keep` now and then — every `keep / 24`, at least every
    /// hour and at most every second — until `shutdown`.
    pub async fn run_retention(&self, keep: Duration, shutdown: CancellationToken) {
        let every = (keep / 24).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        loop {
            match self.prune_old_runs(keep).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "Removed runs past their retention."),
                Err(e) => tracing::warn!(error = %e, "Cannot remove runs past their retention."),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}
