//! Flow triggers (SPEC §7): a run that ends with a listed status starts the flows waiting for
//! it, with the upstream run's id, flow, status and data; other statuses, child runs and
//! endless loops start nothing.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use octoflow_core::store::{MemoryStore, RunStatus};
use octoflow_core::triggers::MAX_DEPTH;
use serde_json::json;

use crate::trigger_node::{TriggerNode, data_dir, write_flows};

const UP: &str = "params:\n  fail: { type: boolean, default: false }\nsteps:\n  - name: made\n    set_fact: { value: { n: 42 } }\n  - name: boom\n    when: '{{ params.fail }}'\n    jq: { expression: 'error(\"boom\")' }\n";
const ON_OK: &str = "params:\n  upstream_status: { type: string, enum: [succeeded] }\ntriggers:\n  - flow: { name: up }\nsteps:\n  - name: got\n    set_fact: { value: '{{ params.upstream_flow }} {{ params.upstream_status }} {{ data.made.n }}' }\n";
const ON_ANY: &str = "triggers:\n  - flow: { name: up, status: [succeeded, failed] }\nsteps:\n  - name: got\n    set_fact: { value: '{{ params.upstream_status }}' }\n";
const ON_FAIL: &str = "triggers:\n  - flow: { name: up, status: [failed] }\nsteps:\n  - name: got\n    set_fact: { value: '{{ params.upstream_run_id }}' }\n";
const PARENT: &str = "steps:\n  - name: child\n    flow: { name: up }\n";

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_triggers_fire_on_the_listed_statuses_with_the_upstream_run() {
    let (_guard, data) = data_dir();
    write_flows(
        &data,
        &[
            ("up", UP),
            ("on_ok", ON_OK),
            ("on_any", ON_ANY),
            ("on_fail", ON_FAIL),
            ("parent", PARENT),
        ],
    );
    let node = TriggerNode::start(&data, Arc::new(MemoryStore::new()));

    let up = node.submit("up", json!({})).await;
    node.until_ended("up", 1).await;
    let ok = node.until_ended("on_ok", 1).await.remove(0);
    assert_eq!(ok.status, RunStatus::Succeeded, "{ok:#?}");
    let id = up.id.to_string();
    assert_eq!(
        ok.params,
        json!({"upstream_status": "succeeded", "upstream_run_id": id, "upstream_flow": "up"})
    );
    assert_eq!(ok.data["got"], "up succeeded 42");
    let input = &ok.data["__input__"];
    assert_eq!(input["made"], json!({"n": 42}), "{input}");
    assert!(
        input.get("__job_id__").is_none(),
        "the engine's keys stay behind: {input}"
    );
    assert_eq!(ok.trigger.kind, "flow");
    assert_eq!(
        ok.trigger.detail,
        json!({"run_id": id, "flow": "up", "status": "succeeded", "depth": 1})
    );
    let any = node.until_ended("on_any", 1).await;
    assert_eq!(any[0].data["got"], "succeeded");

    let failed = node.submit("up", json!({"fail": true})).await;
    let ups = node.until_ended("up", 2).await;
    assert_eq!(ups[1].status, RunStatus::Failed);
    let on_fail = node.until_ended("on_fail", 1).await;
    assert_eq!(on_fail[0].data["got"], failed.id.to_string());
    let any = node.until_ended("on_any", 2).await;
    assert_eq!(any[1].data["got"], "failed");

    // The `up` run a `flow` step starts is part of its parent's run: it fires nothing.
    node.submit("parent", json!({})).await;
    node.until_ended("parent", 1).await;
    pause(500).await;
    assert_eq!(node.runs("on_ok").await.len(), 1);
    assert_eq!(node.runs("on_any").await.len(), 2);
    assert_eq!(node.runs("on_fail").await.len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_while_queued_fires_its_cancelled_triggers() {
    let (_guard, data) = data_dir();
    let slow = "concurrency: { policy: queue, limit: 1 }\nsteps:\n  - name: nap\n    sleep: { seconds: 1 }\n";
    let on_cancel = "triggers:\n  - flow: { name: slow, status: [cancelled] }\nsteps:\n  - name: got\n    set_fact: { value: '{{ params.upstream_status }}' }\n";
    write_flows(&data, &[("slow", slow), ("on_cancel", on_cancel)]);
    let node = TriggerNode::start(&data, Arc::new(MemoryStore::new()));
    node.submit("slow", json!({})).await;
    let queued = node.submit("slow", json!({})).await;
    let cancelled = node.service.cancel(&queued.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    let runs = node.until_ended("on_cancel", 1).await;
    assert_eq!(runs[0].params["upstream_run_id"], queued.id.to_string());
    assert_eq!(runs[0].data["got"], "cancelled");
    node.until_ended("slow", 2).await;
    pause(300).await;
    assert_eq!(
        node.runs("on_cancel").await.len(),
        1,
        "the run that succeeded fires nothing"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_triggering_each_other_stop_after_the_longest_chain() {
    let (_guard, data) = data_dir();
    let even_yaml =
        "triggers:\n  - flow: { name: pong }\nsteps:\n  - { name: a, set_fact: { value: 1 } }\n";
    let odd_yaml =
        "triggers:\n  - flow: { name: ping }\nsteps:\n  - { name: a, set_fact: { value: 1 } }\n";
    write_flows(&data, &[("ping", even_yaml), ("pong", odd_yaml)]);
    let node = TriggerNode::start(&data, Arc::new(MemoryStore::new()));
    node.submit("ping", json!({})).await;
    // Depths 0 (by hand) to MAX_DEPTH: ping has the even ones, pong the odd ones.
    let evens = usize::try_from(MAX_DEPTH / 2 + 1).unwrap();
    let odds = usize::try_from(MAX_DEPTH / 2).unwrap();
    node.until_ended("ping", evens).await;
    let odd_runs = node.until_ended("pong", odds).await;
    assert_eq!(odd_runs[0].trigger.detail["depth"], 1);
    pause(500).await;
    assert_eq!(node.runs("ping").await.len(), evens);
    assert_eq!(node.runs("pong").await.len(), odds);
    let last = node.runs("ping").await.pop().unwrap();
    assert_eq!(last.trigger.detail["depth"], MAX_DEPTH);
    node.stop().await;
}
