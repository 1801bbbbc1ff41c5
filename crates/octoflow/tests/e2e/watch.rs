//! Folder watches and flow triggers in a real `octoflow serve`: a file dropped into a watched
//! folder starts one run, whose end starts the flow waiting for it; a restart runs neither
//! again; `octoflow flows show` lists the triggers.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::octo;
use crate::server::Server;

const INTAKE: &str = "triggers:\n  - watch: { path: inbox, pattern: '*.csv', settle: 300ms }\nsteps:\n  - name: lines\n    exec: { command: [wc, -l, '{{ params.file }}'] }\n";
const REPORT: &str = "triggers:\n  - flow: { name: intake, status: [succeeded] }\nsteps:\n  - name: said\n    set_fact: { value: '{{ params.upstream_flow }} {{ params.upstream_status }}' }\n";

/// The runs of `flow`, newest first.
async fn runs(server: &Server, flow: &str) -> Vec<Value> {
    let (code, page) = server.get(&format!("/api/v1/runs?flow={flow}")).await;
    assert_eq!(code, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Waits (bounded) until `flow` has `count` ended runs.
async fn until_ended(server: &Server, flow: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = runs(server, flow).await;
        let ended = list
            .iter()
            .all(|r| !["queued", "running"].contains(&r["status"].as_str().unwrap()));
        if list.len() >= count && ended {
            assert_eq!(list.len(), count, "{list:#?}");
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "{flow}: {list:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_file_starts_one_run_and_a_restart_runs_it_not_again() {
    let o = octo().flow("intake", INTAKE).flow("report", REPORT);
    let server = Server::start(&o, &[]);
    std::fs::create_dir_all(o.path("data/inbox")).unwrap();
    std::fs::write(o.path("data/inbox/orders.csv"), "a\nb\nc\n").unwrap();
    std::fs::write(o.path("data/inbox/notes.txt"), "not a csv\n").unwrap();

    let intake = until_ended(&server, "intake", 1).await;
    assert_eq!(intake[0]["status"], "succeeded", "{intake:#?}");
    assert_eq!(intake[0]["params"]["file"], "inbox/orders.csv");
    assert_eq!(intake[0]["trigger"]["kind"], "watch");
    let report = until_ended(&server, "report", 1).await;
    assert_eq!(report[0]["trigger"]["kind"], "flow");
    assert_eq!(report[0]["params"]["upstream_run_id"], intake[0]["id"]);

    let cli = o.clone().env("OCTOFLOW_SERVER", &server.url);
    let show = cli.clone().args(["flows", "show", "intake"]).run();
    show.success()
        .stdout_contains("watch inbox for *.csv (settle 300ms)\n")
        .stdout_contains("file: string  The file that started the run");
    cli.args(["flows", "show", "report"])
        .run()
        .success()
        .stdout_contains("after intake succeeded\n");

    let (out, stderr) = server.signal_and_wait(Signal::SIGTERM);
    out.success();
    assert!(stderr.contains("every run is recorded"), "{stderr}");

    let server = Server::start(&o, &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs(&server, "intake").await.len(), 1, "not run again");
    assert_eq!(runs(&server, "report").await.len(), 1);
    std::fs::write(o.path("data/inbox/more.csv"), "d\n").unwrap();
    let intake = until_ended(&server, "intake", 2).await;
    assert_eq!(intake[0]["params"]["file"], "inbox/more.csv");
    until_ended(&server, "report", 2).await;
}
