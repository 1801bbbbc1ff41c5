//! Folder watches (SPEC §7): a file starts one run once it has settled, with `params.file`;
//! patterns, recursion, files there before the start (run once, or skipped), restarts over
//! the same store, and watches following flow changes.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use octoflow_core::store::{MemoryStore, Run, Store};
use octoflow_core::triggers::watch_state_namespace;
use octoflow_store_sqlite::SqliteStore;
use serde_json::json;

use crate::trigger_node::{TriggerNode, data_dir, write_flows};

fn watching(watch: &str) -> String {
    format!(
        "triggers:\n  - watch: {watch}\nsteps:\n  - name: seen\n    set_fact: {{ value: '{{{{ params.file }}}}' }}\n"
    )
}

fn files(runs: &[Run]) -> Vec<String> {
    let mut files: Vec<String> = runs
        .iter()
        .map(|r| r.params["file"].as_str().unwrap().to_owned())
        .collect();
    files.sort();
    files
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_slowly_starts_one_run_once_it_has_settled() {
    let (_guard, data) = data_dir();
    let flow = watching("{ path: inbox, pattern: '*.pdf', settle: 1s }");
    write_flows(&data, &[("pdfs", &flow)]);
    std::fs::create_dir_all(data.join("inbox")).unwrap();
    let node = TriggerNode::start(&data, Arc::new(MemoryStore::new()));

    let mut file = std::fs::File::create(data.join("inbox/report.pdf")).unwrap();
    for i in 0..6 {
        writeln!(file, "part {i}").unwrap();
        file.flush().unwrap();
        pause(100).await;
    }
    drop(file);
    assert!(
        node.runs("pdfs").await.is_empty(),
        "no run before it settles"
    );

    let runs = node.until_ended("pdfs", 1).await;
    let run = &runs[0];
    assert_eq!(run.params, json!({"file": "inbox/report.pdf"}));
    assert_eq!(run.data["seen"], "inbox/report.pdf");
    assert_eq!(run.trigger.kind, "watch");
    assert_eq!(
        run.trigger.detail,
        json!({"path": "inbox", "pattern": "*.pdf", "file": "inbox/report.pdf"})
    );
    pause(2500).await;
    assert_eq!(node.runs("pdfs").await.len(), 1, "each file once");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_matching_files_run_and_subfolders_only_for_recursive_watches() {
    let (_guard, data) = data_dir();
    let flat = watching("{ path: inbox, pattern: '*.csv', settle: 300ms }");
    let deep = watching("{ path: inbox, pattern: '*.csv', settle: 300ms, recursive: true }");
    write_flows(&data, &[("flat", &flat), ("deep", &deep)]);
    let node = TriggerNode::start(&data, Arc::new(MemoryStore::new()));

    write(&data.join("inbox/a.csv"), "a");
    write(&data.join("inbox/b.txt"), "not a csv");
    write(&data.join("inbox/.c.csv"), "hidden");
    node.until_ended("flat", 1).await;
    node.until_ended("deep", 1).await;
    // Folders made while watching, with files written at once.
    write(&data.join("inbox/sub/c.csv"), "c");
    write(&data.join("inbox/sub/deeper/d.csv"), "d");
    write(&data.join("inbox/sub/e.txt"), "e");
    let deep_runs = node.until_ended("deep", 3).await;
    pause(1000).await;
    assert_eq!(
        files(&node.runs("deep").await),
        ["inbox/a.csv", "inbox/sub/c.csv", "inbox/sub/deeper/d.csv"]
    );
    assert_eq!(files(&deep_runs).len(), 3);
    assert_eq!(files(&node.runs("flat").await), ["inbox/a.csv"]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_there_before_the_start_run_once_and_a_restart_runs_nothing_twice() {
    let (_guard, data) = data_dir();
    let flow = watching("{ path: inbox, settle: 300ms }");
    write_flows(&data, &[("all", &flow)]);
    write(&data.join("inbox/old1.pdf"), "one");
    write(&data.join("inbox/old2.pdf"), "two");
    let db = data.join("octoflow.db");

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let node = TriggerNode::start(&data, store);
    let runs = node.until_ended("all", 2).await;
    assert_eq!(files(&runs), ["inbox/old1.pdf", "inbox/old2.pdf"]);
    node.stop().await;

    // While stopped, a file arrives: it runs at the next start; the others do not again.
    write(&data.join("inbox/late.pdf"), "late");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let node = TriggerNode::start(&data, store);
    let runs = node.until_ended("all", 3).await;
    assert_eq!(runs[2].params["file"], "inbox/late.pdf");
    pause(1000).await;
    assert_eq!(node.runs("all").await.len(), 3, "no file ran twice");

    // A file that changes is a new version: it runs again.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("inbox/old1.pdf"))
        .unwrap();
    file.write_all(b" more").unwrap();
    drop(file);
    let runs = node.until_ended("all", 4).await;
    assert_eq!(runs[3].params["file"], "inbox/old1.pdf");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_files_can_be_skipped_while_later_ones_run_even_across_a_restart() {
    let (_guard, data) = data_dir();
    let flow = watching("{ path: inbox, settle: 300ms, existing: skip }");
    write_flows(&data, &[("skipper", &flow)]);
    write(&data.join("inbox/old.pdf"), "old");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());

    let node = TriggerNode::start(&data, store.clone());
    // The watch has listed its folder once it has recorded its start.
    let namespace = watch_state_namespace("skipper");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store
        .state(&namespace)
        .await
        .unwrap()
        .contains_key("watch:inbox|*|false")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch never started"
        );
        pause(20).await;
    }
    write(&data.join("inbox/new.pdf"), "new");
    node.until_ended("skipper", 1).await;
    pause(800).await;
    assert_eq!(files(&node.runs("skipper").await), ["inbox/new.pdf"]);
    let memory = store.state(&namespace).await.unwrap();
    assert_eq!(memory["file:inbox/old.pdf"]["skipped"], true, "{memory:#?}");
    node.stop().await;

    // Only the first start skips: a file that arrived while stopped runs at the next one.
    write(&data.join("inbox/late.pdf"), "late");
    let node = TriggerNode::start(&data, store);
    node.until_ended("skipper", 2).await;
    pause(800).await;
    assert_eq!(
        files(&node.runs("skipper").await),
        ["inbox/late.pdf", "inbox/new.pdf"]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_follow_the_flows_as_they_are_added_changed_and_removed() {
    let (_guard, data) = data_dir();
    write_flows(&data, &[]);
    let node = TriggerNode::start(&data, Arc::new(MemoryStore::new()));
    let pdfs = watching("{ path: drop, pattern: '*.pdf', settle: 200ms }");
    node.library.put("later", &pdfs).unwrap();
    write(&data.join("drop/one.pdf"), "1");
    node.until_ended("later", 1).await;

    let texts = watching("{ path: drop, pattern: '*.txt', settle: 200ms }");
    node.library.put("later", &texts).unwrap();
    pause(300).await;
    write(&data.join("drop/two.pdf"), "2");
    write(&data.join("drop/three.txt"), "3");
    node.until_ended("later", 2).await;
    pause(600).await;
    assert_eq!(
        files(&node.runs("later").await),
        ["drop/one.pdf", "drop/three.txt"]
    );

    assert!(node.library.remove("later").unwrap());
    pause(300).await;
    write(&data.join("drop/four.txt"), "4");
    pause(800).await;
    assert_eq!(
        node.runs("later").await.len(),
        2,
        "a removed watch starts nothing"
    );
    node.stop().await;
}
