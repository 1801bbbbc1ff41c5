//! Stopping a statement on the server when its step is cancelled or times out: the
//! statement's session is named to the server from a second session (`pg_cancel_backend`,
//! `KILL QUERY`), then the statement gets a moment to end with the server's answer, so its
//! connection is left clean.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a stopped statement gets to answer before its connection is dropped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs `work` to its end, or — when `token` is cancelled first — runs `stop` and waits a
/// moment for `work` to end; `None` then.
pub(crate) async fn unless_cancelled<T>(
    work: impl Future<Output = T>,
    token: &CancellationToken,
    stop: impl Future<Output = ()>,
) -> Option<T> {
    tokio::pin!(work);
    tokio::select! {
        biased;
        out = &mut work => return Some(out),
        () = token.cancelled() => {}
    }
    stop.await;
    let _ = tokio::time::timeout(STOP_GRACE, &mut work).await;
    None
}
