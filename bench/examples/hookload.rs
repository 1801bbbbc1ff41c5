//! Webhook → run throughput of a real `octoflow serve` (`SQLite`, default 8 workers) at fixed
//! request rates: an open-loop load generator that sends `POST /hooks/one` at exact times
//! (so a slow answer delays no later request), then reads each run's end from the API.
//!
//! - accept latency: from the time a request was due to its `202` answer;
//! - of which the generator's own share, how late it sent the request (its timer and the
//!   two cores it shares with the server), and the rest: from sending to the answer;
//! - the server's own view, read from its `/metrics` after the load
//!   (`octoflow_http_request_seconds` of the hook's route): from the request reaching its
//!   router to the answer;
//! - completion latency: from the time it was due to the run's `finished_at`;
//! - completed runs/s: runs over the time from the first request to the last run's end.
//!
//! With `--dryrun` the hook answers its dry run instead (`dryrun: true`): the same request,
//! parsing and answer with no store write and no run — the floor of the accept latency on
//! the machine at that rate.
//!
//! Usage: `cargo run --release -p octoflow-bench --example hookload -- [--rates 500,1000,2000]
//! [--seconds 10] [--bin target/release/octoflow] [--workers N] [--api | --dryrun]` (build the binary first with
//! `cargo build --release -p octoflow`). Prints one Markdown row per rate.
#![allow(clippy::print_stdout, clippy::print_stderr)] // reason: a command-line report
#![allow(clippy::unwrap_used)] // reason: a benchmark; a failed step should stop it loudly
#![allow(clippy::disallowed_methods)] // reason: it starts the server binary it measures
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // reason: statistics

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

const FLOW: &str = "name: one\ntriggers:\n  - webhook: { path: one }\nsteps:\n  - name: one\n    set_fact: { value: 1 }\n";
/// The same flow, its hook answering the dry run.
const DRYRUN_FLOW: &str = "name: one\ntriggers:\n  - webhook: { path: one, dryrun: true }\nsteps:\n  - name: one\n    set_fact: { value: 1 }\n";

struct Args {
    rates: Vec<u64>,
    seconds: u64,
    bin: String,
    /// Start runs through `POST /api/v1/flows/one/runs` instead, for comparison.
    api: bool,
    /// The hook answers its dry run: nothing is written, nothing runs.
    dryrun: bool,
    /// `serve --workers`; with 0 nothing runs and only admission is measured.
    workers: Option<u32>,
}

fn args() -> Args {
    let mut args = Args {
        rates: vec![500, 1000, 2000],
        seconds: 10,
        bin: "target/release/octoflow".to_owned(),
        api: false,
        dryrun: false,
        workers: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--api" {
            args.api = true;
            continue;
        }
        if flag == "--dryrun" {
            args.dryrun = true;
            continue;
        }
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--rates" => args.rates = value.split(',').map(|r| r.parse().unwrap()).collect(),
            "--seconds" => args.seconds = value.parse().unwrap(),
            "--bin" => args.bin = value,
            "--workers" => args.workers = Some(value.parse().unwrap()),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn main() {
    let args = args();
    println!(
        "| requests/s | runs | accepted/s | accept p50 | accept p99 | accept max | sent late p99 | answer p50 | answer p99 | server p50 | server p99 | refused | completed runs/s | completion p50 | completion p99 |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for &rate in &args.rates {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("flows")).unwrap();
        let flow = if args.dryrun { DRYRUN_FLOW } else { FLOW };
        std::fs::write(data.join("flows/one.yml"), flow).unwrap();
        let (mut server, url) = start(&args.bin, &data, args.workers);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let runs = args.workers != Some(0) && !args.dryrun;
        let row = runtime.block_on(load(&url, rate, args.seconds, args.api, runs));
        stop(&mut server);
        println!("{row}");
    }
}

fn start(bin: &str, data: &std::path::Path, workers: Option<u32>) -> (Child, String) {
    let mut command = Command::new(bin);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data);
    if let Some(workers) = workers {
        command.arg("--workers").arg(workers.to_string());
    }
    let mut child = command
        .env("OCTOFLOW_LOG", "error")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining stderr so the server never blocks on it.
            std::thread::spawn(move || for _ in reader.lines() {});
            return (child, url);
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("octoflow serve did not start");
}

fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1000.0)
}

