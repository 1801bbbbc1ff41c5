//! A real `octoflow serve` on a free loopback port with its own data directory, and an HTTP
//! client for it.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::Signal;
use octoflow_testkit::cli::{Octo, Output, Spawned};
use serde_json::Value;

use crate::run::nix_kill;

/// A started process of the binary that said it is ready, with its stderr so far and a
/// reader of the rest.
pub(crate) struct Ready {
    pub(crate) child: Spawned,
    /// The stderr line that said so.
    pub(crate) line: String,
    /// Its stderr up to that line.
    pub(crate) head: String,
    /// The rest of its stderr, once it ends.
    pub(crate) rest: JoinHandle<String>,
}

impl Ready {
    /// Spawns `octo` and waits (at most 30 s) for a stderr line containing `marker`.
    pub(crate) fn spawn(octo: &Octo, marker: &'static str) -> Self {
        let mut child = octo.spawn();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<Result<(String, String), String>>();
        let rest = std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    let _ = tx.send(Err(head));
                    return String::new();
                }
                head.push_str(&line);
                if line.contains(marker) {
                    let _ = tx.send(Ok((line, head)));
                    break;
                }
            }
            let mut text = String::new();
            let _ = reader.read_to_string(&mut text);
            text
        });
        let (line, head) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(found)) => found,
            Ok(Err(head)) => panic!("octoflow ended before saying `{marker}`:\n{head}"),
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {
                panic!("octoflow did not say `{marker}` within 30 s")
            }
        };
        Self {
            child,
            line,
            head,
            rest,
        }
    }

    /// Sends `signal` and waits for the end: the output and the whole stderr.
    pub(crate) fn signal_and_wait(self, signal: Signal) -> (Output, String) {
        nix_kill(self.child.id(), signal);
        let out = self.child.wait(Duration::from_secs(60));
        let stderr = self.head + &self.rest.join().unwrap();
        (out, stderr)
    }
}

/// A running `octoflow serve`.
pub(crate) struct Server {
    /// The process; taken when it is stopped.
    ready: Option<Ready>,
    pub(crate) octo: Octo,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
}

impl Server {
    /// Starts `octoflow serve` in `octo`'s directory (extra arguments appended) and waits
    /// until it listens.
    pub(crate) fn start(octo: &Octo, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let octo = octo.clone().args(args);
        let ready = Ready::spawn(&octo, "listening on ");
        let url = ready.line.split("listening on ").nth(1).unwrap();
        let url = url.split_whitespace().next().unwrap().to_owned();
        Self {
            ready: Some(ready),
            octo,
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// Sends `token` as the bearer token of every later request.
    pub(crate) fn bearer(mut self, token: &str) -> Self {
        self.http = Self::bearer_client(token);
        self
    }

    /// A client that sends `token` as the bearer token of every request.
    pub(crate) fn bearer_client(token: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// The node id it announced (`host:pid:nonce`).
    pub(crate) fn node(&self) -> String {
        let line = &self.ready.as_ref().unwrap().line;
        let rest = line.split("(node ").nth(1).unwrap();
        rest.split(',').next().unwrap().to_owned()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.ready.as_ref().unwrap().child.id()
    }

    /// `GET` a path; the status and the JSON body (`Null` when not JSON).
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let answer = self.http.get(format!("{}{path}", self.url)).send().await;
        json_of(self.answered(answer)).await
    }

    /// The answer; a request that got none panics saying whether the server is gone.
    fn answered(&self, answer: reqwest::Result<reqwest::Response>) -> reqwest::Response {
        answer.unwrap_or_else(|error| {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap());
            let state = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            panic!(
                "no answer from the server ({state:?}): {error:?}\n{}",
                self.ready.as_ref().map_or("", |r| r.head.as_str())
            )
        })
    }

    /// `GET` a path; the body as text (logs, metrics).
    pub(crate) async fn text(&self, path: &str) -> String {
        let answer = self.http.get(format!("{}{path}", self.url)).send().await;
        self.answered(answer).text().await.unwrap()
    }

    /// `POST` JSON to a path; the status and the JSON body.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await;
        json_of(self.answered(answer)).await
    }

    /// Waits (bounded) until the run has one of these statuses; returns the run.
    pub(crate) async fn until(&self, id: &str, statuses: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (code, run) = self.get(&format!("/api/v1/runs/{id}")).await;
            assert_eq!(code, 200, "{run}");
            if statuses.contains(&run["status"].as_str().unwrap()) {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} is {} after 20 s, expected one of {statuses:?}",
                run["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal and waits for the end; returns how it ended and its stderr.
    pub(crate) fn signal_and_wait(mut self, signal: Signal) -> (Output, String) {
        self.ready.take().unwrap().signal_and_wait(signal)
    }

    /// Kills the process with SIGKILL.
    pub(crate) fn kill(mut self) {
        let mut child = self.ready.take().unwrap().child;
        child.kill().unwrap();
        std::process::Child::wait(&mut child).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(Ready { mut child, .. }) = self.ready.take() {
            let _ = child.kill();
            let _ = std::process::Child::wait(&mut child);
        }
    }
}

async fn json_of(answer: reqwest::Response) -> (u16, Value) {
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every run recorded in the data directory's store, newest first.
pub(crate) async fn recorded(octo: &Octo) -> Vec<octoflow_core::store::Run> {
    let db = octo.path("data/octoflow.db");
    let store = octoflow_store_sqlite::SqliteStore::open(&db).await.unwrap();
    crate::all_runs(&store).await
}
