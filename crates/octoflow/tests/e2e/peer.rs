//! A local HTTP peer for end-to-end tests: an axum router served on 127.0.0.1 from a runtime
//! of its own, so synchronous and asynchronous tests alike can talk to it through the real
//! binary.

use axum::Router;

/// A running peer; dropping it stops the server.
pub(crate) struct Peer {
    pub(crate) url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Serves `router` on a free loopback port.
pub(crate) fn serve(router: Router) -> Peer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Bound here, without blocking on the runtime: the caller may be inside another one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, router).await
    });
    Peer {
        url,
        runtime: Some(runtime),
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Never waits, so a peer may be dropped inside an asynchronous test.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
