//! A local mail server for tests of `email` steps: Python's `aiosmtpd` writing every message
//! it takes into a maildir, and a wait for the next message there.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use octoflow_testkit::tools::Tool;

/// A running `aiosmtpd` and the maildir it fills.
pub(crate) struct Mailbox {
    /// The SMTP port on 127.0.0.1.
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    _server: Tool,
}

impl Mailbox {
    /// Starts the server; `None` (the test skips, with a line saying why) when `aiosmtpd` is
    /// not installed and no services are required.
    pub(crate) async fn start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir").display().to_string();
        let server = Tool::start(
            "aiosmtpd",
            "OCTOFLOW_TEST_AIOSMTPD",
            "python3",
            move |port| {
                let listen = format!("127.0.0.1:{port}");
                [
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                    &maildir,
                    "-l",
                    &listen,
                ]
                .map(str::to_owned)
                .to_vec()
            },
        )
        .await?;
        Some(Self {
            port: server.port,
            dir,
            _server: server,
        })
    }

    /// The server's URL, for `smtp:` in a config.yml.
    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The `smtp:` section of a config.yml that sends through this server.
    pub(crate) fn config(&self, from: &str) -> String {
        format!(
            "smtp:\n  default: {{ url: '{}', from: {from} }}\n",
            self.url()
        )
    }

    /// Waits (at most 10 s) until `count` messages arrived; returns them (raw text, folded
    /// header lines joined), oldest first.
    pub(crate) async fn received(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<(std::time::SystemTime, PathBuf)> =
                std::fs::read_dir(self.dir.path().join("maildir/new"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                    .collect();
            if files.len() >= count {
                files.sort();
                return files
                    .iter()
                    .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
                    .map(|m| {
                        m.replace("\r\n", "\n")
                            .replace("\n ", " ")
                            .replace("\n\t", " ")
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{count} messages did not arrive in 10 s ({} did)",
                files.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
