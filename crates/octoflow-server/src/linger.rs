//! Bodies left unread by an early answer, read to their end before that answer goes out.
//!
//! A request refused before its body is read — a wrong password on an upload, a full
//! in-flight bound, a body past its limit — would otherwise be answered and its connection
//! closed while the client is still sending. The kernel then resets the connection, and the
//! client sees a broken pipe instead of the `401`, `413` or `429` that says what to change.
//! So the rest of such a body is read and thrown away first, as web servers do with a
//! "lingering close": at most [`BodyLimits::body`] more bytes, for at most [`LINGER`]. A body
//! declared larger than that, or one that already stalled (`408`), is not read at all: its
//! client gets the answer only if it reads while it sends.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;

use crate::BodyLimits;

/// How long the rest of an unread body may take to arrive.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// The middleware: hands the handler a body that comes back here if it is dropped unread,
/// and reads what is left of it before the answer is returned.
pub(crate) async fn drain_unread(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (back, mut returned) = oneshot::channel();
    let request = request.map(|body| {
        Body::new(Returnable {
            inner: Some(body),
            back: Some(back),
        })
    });
    let response = next.run(request).await;
    // A body that stalled (`408`) would only stall again.
    if let Ok(rest) = returned.try_recv()
        && response.status() != StatusCode::REQUEST_TIMEOUT
    {
        drain(rest, limits.body as u64).await;
    }
    response
}

/// Reads and drops up to `budget` bytes of `body`, for at most [`LINGER`].
async fn drain(mut body: Body, budget: u64) {
    if body.size_hint().lower() > budget {
        return;
    }
    let read = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |data| data.len() as u64);
            if seen > budget {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, read).await;
}

/// A request body that sends itself back through `back` when dropped before its end (its
/// last frame read, or an error).
struct Returnable {
    inner: Option<Body>,
    back: Option<oneshot::Sender<Body>>,
}

impl HttpBody for Returnable {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(inner).poll_frame(cx);
        // Read to its end, or broken: nothing is left to drain.
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            self.inner = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Returnable {
    fn drop(&mut self) {
        if let (Some(inner), Some(back)) = (self.inner.take(), self.back.take())
            && !inner.is_end_stream()
        {
            let _ = back.send(inner);
        }
    }
}
