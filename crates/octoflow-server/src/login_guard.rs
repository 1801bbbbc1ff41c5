//! Password guessing made slow: failed logins are counted per client address and per user
//! name over a window, and past a bound the next attempt is `429 overloaded` with
//! `Retry-After` — before any password is checked. Checks themselves (Argon2, deliberately
//! costly) run a few at a time on blocking threads, so a flood of logins cannot take every
//! thread. User names are kept and logged only as digests: a name is sometimes a password
//! typed into the wrong field.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{ApiError, Code};

/// How long a failed login counts.
const WINDOW: Duration = Duration::from_secs(300);
/// Failed logins from one address within the window before it must wait.
const PER_ADDRESS: usize = 20;
/// Failed logins for one user name within the window before it must wait.
const PER_USER: usize = 10;
/// The most addresses and names remembered: past it, the oldest are forgotten first.
const MAX_KEYS: usize = 10_000;
/// Password checks at once.
const CHECKS_AT_ONCE: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User([u8; 16]),
}

/// The failed logins, and the password checks' permits.
#[derive(Debug)]
pub(crate) struct LoginGuard {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
    checks: Semaphore,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            checks: Semaphore::new(CHECKS_AT_ONCE),
        }
    }
}

/// A user name as logs show it: the start of its digest.
pub(crate) fn shown_name(name: &str) -> String {
    hex::encode(user_digest(name).get(..6).unwrap_or_default())
}

/// Where the API names a user in its paths.
const USERS: &str = "/api/v1/users/";

/// A request path as logs show it: a user's name in it (`/api/v1/users/{name}`) as `#` and
/// its digest, as [`shown_name`] shows it.
pub(crate) fn shown_path(path: &str) -> Cow<'_, str> {
    match path.strip_prefix(USERS) {
        Some(name) if !name.is_empty() => Cow::Owned(format!("{USERS}#{}", shown_name(name))),
        _ => Cow::Borrowed(path),
    }
}

fn user_digest(name: &str) -> [u8; 16] {
    let full = Sha256::digest(name.as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(full.get(..16).unwrap_or(&[0; 16]));
    out
}

impl LoginGuard {
    /// `429` when `address` or `user` failed too often lately.
    pub(crate) fn admit(&self, address: Option<IpAddr>, user: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys(address, user) {
            let (bound, what) = match key {
                Key::Address(_) => (PER_ADDRESS, "from this address"),
                Key::User(_) => (PER_USER, "for this user name"),
            };
            let Some(times) = failures.get_mut(&key) else {
                continue;
            };
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= bound {
                let oldest = times.front().copied().unwrap_or(now);
                let wait = WINDOW.saturating_sub(now.duration_since(oldest));
                let seconds = wait.as_secs() + 1;
                return Err(ApiError::new(
                    Code::Overloaded,
                    format!("too many failed logins {what}; try again in {seconds} s"),
                )
                .with_details(json!({ "retry_after": seconds })));
            }
        }
        Ok(())
    }

    /// Counts a failed login.
    pub(crate) fn failed(&self, address: Option<IpAddr>, user: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
            if failures.len() >= MAX_KEYS {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
        }
        for key in keys(address, user) {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            if times.len() > PER_ADDRESS.max(PER_USER) {
                times.pop_front();
            }
        }
    }

    /// Whether `password` matches `hash`, checked on a blocking thread, a few at a time.
    pub(crate) async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        let _permit = self.checks.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || crate::access::verify_password(&password, &hash))
            .await
            .map_err(ApiError::internal)
    }
}

fn keys(address: Option<IpAddr>, user: &str) -> Vec<Key> {
    address
        .map(Key::Address)
        .into_iter()
        .chain([Key::User(user_digest(user))])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_bound_must_wait() {
        let guard = LoginGuard::default();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..PER_USER {
            guard.admit(Some(address), "ops").unwrap();
            guard.failed(Some(address), "ops");
        }
        let refused = guard.admit(Some(address), "ops").unwrap_err();
        assert!(
            refused.message.contains("for this user name"),
            "{}",
            refused.message
        );
        assert!(refused.details["retry_after"].as_u64().unwrap() <= 300);
        // Another name from the same address is still let in, up to the address's bound.
        guard.admit(Some(address), "other").unwrap();
        for n in 0..(PER_ADDRESS - PER_USER) {
            guard.failed(Some(address), &format!("name{n}"));
        }
        let refused = guard.admit(Some(address), "fresh").unwrap_err();
        assert!(
            refused.message.contains("from this address"),
            "{}",
            refused.message
        );
        guard
            .admit(Some("192.0.2.2".parse().unwrap()), "fresh")
            .unwrap();
    }

    #[test]
    fn names_are_shown_as_digests() {
        assert_eq!(shown_name("hunter2").len(), 12);
        assert!(!shown_name("hunter2").contains("hunter"));
        assert_eq!(
            shown_path("/api/v1/users/hunter2"),
            format!("/api/v1/users/#{}", shown_name("hunter2"))
        );
        for path in ["/api/v1/users", "/api/v1/users/", "/api/v1/runs/hunter2"] {
            assert_eq!(shown_path(path), path);
        }
    }
}
