//! Records per second through `sql` → `hash` (hmac-sha256) → `publish` (NATS JetStream) on
//! 100,000 rows, next to the floors measured in the same session: a bare driver `SELECT` of
//! the same rows, and a bare `JetStream` publish of the same payloads, acks awaited in windows
//! of 500. Then bcrypt: digests per second of a `hash` step next to the bcrypt crate alone.
//!
//! Needs the machine's PostgreSQL and NATS (`OCTOFLOW_TEST_POSTGRES_URL`,
//! `OCTOFLOW_TEST_NATS_URL`). `cargo bench -p octoflow-bench --bench pipeline` (a plain
//! binary: each figure is one timed pass, best of three).

#![allow(clippy::print_stdout)] // a benchmark reports its figures on stdout
#![allow(missing_docs)] // a bench binary
#![allow(clippy::cast_precision_loss)] // counts far below 2^52 turned into rates

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::TryStreamExt;
use octoflow_core::step::Registry;
use octoflow_core::store::RunStatus;
use octoflow_publish::{Publish, SinkConfig};
use octoflow_sql::{ConnectionConfig, Connections, Sql};
use octoflow_testkit::harness::Harness;
use octoflow_testkit::services;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor, Row, SqlSafeStr};

/// The binary's allocator, so the figures are the node's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 100_000;
const PASSES: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(pipeline());
    runtime.block_on(bcrypt_rates());
}

async fn execute(conn: &mut sqlx::PgConnection, sql: &str) {
    let text = AssertSqlSafe(sql.to_owned()).into_sql_str();
    conn.execute(text).await.expect(sql);
}

async fn pipeline() {
    let pg = services::url(
        "OCTOFLOW_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let nats_url = services::url("OCTOFLOW_TEST_NATS_URL", "nats://127.0.0.1:4222");
    let Ok(mut conn) = sqlx::PgConnection::connect(&pg).await else {
        println!("skipped: PostgreSQL unreachable; set OCTOFLOW_TEST_POSTGRES_URL");
        return;
    };
    let Ok(nats) = async_nats::connect(&nats_url).await else {
        println!("skipped: NATS unreachable; set OCTOFLOW_TEST_NATS_URL");
        return;
    };
    let schema = format!("bench_{}", std::process::id());
    execute(&mut conn, &format!("CREATE SCHEMA {schema}")).await;
    execute(
        &mut conn,
        &format!(
            "CREATE TABLE {schema}.visits AS SELECT n AS id, 'patron-' || (n % 5000) AS patron, \
             (n % 120)::int AS minutes, now() - n * interval '1 second' AS at, \
             'branch ' || (n % 90) AS branch FROM generate_series(1, {ROWS}) AS n"
        ),
    )
    .await;
    let select = format!("SELECT id, patron, minutes, at, branch FROM {schema}.visits");
    let js = jetstream::new(nats.clone());
    let stream = format!("BENCH_{}", std::process::id());
    let subject = format!("bench.{}", std::process::id());
    js.create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        max_messages: 2_000_000,
        ..Default::default()
    })
    .await
    .expect("stream");

    let select_floor = select_floor(&mut conn, &select).await;
    let publish_floor = publish_floor(&js, &subject).await;

    // The pipeline: one run of three steps through the engine.
    let mut connections = BTreeMap::new();
    connections.insert("db".to_owned(), ConnectionConfig::new(pg.clone()));
    let sinks: BTreeMap<String, SinkConfig> = serde_json::from_value(json!({
        "events": {"kind": "nats", "url": nats_url, "subject": subject, "stream": stream}
    }))
    .expect("sinks");
    let http = reqwest::Client::builder().build().expect("http client");
    let flow = format!(
        r#"
steps:
  - {{ name: rows, sql: {{ connection: db, query: "{select}" }} }}
  - {{ name: hashed, hash: {{ data_key: rows.rows, fields: [patron], algorithm: hmac-sha256, key: patron_key }} }}
  - {{ name: send, publish: {{ sink: events, data_key: hashed }} }}
"#
    );
    let pipeline = pipeline_passes(&flow, &connections, &sinks, &http).await;
    let rate = |d: Duration| ROWS as f64 / d.as_secs_f64();
    println!("sql → hash (hmac-sha256) → publish (nats), {ROWS} rows, best of {PASSES}:");
    println!(
        "  pipeline        {:>8.0} records/s ({pipeline:.2?})",
        rate(pipeline)
    );
    println!(
        "  floor: SELECT   {:>8.0} rows/s    ({select_floor:.2?})",
        rate(select_floor)
    );
    println!(
        "  floor: publish  {:>8.0} msgs/s    ({publish_floor:.2?})",
        rate(publish_floor)
    );
    let slowest = select_floor.max(publish_floor);
    println!(
        "  pipeline / slowest floor = {:.2}",
        rate(pipeline) / rate(slowest)
    );

    let _ = js.delete_stream(&stream).await;
    execute(&mut conn, &format!("DROP SCHEMA {schema} CASCADE")).await;
}

