//! Records of the queue's admission rules (SPEC §8): how a new run meets the runs that
//! already hold its concurrency key, what came of it, and the held keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Run, RunId, RunStatus};
use crate::flow::ConcurrencyPolicy;

/// The rule a new run is admitted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// What to do when `limit` runs already hold the run's concurrency key. A run without a
    /// key is always created.
    pub policy: ConcurrencyPolicy,
    /// How many runs may hold the key (`queue`: running ones; `skip`/`dedupe`: queued or
    /// running ones; `replace`: the older holders are cancelled).
    pub limit: u32,
    /// A run made earlier with this key (for the same flow) is returned instead of a new one.
    pub idempotency_key: Option<String>,
}

impl Admission {
    /// No concurrency rule and no idempotency key: the run is always created.
    pub fn allow() -> Self {
        Self {
            policy: ConcurrencyPolicy::Allow,
            limit: 1,
            idempotency_key: None,
        }
    }

    /// Whether [`decide`](Self::decide) needs the holders of the run's key: `skip` and
    /// `dedupe` compare them with the limit.
    pub fn needs_holders(&self, run: &Run) -> bool {
        run.concurrency_key.is_some()
            && matches!(
                self.policy,
                ConcurrencyPolicy::Skip | ConcurrencyPolicy::Dedupe
            )
    }

    /// The concurrency rule (SPEC §8), written once for every store: what to do with a new
    /// run (not an earlier one's idempotency key), given the oldest of the queued or running
    /// runs holding its key and how many there are (when [`needs_holders`](Self::needs_holders)).
    /// A store runs it inside the transaction that reads the holders and records the run.
    pub fn decide(&self, run: &Run, holders: Option<(&Run, u64)>) -> Decision {
        let limit = self.limit.max(1);
        if run.concurrency_key.is_none() {
            return Decision::Create { limit: None };
        }
        match self.policy {
            ConcurrencyPolicy::Allow => Decision::Create { limit: None },
            ConcurrencyPolicy::Queue => Decision::Create { limit: Some(limit) },
            ConcurrencyPolicy::Skip | ConcurrencyPolicy::Dedupe => match holders {
                Some((oldest, count)) if count >= u64::from(limit) => {
                    let oldest = oldest.clone();
                    Decision::Refuse(Box::new(if self.policy == ConcurrencyPolicy::Skip {
                        Admitted::Skipped(oldest)
                    } else {
                        Admitted::Deduplicated(oldest)
                    }))
                }
                _ => Decision::Create { limit: Some(limit) },
            },
            ConcurrencyPolicy::Replace => Decision::Replace { limit },
        }
    }
}

/// What admission does with a new run ([`Admission::decide`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Record the run `queued`; claims keep the running holders of its key within `limit`
    /// (`None`: no limit).
    Create {
        /// The limit claims respect.
        limit: Option<u32>,
    },
    /// Record nothing; answer this.
    Refuse(Box<Admitted>),
    /// Cancel the queued and running holders of the key (queued ones at once, running ones
    /// by a request to their node), then record the run with `limit`.
    Replace {
        /// The limit claims respect.
        limit: u32,
    },
}

/// What [`QueueStore::admit`](super::QueueStore::admit) did.
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    /// The run was recorded `queued`.
    Created(Run),
    /// A run made earlier with the same idempotency key; nothing was recorded.
    Existing(Run),
    /// `dedupe`: the run already holding the key; nothing was recorded.
    Deduplicated(Run),
    /// `skip`: the run blocking the key; nothing was recorded.
    Skipped(Run),
    /// `replace`: the run was recorded `queued`; the older holders of the key were cancelled
    /// (queued ones at once, running ones are marked for their node to cancel).
    Replaced {
        /// The new run.
        run: Run,
        /// The runs being cancelled in its favour.
        cancelled: Vec<RunId>,
    },
}

impl Admitted {
    /// The run the caller should answer with.
    pub fn run(&self) -> &Run {
        match self {
            Self::Created(run)
            | Self::Existing(run)
            | Self::Deduplicated(run)
            | Self::Skipped(run)
            | Self::Replaced { run, .. } => run,
        }
    }
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The node still holds the run; carry on.
    Held,
    /// The node still holds the run, and someone asked to cancel it.
    CancelRequested,
    /// The node no longer holds the run (it ended, or the lease ran out and it was taken).
    Lost,
}

/// One held concurrency key (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LockInfo {
    /// The rendered key.
    pub key: String,
    /// The run holding it.
    pub run_id: RunId,
    /// That run's flow.
    pub flow: String,
    /// That run's status (`running`).
    pub status: RunStatus,
    /// When that run started.
    pub since: Option<DateTime<Utc>>,
    /// The node running it.
    pub node: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::TriggerInfo;

    fn run(key: Option<&str>) -> Run {
        Run {
            id: RunId::new(),
            flow: "f".to_owned(),
            flow_version: "v".to_owned(),
            status: RunStatus::Queued,
            params: json!({}),
            trigger: TriggerInfo::new("manual"),
            concurrency_key: key.map(str::to_owned),
            parent_run_id: None,
            created_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
            data: json!({}),
            node: None,
            message: None,
            progress: None,
            generation: 0,
        }
    }

    #[track_caller]
    fn case(policy: ConcurrencyPolicy, holders: Option<u64>, expected: &Decision) {
        let rule = Admission {
            policy,
            limit: 2,
            idempotency_key: None,
        };
        let new = run(Some("k"));
        let oldest = run(Some("k"));
        assert_eq!(
            rule.needs_holders(&new),
            matches!(policy, ConcurrencyPolicy::Skip | ConcurrencyPolicy::Dedupe)
        );
        let decided = rule.decide(&new, holders.map(|n| (&oldest, n)));
        let expected = match expected {
            Decision::Refuse(answer) => Decision::Refuse(Box::new(match **answer {
                Admitted::Skipped(_) => Admitted::Skipped(oldest),
                _ => Admitted::Deduplicated(oldest),
            })),
            other => other.clone(),
        };
        assert_eq!(decided, expected, "{policy:?} with {holders:?} holders");
    }

    #[test]
    fn the_rule_table() {
        use ConcurrencyPolicy::{Allow, Dedupe, Queue, Replace, Skip};
        let placeholder = run(None);
        case(Allow, None, &Decision::Create { limit: None });
        case(Queue, None, &Decision::Create { limit: Some(2) });
        case(Skip, Some(1), &Decision::Create { limit: Some(2) });
        case(
            Skip,
            Some(2),
            &Decision::Refuse(Box::new(Admitted::Skipped(placeholder.clone()))),
        );
        case(Dedupe, None, &Decision::Create { limit: Some(2) });
        case(
            Dedupe,
            Some(3),
            &Decision::Refuse(Box::new(Admitted::Deduplicated(placeholder))),
        );
        case(Replace, None, &Decision::Replace { limit: 2 });
        // Without a key, every rule creates the run.
        let rule = Admission {
            policy: Skip,
            limit: 1,
            idempotency_key: None,
        };
        assert!(!rule.needs_holders(&run(None)));
        assert_eq!(
            rule.decide(&run(None), None),
            Decision::Create { limit: None }
        );
    }
}
