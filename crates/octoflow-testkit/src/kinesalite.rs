//! A Kinesis stand-in for tests: kinesalite (from npm) on a free port, stopped on drop.
//!
//! The program is `OCTOFLOW_TEST_KINESALITE`, else `target/test-tools/node_modules/.bin/kinesalite`
//! (where `.ci/run` installs it). When it is missing, [`Kinesalite::start`] skips the test
//! locally and fails it under CI, as for every service.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::services;

/// The variable naming the kinesalite program.
pub const VAR: &str = "OCTOFLOW_TEST_KINESALITE";

/// A running kinesalite, killed when dropped.
pub struct Kinesalite {
    child: Child,
    port: u16,
}

impl Kinesalite {
    /// Starts kinesalite (streams are created and deleted at once); `None` when skipped.
    ///
    /// # Panics
    /// When kinesalite is missing or does not listen and services are required.
    pub async fn start() -> Option<Self> {
        let program = program();
        if !program.is_file() {
            let why = format!(
                "`{}` not found; `npm install kinesalite` in target/test-tools",
                program.display()
            );
            return services::unreachable("kinesalite", VAR, &why);
        }
        let port = free_port();
        #[allow(clippy::disallowed_methods)] // a test's own helper process
        let child = std::process::Command::new(&program)
            .args(["--port", &port.to_string()])
            .args([
                "--createStreamMs",
                "0",
                "--deleteStreamMs",
                "0",
                "--updateStreamMs",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => return services::unreachable("kinesalite", VAR, &e.to_string()),
        };
        let started = Self { child, port };
        let address = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if services::answers(&address).await {
                return Some(started);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        services::unreachable("kinesalite", VAR, "it did not listen within 10 s")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program() -> PathBuf {
    #[allow(clippy::disallowed_methods)] // tests read their own settings
    match std::env::var_os(VAR) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/test-tools/node_modules/.bin/kinesalite"),
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}