/// Runs the pipeline flow [`PASSES`] times; prints where each run's time went and returns
/// the best run's own time, from its record (accepted → ended). The harness's wall time adds
/// loading the flow, making and removing its data directory and reading the records.
async fn pipeline_passes(
    flow: &str,
    connections: &BTreeMap<String, ConnectionConfig>,
    sinks: &BTreeMap<String, SinkConfig>,
    http: &reqwest::Client,
) -> Duration {
    let mut pipeline = Duration::MAX;
    for _ in 0..PASSES {
        let mut registry = Registry::with_core_kinds();
        octoflow_steps::register_builtin(&mut registry);
        registry.register(Sql::new(Connections::new(connections.clone())));
        let http = http.clone();
        registry.register(Publish::new(sinks.clone(), move || Ok(http)));
        let harness = Harness::new(registry)
            .secrets("- { name: patron_key, type: value, value: bench-hmac-key }")
            .flow(flow);
        let started = Instant::now();
        let report = harness.run().await;
        let took = started.elapsed();
        report.assert_status(RunStatus::Succeeded);
        // Where the time went: each step, and the gaps the engine spends between them
        // (storing a result, building the next step's view of `data`).
        let mut last = report.run.started_at.unwrap_or(report.run.created_at);
        let mut steps = Vec::new();
        for step in &report.steps {
            let Some(finished) = step.finished_at else {
                continue;
            };
            let gap = (step.started_at - last).num_milliseconds();
            let took = (finished - step.started_at).num_milliseconds();
            steps.push(format!("+{gap} ms, {} {took} ms", step.step));
            last = finished;
        }
        let end = report.run.finished_at.expect("a finished run");
        steps.push(format!("+{} ms end", (end - last).num_milliseconds()));
        let run = (end - report.run.created_at)
            .to_std()
            .expect("a run ends after it starts");
        println!(
            "  pass: run {run:.2?} (harness {took:.2?}); {}",
            steps.join(", ")
        );
        pipeline = pipeline.min(run);
    }
    pipeline
}

/// The driver alone reads the rows: best of [`PASSES`].
async fn select_floor(conn: &mut sqlx::PgConnection, select: &str) -> Duration {
    let mut select_floor = Duration::MAX;
    for _ in 0..PASSES {
        let started = Instant::now();
        let text = AssertSqlSafe(select.to_owned()).into_sql_str();
        let mut rows = sqlx::query(text).fetch(&mut *conn);
        let mut count = 0;
        while let Some(row) = rows.try_next().await.expect("row") {
            let _: i32 = row.get("id");
            count += 1;
        }
        assert_eq!(count, ROWS);
        select_floor = select_floor.min(started.elapsed());
    }

    select_floor
}

/// Bare `JetStream` publishes of the pipeline's payloads, 500 acks in flight at most: best
/// of [`PASSES`].
async fn publish_floor(js: &jetstream::Context, subject: &str) -> Duration {
    let payloads: Vec<Vec<u8>> = (1..=ROWS)
        .map(|n| {
            serde_json::to_vec(&json!({"id": n, "patron": format!("{:064x}", n % 5000),
                "minutes": n % 120, "at": "2026-12-06T04:00:00.123456Z", "branch": format!("branch {}", n % 90)}))
            .expect("json")
        })
        .collect();
    let mut publish_floor = Duration::MAX;
    for pass in 0..PASSES {
        let started = Instant::now();
        for (chunk_index, chunk) in payloads.chunks(500).enumerate() {
            let mut acks = Vec::with_capacity(chunk.len());
            for (i, payload) in chunk.iter().enumerate() {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    "Nats-Msg-Id",
                    format!("floor-{pass}-{chunk_index}-{i}").as_str(),
                );
                acks.push(
                    js.publish_with_headers(subject.to_owned(), headers, payload.clone().into())
                        .await
                        .expect("publish"),
                );
            }
            for ack in acks {
                ack.await.expect("ack");
            }
        }
        publish_floor = publish_floor.min(started.elapsed());
    }

    publish_floor
}

/// Digests per second of a `hash` step (bcrypt, cost 4 and 10) next to the bcrypt crate
/// alone on one thread and on every core.
async fn bcrypt_rates() {
    for (cost, values) in [(4_u32, 4_000_usize), (10, 100)] {
        let salt = format!("$2b${cost:02}$abcdefghijklmnopqrstuu");
        let salt_bytes: [u8; 16] = *b"0123456789abcdef";
        let started = Instant::now();
        for n in 0..values {
            bcrypt::hash_with_salt(format!("patron-{n}"), cost, salt_bytes).expect("bcrypt");
        }
        let raw_one = values as f64 / started.elapsed().as_secs_f64();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let started = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                std::thread::spawn(move || {
                    for n in (t..values).step_by(threads) {
                        bcrypt::hash_with_salt(format!("patron-{n}"), cost, salt_bytes)
                            .expect("bcrypt");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        let raw_all = values as f64 / started.elapsed().as_secs_f64();

        let records: Vec<_> = (0..values)
            .map(|n| json!({"patron": format!("patron-{n}")}))
            .collect();
        let mut registry = Registry::with_core_kinds();
        octoflow_steps::register_builtin(&mut registry);
        let harness = Harness::new(registry)
            .secrets(&format!("- {{ name: salt, type: value, value: '{salt}' }}"))
            .input(json!({"records": records}))
            .flow("steps: [{ name: h, hash: { data_key: __input__.records, fields: [patron], algorithm: bcrypt, salt: salt, strip_salt: true } }]");
        let started = Instant::now();
        harness.run().await.assert_status(RunStatus::Succeeded);
        let step = values as f64 / started.elapsed().as_secs_f64();
        println!(
            "bcrypt cost {cost}, {values} distinct values: hash step {step:.0}/s; bcrypt crate {raw_one:.0}/s on one thread, {raw_all:.0}/s on {threads}"
        );
    }
}
