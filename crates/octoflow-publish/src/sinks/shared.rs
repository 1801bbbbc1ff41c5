//! A client opened at its first use and then shared by every step of the node; dropped
//! after a connection error so that the next use opens a fresh one.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;

/// How long opening a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A lazily opened, shared client.
#[derive(Debug)]
pub(crate) struct Shared<T> {
    slot: Mutex<Option<T>>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }
}

impl<T: Clone> Shared<T> {
    /// The client, opened by `open` when there is none. Steps that ask while it opens wait
    /// for it rather than open their own.
    pub(crate) async fn get<E, F, Fut>(&self, open: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = open().await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Forgets the client: the next use opens a new one.
    pub(crate) async fn reset(&self) {
        self.slot.lock().await.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_once_and_again_after_a_reset() {
        let shared = Shared::<u32>::default();
        let opened = std::sync::atomic::AtomicU32::new(0);
        let open =
            || async { Ok::<_, ()>(opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1) };
        assert_eq!(shared.get(open).await, Ok(1));
        assert_eq!(shared.get(open).await, Ok(1));
        shared.reset().await;
        assert_eq!(shared.get(open).await, Ok(2));
        let failed = Shared::<u32>::default();
        assert_eq!(
            failed.get(|| async { Err::<u32, _>("no") }).await,
            Err("no")
        );
        assert_eq!(failed.get(open).await, Ok(3));
    }
}
