//! The flows library: loading, writing through the API, duplicate names, and hot reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use octoflow_core::engine::FlowCatalog;
use octoflow_core::flow::flow_version;
use octoflow_core::fs::FilesRoot;
use octoflow_core::library::{FlowEntry, FlowLibrary, LibraryWatch, PutError, flow_files};
use octoflow_core::step::Registry;
use tokio::sync::watch;

/// The library's promise: a change on disk is seen within a second.
const WITHIN: Duration = Duration::from_secs(1);

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    library: Arc<FlowLibrary>,
}

fn registry() -> Arc<Registry> {
    let mut registry = Registry::with_core_kinds();
    octoflow_steps::register_builtin(&mut registry);
    Arc::new(registry)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("cannot write the flow file"))
        .expect("cannot write the flow file");
    std::fs::write(path, text).expect("cannot write the flow file");
}

fn open(files: &[(&str, &str)]) -> Fixture {
    let tmp = tempfile::tempdir().expect("cannot set up the flows directory");
    let dir = tmp.path().join("flows");
    for (name, text) in files {
        write(&dir.join(name), text);
    }
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("cannot set up the flows directory");
    let files = FilesRoot::new(&data, &[], false).expect("cannot set up the flows directory");
    let library = FlowLibrary::open(dir.clone(), registry(), tmp.path().join("templates"), files)
        .expect("cannot set up the flows directory");
    Fixture {
        _tmp: tmp,
        dir,
        library,
    }
}

/// A valid flow; `name` is left out when empty.
fn flow_text(name: &str, value: u32) -> String {
    let name = if name.is_empty() {
        String::new()
    } else {
        format!("name: {name}\n")
    };
    format!("{name}steps:\n  - name: a\n    set_fact: {{ value: {value} }}\n")
}

const BROKEN: &str = "steps: [\n";

/// Waits for the library to change until `done` holds, at most [`WITHIN`] in all.
async fn seen(
    library: &FlowLibrary,
    changes: &mut watch::Receiver<u64>,
    what: &str,
    done: impl Fn(&FlowLibrary) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done(library) {
        let Ok(outcome) = tokio::time::timeout_at(deadline, changes.changed()).await else {
            panic!("not seen within {WITHIN:?}: {what}");
        };
        outcome.expect("the library is gone");
    }
}

#[test]
fn loads_every_flow_file() {
    let f = open(&[
        ("a.yml", &flow_text("a", 1)),
        ("sub/b.yaml", &flow_text("", 2)),
        ("broken.yml", BROKEN),
        (".hidden.yml", &flow_text("hidden", 3)),
        (".git/c.yml", &flow_text("c", 4)),
        ("notes.txt", "not a flow"),
    ]);
    let entries = f.library.entries();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "broken"]);

    let b = f.library.entry("b").unwrap();
    assert_eq!(b.path, f.dir.join("sub/b.yaml"));
    assert!(b.problems.is_empty());
    assert_eq!(&*b.source, flow_text("", 2));
    let flow = f.library.flow("b").unwrap();
    assert_eq!(
        flow.path.as_deref(),
        Some(f.dir.join("sub/b.yaml").as_path())
    );

    let broken = f.library.entry("broken").unwrap();
    assert!(broken.flow.is_none());
    assert_eq!(&*broken.source, BROKEN);
    assert!(
        broken.problems[0].message.starts_with("invalid YAML"),
        "{:?}",
        broken.problems
    );
    assert!(f.library.flow("hidden").is_none());
}

#[test]
fn a_missing_directory_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/flows");
    let files = FilesRoot::new(tmp.path(), &[], false).unwrap();
    let library = FlowLibrary::open(dir.clone(), registry(), tmp.path().into(), files).unwrap();
    assert!(dir.is_dir());
    assert!(library.entries().is_empty());
}

