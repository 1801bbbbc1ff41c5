//! How many webhook requests are read and admitted at once: at most
//! [`HookSettings::max_in_flight`](super::HookSettings) in all and
//! [`HookSettings::max_in_flight_per_hook`](super::HookSettings) for any one hook, so a noisy
//! hook cannot starve the others. Past either: `429 overloaded` with `Retry-After: 1` — a
//! request is refused, never dropped. The slots are taken after the caller check, so callers
//! that fail it never hold one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Refused;
use crate::error::{ApiError, Code};

/// The slots of all hooks and of each.
pub(super) struct InFlight {
    all: Arc<Semaphore>,
    per_hook: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_hook_max: usize,
}

/// A request's two slots, given back when dropped.
pub(super) struct Slots {
    _hook: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl InFlight {
    pub(super) fn new(all: usize, per_hook: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(all.max(1))),
            per_hook: Mutex::new(HashMap::new()),
            per_hook_max: per_hook.max(1),
        }
    }

    /// A slot of hook `key` and one of all hooks, or `429`.
    pub(super) fn take(&self, key: &str) -> Result<Slots, Refused> {
        let hook = {
            let mut per_hook = self.per_hook.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slots) = per_hook.get(key) {
                slots.clone()
            } else {
                let slots = Arc::new(Semaphore::new(self.per_hook_max));
                per_hook.insert(key.to_owned(), slots.clone());
                slots
            }
        };
        let Ok(hook) = hook.try_acquire_owned() else {
            return Err(overloaded("too many requests to this webhook at once"));
        };
        let Ok(all) = self.all.clone().try_acquire_owned() else {
            return Err(overloaded("too many webhook requests at once"));
        };
        Ok(Slots {
            _hook: hook,
            _all: all,
        })
    }
}

fn overloaded(what: &str) -> Refused {
    metrics::counter!("octoflow_hook_overloaded_total").increment(1);
    let mut response =
        ApiError::new(Code::Overloaded, format!("{what}; try again later")).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Refused(Box::new(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hook_cannot_take_every_slot() {
        let slots = InFlight::new(3, 2);
        let a1 = slots.take("a").ok().unwrap();
        let _a2 = slots.take("a").ok().unwrap();
        assert!(slots.take("a").is_err(), "a third request to `a`");
        let _b = slots.take("b").ok().unwrap();
        assert!(slots.take("c").is_err(), "every slot of all hooks is taken");
        drop(a1);
        assert!(slots.take("c").is_ok(), "a slot given back is taken again");
    }
}
