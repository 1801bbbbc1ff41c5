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

/// A running `octoflow serve`.
pub(crate) struct Server {
    child: Option<Spawned>,
    pub(crate) octo: Octo,
    pub(crate) url: String,
    head: String,
    rest: Option<JoinHandle<String>>,
    pub(crate) http: reqwest::Client,
}

impl Server {
    /// Starts `octoflow serve` in `octo`'s directory (extra arguments appended) and waits
    /// until it listens.
    pub(crate) fn start(octo: &Octo, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let octo = octo.clone().args(args);
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
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap().to_owned();
                    let _ = tx.send(Ok((url, head)));
                    break;
                }
            }
            let mut text = String::new();
            let _ = reader.read_to_string(&mut text);
            text
        });
        let (url, head) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(found)) => found,
            Ok(Err(head)) => panic!("octoflow serve ended before listening:\n{head}"),
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {
                panic!("octoflow serve did not listen within 30 s")
            }
        };
        Self {
            child: Some(child),
            octo,
            url,
            head,
            rest: Some(rest),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// Sends `token` as the bearer token of every later request.
    pub(crate) fn bearer(mut self, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        self.http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .unwrap();
        self
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
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
                self.head
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
        nix_kill(self.pid(), signal);
        let out = self.child.take().unwrap().wait(Duration::from_secs(60));
        let stderr = std::mem::take(&mut self.head) + &self.rest.take().unwrap().join().unwrap();
        (out, stderr)
    }

    /// Kills the process with SIGKILL.
    pub(crate) fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        std::process::Child::wait(&mut child).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
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
