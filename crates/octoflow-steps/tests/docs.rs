//! Keeps the user reference `docs/step-kinds/` and the code together: every kind directory
//! and every registered kind has a page, and each page names every setting of its kind.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use octoflow_core::step::Registry;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pages_dir() -> PathBuf {
    crate_dir().join("../../docs/step-kinds")
}

fn page(kind: &str) -> Option<String> {
    fs::read_to_string(pages_dir().join(format!("{kind}.md"))).ok()
}

/// The kind directories under `src/`, sorted.
fn kind_dirs() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = fs::read_dir(crate_dir().join("src"))
        .expect("read src/")
        .map(|entry| entry.expect("read an entry of src/").path())
        .filter(|path| path.is_dir())
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, path))
        })
        .collect();
    dirs.sort();
    dirs
}

/// The file holding a kind's settings struct: `settings.rs`, else `mod.rs`.
fn settings_source(dir: &Path) -> String {
    let settings = dir.join("settings.rs");
    let file = if settings.is_file() {
        settings
    } else {
        dir.join("mod.rs")
    };
    fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
}

/// The name of the struct a line declares, if it declares one.
fn struct_name(line: &str) -> Option<&str> {
    let rest = line
        .trim()
        .strip_prefix("pub(crate) ")
        .unwrap_or(line.trim());
    let rest = rest.strip_prefix("pub ").unwrap_or(rest);
    let rest = rest.strip_prefix("struct ")?;
    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
}

/// The field a line of a struct body declares, with any visibility (`pub`, `pub(crate)`, …).
fn field_name(line: &str) -> Option<String> {
    let mut rest = line.trim();
    if rest.starts_with("pub(") {
        rest = rest.split_once(')')?.1.trim_start();
    } else if let Some(after) = rest.strip_prefix("pub ") {
        rest = after.trim_start();
    }
    let (name, _) = rest.split_once(':')?;
    let name = name.trim().strip_prefix("r#").unwrap_or(name.trim());
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then(|| name.to_owned())
}

/// `#[serde(rename = "x")]` → `x`.
fn serde_rename(line: &str) -> Option<String> {
    let line = line.trim();
    if !line.starts_with("#[serde(") {
        return None;
    }
    let (_, after) = line.split_once("rename = \"")?;
    let (name, _) = after.split_once('"')?;
    Some(name.to_owned())
}

/// The settings a flow writes for every `*Settings` struct in `source`: each field's name, or
/// its `#[serde(rename = "…")]`.
fn settings_fields(source: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut lines = source.lines();
    let mut attributes: Vec<&str> = Vec::new();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[") {
            attributes.push(trimmed);
            continue;
        }
        let struct_attributes = std::mem::take(&mut attributes);
        if !struct_name(line).is_some_and(|name| name.ends_with("Settings")) {
            continue;
        }
        assert!(
            struct_attributes.iter().all(|a| !a.contains("rename_all")),
            "a settings struct with `rename_all` is not understood by this test: {line}"
        );
        let mut rename = None;
        for body_line in lines.by_ref() {
            let body = body_line.trim();
            if body.starts_with('}') {
                break;
            }
            if body.starts_with("//") || body.is_empty() {
                continue;
            }
            if body.starts_with("#[") {
                if let Some(name) = serde_rename(body) {
                    rename = Some(name);
                }
                continue;
            }
            if let Some(name) = field_name(body) {
                fields.push(rename.take().unwrap_or(name));
            }
        }
    }
    fields
}

#[test]
fn the_scan_reads_fields_and_renames() {
    let source = r#"
/// Not this one.
struct Other { skipped: u8 }

/// The settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DemoSettings {
    /// A doc line: with a colon.
    pub(crate) path: Tpl<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(rename = "type")]
    pub spooler_type: Option<Format>,
    /// Last.
    pub(super) r#async: bool,
}
"#;
    assert_eq!(settings_fields(source), ["path", "mode", "type", "async"]);
}

#[test]
fn every_setting_of_every_kind_is_documented() {
    let mut missing = Vec::new();
    for (kind, dir) in kind_dirs() {
        let fields = settings_fields(&settings_source(&dir));
        assert!(
            !fields.is_empty(),
            "no settings struct (`…Settings`) found for the `{kind}` kind in {}",
            dir.display()
        );
        let Some(text) = page(&kind) else {
            missing.push(format!("docs/step-kinds/{kind}.md is missing"));
            continue;
        };
        for field in fields {
            if !text.contains(&format!("`{field}`")) {
                missing.push(format!(
                    "docs/step-kinds/{kind}.md does not mention the setting `{field}`"
                ));
            }
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn every_registered_kind_has_a_page_and_an_index_entry() {
    let mut registry = Registry::new();
    octoflow_steps::register_builtin(&mut registry);
    let index = fs::read_to_string(pages_dir().join("README.md"))
        .expect("docs/step-kinds/README.md exists");
    let mut missing = Vec::new();
    let names: BTreeSet<&str> = registry.names().collect();
    assert!(!names.is_empty(), "no kind is registered");
    for kind in names {
        if page(kind).is_none() {
            missing.push(format!("docs/step-kinds/{kind}.md is missing"));
        }
        if !index.contains(&format!("({kind}.md)")) {
            missing.push(format!(
                "docs/step-kinds/README.md does not link to {kind}.md"
            ));
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}
