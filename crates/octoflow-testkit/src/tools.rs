//! Programs a test starts for itself — kinesalite (Kinesis), moto's server (S3) — on a free
//! port, stopped when dropped. A program that is missing or does not start skips the test
//! locally with one line and fails it under CI, as an unreachable service does.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::services::{answers, unreachable, url};

/// A port nothing listens on right now.
///
/// # Panics
/// When no port on loopback can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on loopback")
}

/// A server program this test started; killed when dropped.
pub struct Tool {
    _child: tokio::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Tool {
    /// Starts `program` (from `var`, else `default`) with `args(port)`, and waits until it
    /// answers; `None` after the skip line when it cannot be started.
    ///
    /// # Panics
    /// When it cannot be started and services are required, or it does not answer in 30 s.
    pub async fn start(
        name: &str,
        var: &str,
        default: &str,
        args: impl Fn(u16) -> Vec<String>,
    ) -> Option<Self> {
        let program = url(var, default);
        let port = free_port();
        // tokio's Command: a test tool, killed on drop, never a step's process.
        let child = tokio::process::Command::new(&program)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => return unreachable(name, var, &format!("cannot start `{program}`: {e}")),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(&format!("127.0.0.1:{port}")).await {
            if let Ok(Some(status)) = child.try_wait() {
                return unreachable(name, var, &format!("`{program}` exited with {status}"));
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer on port {port} within 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self {
            _child: child,
            port,
        })
    }

    /// kinesalite (`OCTOFLOW_TEST_KINESALITE`, else `kinesalite` on `PATH`), creating and
    /// deleting streams at once.
    pub async fn kinesalite() -> Option<Self> {
        Self::start(
            "kinesalite",
            "OCTOFLOW_TEST_KINESALITE",
            "kinesalite",
            |port| {
                let port = port.to_string();
                [
                    "--port",
                    &port,
                    "--createStreamMs",
                    "0",
                    "--deleteStreamMs",
                    "0",
                ]
                .map(str::to_owned)
                .to_vec()
            },
        )
        .await
    }

    /// Where it answers: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