#[test]
fn put_writes_the_file_and_updates_the_entry() {
    let f = open(&[
        ("a.yml", &flow_text("a", 1)),
        ("other.yml", &flow_text("b", 1)),
    ]);
    let mut changes = f.library.subscribe();

    let text = flow_text("a", 2);
    let flow = f.library.put("a", &text).unwrap();
    assert_eq!(std::fs::read_to_string(f.dir.join("a.yml")).unwrap(), text);
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();
    let entry = f.library.entry("a").unwrap();
    assert_eq!(&*entry.source, text);
    assert_eq!(entry.flow.unwrap().version, flow.version);
    assert_eq!(flow.path.as_deref(), Some(f.dir.join("a.yml").as_path()));

    // An existing flow is written to its own file, whatever that is called.
    let text = flow_text("b", 2);
    f.library.put("b", &text).unwrap();
    assert_eq!(
        std::fs::read_to_string(f.dir.join("other.yml")).unwrap(),
        text
    );
    assert!(!f.dir.join("b.yml").exists());

    // A new flow gets `<name>.yml`; the name may be left out of the text.
    let text = flow_text("", 3);
    f.library.put("c", &text).unwrap();
    assert_eq!(std::fs::read_to_string(f.dir.join("c.yml")).unwrap(), text);
    assert_eq!(f.library.flow("c").unwrap().name, "c");
    assert!(changes.has_changed().unwrap());
    let names: Vec<String> = f.library.entries().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn put_refuses_an_invalid_flow_and_writes_nothing() {
    let original = flow_text("a", 1);
    let f = open(&[("a.yml", &original), ("x.yml", &flow_text("y", 1))]);
    let changes = f.library.subscribe();

    let Err(PutError::Invalid(problems)) = f.library.put("a", BROKEN) else {
        panic!("a broken flow was accepted");
    };
    assert!(!problems.items.is_empty());
    assert_eq!(problems.file, f.dir.join("a.yml").display().to_string());

    let Err(PutError::Invalid(problems)) = f.library.put("a", &flow_text("b", 1)) else {
        panic!("a flow of another name was accepted");
    };
    assert_eq!(problems.items[0].path, "name");
    assert_eq!(problems.items[0].line, Some(1));
    assert_eq!(
        problems.items[0].message,
        "the flow is named `b` but saved as `a`"
    );
    assert!(f.library.check("a", &flow_text("b", 1)).is_err());

    assert!(matches!(
        f.library.put("../up", &flow_text("", 1)),
        Err(PutError::Invalid(_))
    ));
    assert!(matches!(
        f.library.put("new", BROKEN),
        Err(PutError::Invalid(_))
    ));

    assert_eq!(
        std::fs::read_to_string(f.dir.join("a.yml")).unwrap(),
        original
    );
    assert!(!f.dir.join("new.yml").exists());
    assert!(!f.dir.parent().unwrap().join("up.yml").exists());
    assert_eq!(&*f.library.entry("a").unwrap().source, original);
    assert!(!changes.has_changed().unwrap());

    // `x.yml` holds flow `y`: a new flow `x` goes to `x.yaml`.
    f.library.put("x", &flow_text("", 1)).unwrap();
    assert!(f.dir.join("x.yaml").is_file());
    assert_eq!(f.library.flow("y").unwrap().version, flow_version_of("y"));
}

fn flow_version_of(name: &str) -> String {
    flow_version(&flow_text(name, 1))
}

#[test]
fn check_validates_without_writing() {
    let f = open(&[]);
    let flow = f.library.check("fresh", &flow_text("", 1)).unwrap();
    assert_eq!(flow.name, "fresh");
    assert!(f.library.check("fresh", BROKEN).is_err());
    assert!(!f.dir.join("fresh.yml").exists());
    assert!(f.library.entry("fresh").is_none());
}

#[test]
fn remove_deletes_the_file_and_the_entry() {
    let f = open(&[("a.yml", &flow_text("a", 1))]);
    assert!(f.library.remove("a").unwrap());
    assert!(!f.dir.join("a.yml").exists());
    assert!(f.library.entry("a").is_none());
    assert!(f.library.entries().is_empty());
    assert!(!f.library.remove("a").unwrap());
}

#[tokio::test]
async fn the_first_file_by_path_owns_a_name() {
    let f = open(&[
        ("a.yml", &flow_text("same", 1)),
        ("b.yml", &flow_text("same", 2)),
    ]);
    let entries = f.library.entries();
    assert_eq!(entries.len(), 2);
    let owner = f.library.entry("same").unwrap();
    assert_eq!(owner.path, f.dir.join("a.yml"));
    assert!(owner.problems.is_empty());
    let other = entries
        .iter()
        .find(|e| e.path == f.dir.join("b.yml"))
        .unwrap();
    assert_eq!(other.name, "same");
    assert!(other.flow.is_none());
    assert_eq!(
        other.problems[0].message,
        "flow name `same` is already used by `a.yml`"
    );
    assert_eq!(other.problems[0].line, Some(1));

    let by_name = f.library.by_name("same").await.unwrap();
    assert_eq!(by_name.path.as_deref(), Some(f.dir.join("a.yml").as_path()));
    assert!(f.library.by_path("a.yml").await.is_ok());
    assert!(f.library.by_path("./a.yml").await.is_ok());
    let err = f.library.by_path("b.yml").await.unwrap_err();
    assert!(err.contains("is already used by"), "{err}");

    // Once the owner goes, the other file's flow takes the name.
    assert!(f.library.remove("same").unwrap());
    let entry = f.library.entry("same").unwrap();
    assert_eq!(entry.path, f.dir.join("b.yml"));
    assert!(entry.problems.is_empty());
    assert!(entry.flow.is_some());
}

#[tokio::test]
async fn the_catalog_refuses_paths_outside_and_names_problems() {
    let f = open(&[("a.yml", &flow_text("a", 1)), ("bad.yml", BROKEN)]);
    assert!(f.library.by_path("../a.yml").await.is_err());
    assert!(f.library.by_path("/etc/passwd").await.is_err());
    assert!(f.library.by_path("missing.yml").await.is_err());
    let err = f.library.by_name("bad").await.unwrap_err();
    assert!(err.contains("invalid YAML"), "{err}");
    let err = f.library.by_name("nope").await.unwrap_err();
    assert!(err.starts_with("no flow named `nope`"), "{err}");
}

#[tokio::test]
async fn changes_on_disk_are_applied() {
    let f = open(&[
        ("change.yml", &flow_text("change", 1)),
        ("break.yml", &flow_text("break", 1)),
        ("gone.yml", &flow_text("gone", 1)),
        ("move.yml", &flow_text("move", 1)),
    ]);
    let library = &f.library;
    let mut changes = library.subscribe();
    let watch = library.watch().unwrap();

    write(&f.dir.join("sub/new.yml"), &flow_text("new", 1));
    seen(library, &mut changes, "a new file", |l| {
        l.flow("new").is_some()
    })
    .await;

    let text = flow_text("change", 2);
    write(&f.dir.join("change.yml"), &text);
    seen(library, &mut changes, "a changed file", |l| {
        l.flow("change").is_some_and(|flow| *flow.source == *text)
    })
    .await;

    let good = library.flow("break").unwrap();
    write(&f.dir.join("break.yml"), BROKEN);
    seen(library, &mut changes, "a broken file", |l| {
        l.entry("break").is_some_and(|e| !e.problems.is_empty())
    })
    .await;
    let entry = library.entry("break").unwrap();
    assert_eq!(&*entry.source, BROKEN);
    assert_eq!(entry.flow.unwrap().version, good.version);
    assert_eq!(
        library.by_name("break").await.unwrap().version,
        good.version
    );

    std::fs::remove_file(f.dir.join("gone.yml")).unwrap();
    seen(library, &mut changes, "a removed file", |l| {
        l.entry("gone").is_none()
    })
    .await;

    std::fs::rename(f.dir.join("move.yml"), f.dir.join("moved.yml")).unwrap();
    seen(library, &mut changes, "a renamed file", |l| {
        l.entry("move")
            .is_some_and(|e| e.path == f.dir.join("moved.yml"))
    })
    .await;

    // A write through the library is not undone by the watcher seeing it.
    let text = flow_text("break", 3);
    library.put("break", &text).unwrap();
    assert!(library.entry("break").unwrap().problems.is_empty());

    drop(watch);
    let names: Vec<String> = library.entries().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["break", "change", "move", "new"]);
    assert_eq!(&*library.entry("break").unwrap().source, text);
}

#[test]
fn the_library_is_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<FlowLibrary>();
    shared::<FlowEntry>();
    shared::<LibraryWatch>();
}

#[test]
fn flow_files_skips_hidden_files_and_directories() {
    let f = open(&[
        ("b.yml", &flow_text("b", 1)),
        ("a/c.yaml", &flow_text("c", 1)),
        (".git/d.yml", &flow_text("d", 1)),
        (".e.yml", &flow_text("e", 1)),
        ("f.txt", "no"),
    ]);
    let files = flow_files(&f.dir).unwrap();
    assert_eq!(files, [f.dir.join("a/c.yaml"), f.dir.join("b.yml")]);
    let err = flow_files(&f.dir.join("missing")).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read directory"),
        "{err}"
    );
}
