//! A local HTTP peer for end-to-end tests: an axum router served on 127.0.0.1 from a runtime
//! of its own, so the synchronous tests can talk to it through the real binary.

use axum::Router;

/// A running peer; dropping it stops the server.
pub(crate) struct Peer {
    pub(crate) url: String,
    _runtime: tokio::runtime::Runtime,
}

/// Serves `router` on a free loopback port.
pub(crate) fn serve(router: Router) -> Peer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, router).await });
    Peer {
        url,
        _runtime: runtime,
    }
}
