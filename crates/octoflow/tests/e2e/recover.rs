//! Crash recovery (SPEC §9): a run left `running` by a killed `octoflow run` ends `failed`
//! with error `interrupted` at the next start; a run of a live process is left alone.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use octoflow_core::store::{RunStatus, RunStore, StepStatus};
use octoflow_testkit::cli::Octo;

use crate::run::nix_kill;
use crate::{octo, recorded_runs, start, step_runs, try_with_store};

const SLOW: &str = "steps:\n  - name: wait\n    exec: { command: [sleep, \"30\"] }\n";
const QUICK: &str = "steps:\n  - name: a\n    set_fact: { value: 1 }\n";

/// Waits until `n` runs are `running`, each with a step running. Call it once the runs
/// have started (see [`start`]): the store is set up by then.
pub(crate) fn wait_for_running(o: &Octo, n: usize) {
    let start = Instant::now();
    loop {
        let busy = try_with_store(o, async |store| {
            let mut busy = 0;
            for run in store.running_runs().await.unwrap() {
                let steps = store.step_runs(&run.id).await.unwrap();
                if steps.iter().any(|s| s.status == StepStatus::Running) {
                    busy += 1;
                }
            }
            busy
        });
        if busy.and_then(Result::ok).unwrap_or(0) >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no running step after 30s"
        );
        #[allow(clippy::disallowed_methods)] // a test polls another process's store
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_run_left_by_a_killed_process_is_marked_interrupted_at_the_next_start() {
    let o = octo().flow("slow", SLOW).flow("quick", QUICK);
    let slow = start(&o.clone().args(["run", "slow"]));
    wait_for_running(&o, 1);
    slow.kill(); // SIGKILL: no chance to record anything
    let left = recorded_runs(&o);
    assert_eq!(left[0].status, RunStatus::Running);

    let out = o.clone().args(["run", "quick"]).run();
    out.success().stderr_contains(&format!(
        "note: run {} was left running by a process that is gone; it is now failed: interrupted",
        left[0].id
    ));

    let runs = recorded_runs(&o);
    let slow = runs.iter().find(|r| r.id == left[0].id).unwrap();
    assert_eq!(slow.status, RunStatus::Failed);
    assert_eq!(
        slow.error.as_ref().map(|e| e.message.as_str()),
        Some("interrupted")
    );
    let steps = step_runs(&o, slow);
    assert_eq!(steps[0].status, StepStatus::Failed);
    assert_eq!(steps[0].error.as_deref(), Some("interrupted"));
    let quick = runs.iter().find(|r| r.flow == "quick").unwrap();
    assert_eq!(quick.status, RunStatus::Succeeded);
}

#[test]
fn a_run_of_a_live_process_is_left_alone() {
    let o = octo().flow("slow", SLOW).flow("quick", QUICK);
    let process = start(&o.clone().args(["run", "slow"]));
    wait_for_running(&o, 1);

    let out = o.clone().args(["run", "quick"]).run();
    out.success();
    assert!(!out.stderr().contains("interrupted"), "{}", out.stderr());
    let slow = recorded_runs(&o)
        .into_iter()
        .find(|r| r.flow == "slow")
        .unwrap();
    assert_eq!(slow.status, RunStatus::Running);

    nix_kill(process.id(), Signal::SIGTERM);
    process.wait().0.failure();
    let slow = recorded_runs(&o)
        .into_iter()
        .find(|r| r.flow == "slow")
        .unwrap();
    assert_eq!(slow.status, RunStatus::Cancelled);
}
