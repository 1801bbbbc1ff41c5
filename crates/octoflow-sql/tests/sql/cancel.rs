//! A cancelled or timed-out statement stops on the server, not only in the step.

use std::time::{Duration, Instant};

use octoflow_core::store::{RunStatus, StepStatus};

use crate::support::{Scratch, Server};

/// Runs a 60-second sleep statement with a one-second step timeout; the step ends timed out
/// within seconds and the server runs no such statement afterwards.
async fn long_statement_stops(server: Server, sleep: &str, running: &str) {
    let Some(db) = Scratch::new(server).await else {
        return;
    };
    let started = Instant::now();
    let report = db
        .harness()
        .flow(&format!(
            "steps: [{{ name: slow, timeout: 1s, sql: {{ connection: db, query: \"{sleep}\" }} }}]"
        ))
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("slow", StepStatus::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        db.count(running).await,
        0,
        "the statement still runs on the server"
    );
    db.drop_all().await;
}

#[tokio::test]
async fn a_timed_out_postgres_statement_stops() {
    long_statement_stops(
        Server::Postgres,
        "SELECT pg_sleep(60)",
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'",
    )
    .await;
}

#[tokio::test]
async fn a_timed_out_mariadb_statement_stops() {
    long_statement_stops(
        Server::MySql,
        "SELECT SLEEP(60)",
        "SELECT count(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(60)'",
    )
    .await;
}
