//! Callback URLs: how an external job started by a step reports progress and completion
//! without a user token (SPEC §11.4), and how a `wait: callback` step hears of it.
//!
//! A run's callback token is an HMAC-SHA256 of its id under the key every node shares
//! (kept in the store), so any node can check it without storing one per run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::store::{Progress, RunId};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Signs and checks callback tokens, and makes callback URLs.
#[derive(Clone)]
pub struct CallbackSigner {
    /// The HMAC keyed once with the shared key (each token starts from a copy of it).
    keyed: HmacSha256,
    base_url: Option<Arc<str>>,
}

impl std::fmt::Debug for CallbackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSigner")
            .field("keyed", &crate::engine::MASK)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl CallbackSigner {
    /// A signer with the nodes' shared key; URLs start with `base_url` (such as
    /// `http://127.0.0.1:8080`) when one is given.
    pub fn new(key: &[u8], base_url: Option<&str>) -> Self {
        Self {
            // HMAC takes keys of any length.
            keyed: HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            base_url: base_url.map(|b| Arc::from(b.trim_end_matches('/'))),
        }
    }

    fn mac(&self, id: &RunId) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"callback:");
        mac.update(id.to_string().as_bytes());
        mac
    }

    /// The run's callback token.
    pub fn token(&self, id: &RunId) -> String {
        hex::encode(self.mac(id).finalize().into_bytes())
    }

    /// Whether `token` is the run's callback token (compared in constant time).
    pub fn verify(&self, id: &RunId, token: &str) -> bool {
        hex::decode(token).is_ok_and(|bytes| self.mac(id).verify_slice(&bytes).is_ok())
    }

    /// The run's callback URL, with its token; `None` without a base URL.
    pub fn url(&self, id: &RunId) -> Option<String> {
        let base = self.base_url.as_deref()?;
        Some(format!(
            "{base}/api/v1/runs/{id}/callback?token={}",
            self.token(id)
        ))
    }
}

/// How an external job says it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    /// Still going (the default when only progress is reported).
    Running,
    /// Done; a `wait: callback` step succeeds with the report's `data`.
    Succeeded,
    /// Failed; a `wait: callback` step fails with the report's `message`.
    Failed,
}

/// What an external job reports to `POST /api/v1/runs/{id}/callback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackReport {
    /// The `wait: callback` step this is for (any waiting step of the run when absent).
    #[serde(default)]
    pub step: Option<String>,
    /// How far the job has got.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// A line for the run's log.
    #[serde(default)]
    pub message: Option<String>,
    /// Whether the job ended.
    #[serde(default)]
    pub status: Option<CallbackStatus>,
    /// The job's result (the `wait` step's result when it ends).
    #[serde(default)]
    pub data: Option<Value>,
}

/// Where `wait: callback` steps wait for their run's final report.
#[derive(Debug, Default)]
pub struct CallbackHub {
    waiting: Mutex<HashMap<RunId, watch::Sender<Option<CallbackReport>>>>,
}

impl CallbackHub {
    /// Starts waiting for the run's final report (`succeeded` or `failed`).
    pub fn wait_for(&self, id: RunId) -> watch::Receiver<Option<CallbackReport>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting
            .entry(id)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Forgets the run's report (its step ended, or the run did).
    pub fn forget(&self, id: &RunId) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.remove(id);
    }

    /// Hands a final report to the run's `wait: callback` step. A report that comes before
    /// the step waits (a quick job) is kept for it until the run ends.
    pub fn deliver(&self, id: &RunId, report: &CallbackReport) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match waiting.get(id) {
            Some(tx) => {
                tx.send_replace(Some(report.clone()));
            }
            None => {
                waiting.insert(*id, watch::channel(Some(report.clone())).0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_run() {
        let signer = CallbackSigner::new(b"0123456789abcdef", Some("http://127.0.0.1:8080/"));
        let (a, b) = (RunId::new(), RunId::new());
        let token = signer.token(&a);
        assert!(signer.verify(&a, &token));
        assert!(!signer.verify(&b, &token));
        assert!(!signer.verify(&a, "zz"));
        let url = signer.url(&a).unwrap();
        assert_eq!(
            url,
            format!("http://127.0.0.1:8080/api/v1/runs/{a}/callback?token={token}")
        );
        let other = CallbackSigner::new(b"another key", None);
        assert!(!other.verify(&a, &token));
        assert!(other.url(&a).is_none());
    }

    #[test]
    fn a_report_before_the_wait_is_kept_for_it() {
        let hub = CallbackHub::default();
        let id = RunId::new();
        let report = CallbackReport {
            status: Some(CallbackStatus::Succeeded),
            ..CallbackReport::default()
        };
        hub.deliver(&id, &report);
        let waiting = hub.wait_for(id);
        assert_eq!(waiting.borrow().as_ref(), Some(&report));
        hub.forget(&id);
        assert!(hub.wait_for(id).borrow().is_none());
    }
}
