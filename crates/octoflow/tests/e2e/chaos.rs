//! Chaos: a real `octoflow serve` is killed with SIGKILL at random moments while it runs
//! flows with children, loops, retries and sleeps, and started again on the same data
//! directory. At the end every accepted run has ended with a reason, and no command of a
//! killed node did its work after the kill (SPEC §1 principle 3, §9).
//!
//! The seed is printed; `OCTOFLOW_CHAOS_SEED=<seed>` replays a run's choices.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use octoflow_testkit::cli::Octo;

use crate::octo;
use crate::server::Server;

/// Appends `<run id> <node pid> <unix time>` to `side.txt` after sleeping `nap` seconds:
/// the side effect whose count and time the test checks (`$PPID` is the node that started
/// the command).
const WORK: &str = "exec: { command: [sh, -c, 'sleep \"$1\"; echo \"$2 $PPID $(date +%s.%N)\" >> \"$3\"', sh, '{{ params.nap }}', '{{ run.id }}', '{{ run.workdir }}/../../side.txt'] }";

fn flows() -> [(&'static str, String); 4] {
    let nap = "params:\n  nap: { type: number, default: 0.2 }\n";
    [
        ("leaf", format!("{nap}steps:\n  - name: work\n    {WORK}\n")),
        (
            "fan",
            format!(
                "on_interrupt: retry\nresume: true\n{nap}steps:\n  - name: items\n    set_fact: {{ value: '{{{{ [1, 2, 3] }}}}' }}\n  - name: each\n    flow_loop: {{ name: leaf, data_key: items, concurrency: 2, params: {{ nap: '{{{{ params.nap }}}}' }} }}\n"
            ),
        ),
        (
            "solo",
            format!(
                "on_interrupt: retry\nresume: true\n{nap}steps:\n  - name: pause\n    sleep: {{ seconds: '{{{{ params.nap }}}}' }}\n  - name: work\n    {WORK}\n  - name: flaky\n    exec: {{ command: [sh, -c, 'exit 1'] }}\n    retry: {{ attempts: 2, delay: 20ms }}\n    ignore_errors: ['exit code']\n"
            ),
        ),
        ("once", format!("{nap}steps:\n  - name: work\n    {WORK}\n")),
    ]
}

/// A small deterministic generator (xorshift64*), so a seed replays the same choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_every_accepted_run_ends_once_with_a_reason() {
    #[allow(clippy::disallowed_methods)] // a test's own knob, not a setting of octoflow
    let seed = std::env::var("OCTOFLOW_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos(),
            ) | 1
        });
    println!("chaos seed: {seed} (replay with OCTOFLOW_CHAOS_SEED={seed})");
    let mut o = octo();
    for (name, yaml) in flows() {
        o = o.flow(name, &yaml);
    }
    let (accepted, kills) = accept_and_kill(&o, &mut Rng(seed)).await;

    // A last start hands back what the last kill left, and runs everything to its end.
    let server = Server::start(&o, &["--workers", "8"]);
    let runs = ended(&server, &accepted, seed).await;
    for (id, run) in &runs {
        let status = run["status"].as_str().unwrap();
        if status != "succeeded" {
            let reason = run["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !reason.is_empty(),
                "seed {seed}: {id} ended {status} without a reason: {run}"
            );
        }
    }
    let text = std::fs::read_to_string(o.data_dir().join("side.txt")).unwrap_or_default();
    let repeated = check_side_effects(&text, &kills, seed);
    let ended = runs.values().filter(|r| r["status"] != "succeeded").count();
    println!(
        "chaos seed {seed}: {} runs accepted, {ended} not succeeded (interrupted), {} side effects, {repeated} repeated around a kill",
        accepted.len(),
        text.lines().count()
    );
}

/// Five rounds: a server starts, takes 40 runs of random flows, and is killed with SIGKILL
/// after a random time. The accepted run ids, and each killed node's pid with the instant
/// it was known dead (reaped): on a loaded machine a node can take a while to die after
/// the signal is sent, and it is its death that stops its commands.
async fn accept_and_kill(o: &Octo, rng: &mut Rng) -> (Vec<String>, HashMap<u32, f64>) {
    let names = ["leaf", "fan", "solo", "once"];
    let mut accepted = Vec::new();
    let mut kills = HashMap::new();
    for _round in 0..5 {
        let server = Server::start(o, &["--workers", "8"]);
        for _ in 0..40 {
            let flow = names[usize::try_from(rng.below(4)).unwrap()];
            let nap = 0.05 + f64::from(u32::try_from(rng.below(30)).unwrap()) / 100.0;
            let (code, run) = server
                .post(
                    &format!("/api/v1/flows/{flow}/runs"),
                    &json!({"params": {"nap": nap}}),
                )
                .await;
            assert_eq!(code, 201, "{run}");
            accepted.push(run["id"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(200 + rng.below(1_300))).await;
        let pid = server.pid();
        server.kill();
        kills.insert(pid, now());
    }
    (accepted, kills)
}

/// Waits (bounded) until every accepted run has a final status; the runs by id.
async fn ended(server: &Server, accepted: &[String], seed: u64) -> HashMap<String, Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut runs = HashMap::new();
    for id in accepted {
        loop {
            let (code, run) = server.get(&format!("/api/v1/runs/{id}")).await;
            assert_eq!(code, 200, "accepted run {id} is not recorded: {run}");
            let status = run["status"].as_str().unwrap().to_owned();
            if ["succeeded", "failed", "cancelled", "timed_out"].contains(&status.as_str()) {
                runs.insert(id.clone(), run);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: run {id} is still {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    runs
}

/// No command of a killed node did its work after the kill. A side effect seen twice for
/// one run can only be a command that finished just before its node was killed, before the
/// node could record the step's end (the re-queued run did it again). Returns how many runs
/// did so.
fn check_side_effects(text: &str, kills: &HashMap<u32, f64>, seed: u64) -> usize {
    // A command's leader is sent SIGKILL as its node dies, before the node is reaped and
    // the instant taken; the window allows for the clocks of two processes and a write
    // already under way.
    const KILL_LANDS_WITHIN: f64 = 0.1;
    let mut lines: HashMap<&str, Vec<(u32, f64)>> = HashMap::new();
    for line in text.lines() {
        let mut parts = line.split(' ');
        let (Some(id), Some(pid), Some(at)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("seed {seed}: a torn line in side.txt: {line:?}");
        };
        let (pid, at): (u32, f64) = (pid.parse().unwrap(), at.parse().unwrap());
        if let Some(&killed) = kills.get(&pid) {
            // A command that outlived its node writes `nap` after the window.
            assert!(
                at < killed + KILL_LANDS_WITHIN,
                "seed {seed}: run {id}'s command wrote {:.3} s after its node was killed",
                at - killed
            );
        }
        lines.entry(id).or_default().push((pid, at));
    }
    let mut repeated = 0;
    for (id, writes) in &lines {
        if writes.len() < 2 {
            continue;
        }
        repeated += 1;
        let (pid, at) = writes
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        // Its end is written within milliseconds of the command's exit (under load, the
        // store's queue can hold it longer).
        let just_before_a_kill = kills
            .get(&pid)
            .is_some_and(|&k| at < k + KILL_LANDS_WITHIN && k - at < 1.5);
        assert!(
            just_before_a_kill,
            "seed {seed}: run {id} did its work {} times: {writes:?}; its first node was killed at {:?}",
            writes.len(),
            kills.get(&pid)
        );
    }
    repeated
}
