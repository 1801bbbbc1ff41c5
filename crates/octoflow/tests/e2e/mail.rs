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

    /// The `smtp:` section of a config.yml that sends through this server.
    pub(crate) fn config(&self, from: &str) -> String {
        format!(
            "smtp:\n  default: {{ url: 'smtp://127.0.0.1:{}', from: {from} }}\n",
            self.port
        )
    }

    fn messages(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("maildir/new"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }

    /// The first message to arrive (its raw text), waiting at most 10 s.
    pub(crate) async fn first(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(message) = self
                .messages()
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
            {
                return message;
            }
            assert!(Instant::now() < deadline, "no message arrived in 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