async fn load(url: &str, rate: u64, seconds: u64, api: bool, runs: bool) -> String {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let hook = if api {
        format!("{url}/api/v1/flows/one/runs")
    } else {
        format!("{url}/hooks/one")
    };
    let total = rate * seconds;
    let t0 = Instant::now();
    let wall0 = SystemTime::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, hook) = (client.clone(), hook.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = if api {
                client.post(&hook).json(&serde_json::json!({})).send().await
            } else {
                client.post(&hook).send().await
            };
            let answered = Instant::now();
            let (status, id) = match answer {
                Ok(a) => {
                    let status = a.status().as_u16();
                    let body: Value = a.json().await.unwrap_or(Value::Null);
                    let id = body["run_id"].as_str().or(body["id"].as_str());
                    (status, id.map(str::to_owned))
                }
                Err(_) => (0, None),
            };
            (due, sent, answered, status, id)
        }));
    }
    let (mut accept, mut late, mut round) = (Vec::new(), Vec::new(), Vec::new());
    let mut due_of = std::collections::HashMap::new();
    let mut failed = 0;
    let mut last_answer = t0;
    for task in tasks {
        let (due, sent, answered, status, id) = task.await.unwrap();
        last_answer = last_answer.max(answered);
        accept.push((answered - due).as_secs_f64());
        late.push((sent - due).as_secs_f64());
        round.push((answered - sent).as_secs_f64());
        match (status, id) {
            (201 | 202, Some(id)) => {
                due_of.insert(id, wall0 + (due - t0));
            }
            // A dry run's answer.
            (200, None) => {}
            _ => failed += 1,
        }
    }
    for sorted in [&mut accept, &mut late, &mut round] {
        sorted.sort_by(f64::total_cmp);
    }
    let accepted_rate = total as f64 / (last_answer - t0).as_secs_f64();
    let route = if api {
        "/api/v1/flows/{name}/runs"
    } else {
        "/hooks/one"
    };
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let server = |quantile: f64| server_quantile(&metrics, route, quantile);

    let (completion, completed_rate) = if runs {
        completions(&client, url, wall0, &due_of).await
    } else {
        (Vec::new(), f64::NAN)
    };
    format!(
        "| {rate} | {total} | {accepted_rate:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {failed} | {completed_rate:.0} | {} | {} |",
        ms(percentile(&accept, 50.0)),
        ms(percentile(&accept, 99.0)),
        ms(accept.last().copied().unwrap_or(f64::NAN)),
        ms(percentile(&late, 99.0)),
        ms(percentile(&round, 50.0)),
        ms(percentile(&round, 99.0)),
        ms(server(0.5)),
        ms(server(0.99)),
        ms(percentile(&completion, 50.0)),
        ms(percentile(&completion, 99.0)),
    )
}

/// A quantile (0 to 1), in seconds, of the server's durations of successful answers on
/// `route`, from the buckets of its `/metrics` histogram (NaN when absent).
fn server_quantile(metrics: &str, route: &str, quantile: f64) -> f64 {
    let route = format!("route=\"{route}\"");
    // (upper bound, answers up to it), summed over the successful statuses.
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let lines = metrics
        .lines()
        .filter(|l| l.starts_with("octoflow_http_request_seconds_bucket{"))
        .filter(|l| l.contains(&route) && l.contains("status=\"20"));
    for line in lines {
        let Some((labels, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(bound) = labels
            .rsplit_once("le=\"")
            .and_then(|(_, rest)| rest.split('"').next())
        else {
            continue;
        };
        let bound = if bound == "+Inf" {
            f64::INFINITY
        } else {
            bound.parse().unwrap_or(f64::NAN)
        };
        let count: f64 = count.parse().unwrap_or(0.0);
        match buckets
            .iter_mut()
            .find(|(b, _)| b.to_bits() == bound.to_bits())
        {
            Some((_, total)) => *total += count,
            None => buckets.push((bound, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    histogram_quantile(quantile, &buckets)
}

/// The quantile (0 to 1) of a histogram's (upper bound, cumulative count) buckets, sorted by
/// bound; linear within the bucket it falls in, as Prometheus' `histogram_quantile` reads it
/// (NaN for an empty histogram).
fn histogram_quantile(quantile: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = quantile * total;
    let (mut low, mut below) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            return if bound.is_infinite() {
                low
            } else if count > below {
                low + (bound - low) * (rank - below) / (count - below)
            } else {
                bound
            };
        }
        (low, below) = (bound, count);
    }
    f64::NAN
}

/// Waits for every run to end, then reads when each did: the sorted completion latencies and
/// the completed runs per second.
async fn completions(
    client: &reqwest::Client,
    url: &str,
    wall0: SystemTime,
    due_of: &std::collections::HashMap<String, SystemTime>,
) -> (Vec<f64>, f64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done: Value = client
            .get(format!("{url}/api/v1/runs?status=succeeded&per_page=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done["total"].as_u64().unwrap_or(0) >= due_of.len() as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut completion = Vec::new();
    let mut last_end = wall0;
    let mut page = 1;
    loop {
        let runs: Value = client
            .get(format!(
                "{url}/api/v1/runs?flow=one&per_page=500&page={page}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = runs["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for run in items {
            let (Some(id), Some(end)) = (run["id"].as_str(), run["finished_at"].as_str()) else {
                continue;
            };
            let Some(due) = due_of.get(id) else { continue };
            let end: SystemTime = chrono::DateTime::parse_from_rfc3339(end).unwrap().into();
            last_end = last_end.max(end);
            completion.push(end.duration_since(*due).unwrap_or_default().as_secs_f64());
        }
        page += 1;
    }
    completion.sort_by(f64::total_cmp);
    let completed_rate =
        completion.len() as f64 / last_end.duration_since(wall0).unwrap().as_secs_f64();
    (completion, completed_rate)
}
