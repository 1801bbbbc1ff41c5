//! Wake-ups and notices across nodes: `LISTEN` on the store's channel, `NOTIFY` from every
//! write that makes work (an empty payload) and from nodes telling others of a run (a
//! [`Notice`] as its text).
//!
//! Writes that may make a run claimable — an admission, a fire, a re-queue, a run that ends
//! holding a concurrency key, a freed lock — call `pg_notify(<channel>, '')` in their own
//! transaction, so the notification goes out when (and only if) they commit, from whichever
//! node wrote. Each store keeps one task with one connection of its own that `LISTEN`s on the
//! channel and wakes a [`Notify`]; `wait_for_work` waits on it.
//!
//! The listening connection needs a session of its own: a proxy pooling connections by
//! transaction (`PgBouncer` in transaction mode) would drop the `LISTEN`. When the connection
//! drops, the task opens a new one, with a growing pause between tries; meanwhile
//! `wait_for_work` waits at most [`FALLBACK_POLL`], so the worker polls and misses nothing.
//! Once listening again, the task wakes a waiter, since wake-ups may have been lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use octoflow_core::store::Notice;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

use crate::error::ConnectError;

/// How long `wait_for_work` waits at most while the listening connection is down.
pub(crate) const FALLBACK_POLL: Duration = Duration::from_millis(500);
/// The first pause before opening a dropped listening connection again.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest pause between tries.
const LAST_RETRY: Duration = Duration::from_secs(5);
/// How long one try to open the listening connection waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Notices kept for a listener that is behind; a slower one misses the oldest (it reads
/// the store as it would without notices).
const NOTICES_KEPT: usize = 1024;

/// What the listening task shares with the store's handles.
#[derive(Debug)]
struct Signal {
    /// Woken by each notification of work; `notify_one` keeps a wake-up nobody waited for.
    work: Notify,
    /// Whether the listening connection is up.
    listening: AtomicBool,
    /// The notices heard.
    notices: broadcast::Sender<Notice>,
}

/// The listening task of one store; dropping it (with the store's last handle) stops it.
#[derive(Debug)]
pub(crate) struct Wakeups {
    signal: Arc<Signal>,
    task: JoinHandle<()>,
}

impl Wakeups {
    /// Opens the listening connection, `LISTEN`s on `channel`, and starts the task that
    /// keeps it. Returns once listening, so no notification after it is missed.
    pub(crate) async fn start(
        options: PgConnectOptions,
        channel: String,
    ) -> Result<Self, ConnectError> {
        // One connection, kept as long as it lives.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        let listener = listen(&pool, &channel)
            .await
            .map_err(|source| ConnectError::Listen { source })?;
        let signal = Arc::new(Signal {
            work: Notify::new(),
            listening: AtomicBool::new(true),
            notices: broadcast::channel(NOTICES_KEPT).0,
        });
        let task = tokio::spawn(keep_listening(pool, channel, listener, Arc::clone(&signal)));
        Ok(Self { signal, task })
    }

    /// Waits for a notification, at most `timeout` (at most [`FALLBACK_POLL`] while the
    /// listening connection is down).
    pub(crate) async fn wait(&self, timeout: Duration) {
        let timeout = if self.signal.listening.load(Ordering::Acquire) {
            timeout
        } else {
            timeout.min(FALLBACK_POLL)
        };
        // Elapsing is an answer too: the caller polls again.
        let _ = tokio::time::timeout(timeout, self.signal.work.notified()).await;
    }

    /// The notices heard from every node from now on.
    pub(crate) fn notices(&self) -> broadcast::Receiver<Notice> {
        self.signal.notices.subscribe()
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener on `channel`, on a connection of `pool`.
async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A dropped connection ends `try_recv` at once; this task opens the next one itself.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Wakes a waiter on each notification; opens the connection again whenever it drops.
async fn keep_listening(
    pool: PgPool,
    channel: String,
    mut listener: PgListener,
    signal: Arc<Signal>,
) {
    loop {
        let why = loop {
            match listener.try_recv().await {
                Ok(Some(message)) if message.payload().is_empty() => signal.work.notify_one(),
                Ok(Some(message)) => {
                    if let Some(notice) = Notice::decode(message.payload()) {
                        // No receiver is no error: nobody follows anything now.
                        let _ = signal.notices.send(notice);
                    }
                }
                Ok(None) => break "connection lost".to_owned(),
                Err(error) => break error.to_string(),
            }
        };
        signal.listening.store(false, Ordering::Release);
        // A waiter that began before now would wait its whole timeout: let it look now, and
        // wait no longer than the fallback from then on.
        signal.work.notify_one();
        tracing::warn!(%channel, reason = %why, "Stopped listening for new work; polling until listening again.");
        drop(listener);
        listener = reconnect(&pool, &channel).await;
        signal.listening.store(true, Ordering::Release);
        // Notifications sent while the connection was down are lost: look once.
        signal.work.notify_one();
        tracing::info!(%channel, "Listening for new work again.");
    }
}

/// A new listener, after as many tries as it takes, pausing longer after each.
async fn reconnect(pool: &PgPool, channel: &str) -> PgListener {
    let mut pause = FIRST_RETRY;
    loop {
        tokio::time::sleep(pause).await;
        match listen(pool, channel).await {
            Ok(listener) => return listener,
            Err(error) => {
                tracing::debug!(%channel, %error, "Cannot listen yet.");
                pause = (pause * 2).min(LAST_RETRY);
            }
        }
    }
}
