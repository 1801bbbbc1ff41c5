//! Load-time checks of folder watches and flow triggers: their fields, the params they fill
//! in (declared implicitly), params they cannot fill, folders outside the allowed
//! directories, and flows triggering themselves.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use octoflow_core::flow::{Flow, FlowLoader, Trigger, WatchExisting};
use octoflow_core::fs::FilesRoot;
use octoflow_core::step::Registry;

fn load(yaml: &str) -> Result<Flow, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let files = FilesRoot::new(dir.path(), &[], false).unwrap();
    let mut registry = Registry::with_core_kinds();
    octoflow_steps::register_builtin(&mut registry);
    FlowLoader::new(&registry)
        .with_files(files)
        .load_str(yaml, "f.yml", Some("f"))
        .map_err(|p| {
            p.items
                .iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect()
        })
}

const STEPS: &str = "steps:\n  - { name: a, set_fact: { value: 1 } }\n";

#[test]
fn watches_and_flow_triggers_declare_the_params_they_fill_in() {
    let yaml = format!(
        "triggers:\n  - watch: {{ path: inbox, pattern: '*.pdf', settle: 5s, recursive: true, existing: skip }}\n  - flow: {{ name: ingest, status: [succeeded, failed] }}\n{STEPS}"
    );
    let flow = load(&yaml).unwrap();
    let declared: Vec<&str> = flow.params.iter().map(|(name, _)| name).collect();
    assert_eq!(
        declared,
        [
            "file",
            "upstream_run_id",
            "upstream_flow",
            "upstream_status"
        ]
    );
    assert!(flow.params.iter().all(|(_, spec)| !spec.required));
    let Trigger::Watch(watch) = &flow.triggers[0] else {
        panic!("{:?}", flow.triggers)
    };
    assert_eq!(watch.existing, WatchExisting::Skip);
    assert_eq!(
        flow.triggers[0].summary(),
        "watch inbox for *.pdf (settle 5s, recursive, existing files skipped)"
    );
    assert_eq!(
        flow.triggers[1].summary(),
        "after ingest succeeded or failed"
    );

    // Declared by the flow: kept as declared, when a string.
    let yaml = format!(
        "params:\n  file: {{ type: string, description: the PDF }}\ntriggers:\n  - watch: {{ path: inbox }}\n{STEPS}"
    );
    let flow = load(&yaml).unwrap();
    let (_, spec) = flow.params.iter().next().unwrap();
    assert_eq!(spec.description.as_deref(), Some("the PDF"));
}

#[test]
fn wrong_watches_and_flow_triggers_are_reported_in_place() {
    let yaml = format!(
        "params:\n  file: {{ type: integer }}\n  env: {{ type: string, required: true }}\ntriggers:\n  - watch: {{ path: ../elsewhere, pattern: 'sub/*.pdf', settle: 0s, existing: maybe }}\n  - watch: {{ path: inbox, pattern: '[a' }}\n  - flow: {{ name: f, status: [running] }}\n{STEPS}"
    );
    let problems = load(&yaml).unwrap_err();
    assert_eq!(
        problems,
        [
            "params.file: `file` is filled in by a watch (`triggers[1].watch`): declare it with type string",
            "triggers[0].watch.existing: unknown variant `maybe`; expected `process` or `skip`",
            "triggers[1].watch: a watch gives only file, but param `env` is required without a default",
            "triggers[1].watch.pattern: invalid glob `[a`: unclosed character class; missing ']'",
            "triggers[2].flow: a flow trigger gives only upstream_run_id, upstream_flow, upstream_status, but param `env` is required without a default",
            "triggers[2].flow.name: a flow cannot trigger itself (its run would start the next one forever)",
            "triggers[2].flow.status[0]: `running` is not how a run ends; use succeeded, failed, cancelled or timed_out",
        ],
        "{problems:#?}"
    );
    let yaml = format!(
        "triggers:\n  - watch: {{ path: ../elsewhere, pattern: 'sub/*.pdf', settle: 0s }}\n{STEPS}"
    );
    let problems = load(&yaml).unwrap_err();
    assert_eq!(
        problems,
        [
            "triggers[0].watch.path: folder `../elsewhere` is outside the data directory and `files.roots`",
            "triggers[0].watch.pattern: pattern `sub/*.pdf` matches files in subfolders; set `recursive: true`",
            "triggers[0].watch.settle: must be more than 0 (how long a file must stay unchanged)",
        ],
        "{problems:#?}"
    );
}
