//! Confined paths: the only way to get a [`SafePath`] is [`FilesRoot::resolve`], so no step
//! can touch a file outside the data directory and the configured roots — nor, inside the
//! data directory, octoflow's own files or another run's workspace.

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Where run workspaces are, inside the data directory.
const RUNS_DIR: &str = "runs";

/// The directories steps may touch: the data directory and `files.roots` of config — except,
/// unless a root names them, octoflow's own files ([`protect`](Self::protect)) and the
/// workspaces of other runs than the step's own and its parents' ([`for_run`](Self::for_run)).
#[derive(Debug, Clone)]
pub struct FilesRoot {
    data_dir: PathBuf,
    roots: Vec<PathBuf>,
    allow_absolute: bool,
    /// octoflow's own files and directories.
    protected: Arc<Vec<PathBuf>>,
    /// The run workspaces this view may touch, as written (their links are followed when a
    /// path is checked).
    workspaces: Arc<Vec<PathBuf>>,
}

/// A path that was checked to lie inside a [`FilesRoot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath(PathBuf);

impl SafePath {
    /// The checked path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for SafePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The path leaves the allowed directories.
    #[error("path `{path}` is outside the data directory and the allowed roots")]
    Outside {
        /// The path as given.
        path: String,
    },
    /// The path is one of octoflow's own files (the secrets, the config, the store, the
    /// flows, the templates, the node records).
    #[error(
        "path `{path}` is one of octoflow's own files; list it in `files.roots` of config to let steps use it"
    )]
    Reserved {
        /// The path as given.
        path: String,
    },
    /// The path is in the workspace of another run.
    #[error(
        "path `{path}` is in another run's workspace; list it in `files.roots` of config to let steps use it"
    )]
    OtherRun {
        /// The path as given.
        path: String,
    },
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// A directory on the way could not be read.
    #[error("cannot resolve path `{path}`")]
    Io {
        /// The path as given.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FilesRoot {
    /// Confines paths to `data_dir` and `roots` (both made absolute, symlinks resolved).
    /// With `allow_absolute`, absolute paths may point anywhere.
    pub fn new(data_dir: &Path, roots: &[PathBuf], allow_absolute: bool) -> io::Result<Self> {
        let data_dir = std::fs::canonicalize(data_dir)?;
        let roots = roots
            .iter()
            .map(|r| std::fs::canonicalize(data_dir.join(r)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            data_dir,
            roots,
            allow_absolute,
            protected: Arc::default(),
            workspaces: Arc::default(),
        })
    }

    /// Refuses `paths` (files or directories; relative ones in the data directory) to steps,
    /// unless a root of `files.roots` holds them: octoflow's own files.
    #[must_use]
    pub fn protect(mut self, paths: impl IntoIterator<Item = PathBuf>) -> Self {
        let protected = Arc::make_mut(&mut self.protected);
        for path in paths {
            let lexical = normalize(&self.data_dir.join(path));
            protected.push(resolve_links(&lexical).unwrap_or(lexical));
        }
        self
    }

    /// The view of a run whose workspace is `workdir`: it may also touch that workspace (and
    /// those this view already may: a child run reads its parent's files). Nothing is read
    /// from the disk here — every run makes one; the workspace's links are followed when a
    /// path is checked against it.
    #[must_use]
    pub fn for_run(&self, workdir: &Path) -> Self {
        let mut view = self.clone();
        let lexical = normalize(&self.data_dir.join(workdir));
        Arc::make_mut(&mut view.workspaces).push(lexical);
        view
    }

    /// The data directory (relative paths start here).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The workspace of run `id`: `runs/<id>` in the data directory.
    pub fn run_dir(&self, id: &crate::store::RunId) -> PathBuf {
        self.data_dir.join(RUNS_DIR).join(id.to_string())
    }

    /// Resolves a path given by a flow: relative to the data directory, `..` and symlinks
    /// followed, and refused when the result is outside the allowed directories.
    pub fn resolve(&self, user_path: &str) -> Result<SafePath, PathError> {
        if user_path.trim().is_empty() {
            return Err(PathError::Empty);
        }
        let given = Path::new(user_path);
        let joined = self.data_dir.join(given);
        let lexical = normalize(&joined);
        let real = resolve_links(&lexical).map_err(|source| PathError::Io {
            path: user_path.to_owned(),
            source,
        })?;
        let path = user_path.to_owned();
        if self.roots.iter().any(|r| real.starts_with(r)) {
            return Ok(SafePath(real));
        }
        if self.protected.iter().any(|p| real.starts_with(p)) {
            return Err(PathError::Reserved { path });
        }
        let runs = self.data_dir.join(RUNS_DIR);
        let in_workspace = |w: &PathBuf| {
            real.starts_with(w) || resolve_links(w).is_ok_and(|w| real.starts_with(w))
        };
        if real.starts_with(&runs) && !self.workspaces.iter().any(in_workspace) {
            return Err(PathError::OtherRun { path });
        }
        if (given.is_absolute() && self.allow_absolute) || real.starts_with(&self.data_dir) {
            Ok(SafePath(real))
        } else {
            Err(PathError::Outside { path })
        }
    }
}

/// Removes `.` and folds `..` without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Follows symlinks: the longest existing ancestor is canonicalised, the rest appended.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(real) => {
                let mut real = real;
                for part in rest.iter().rev() {
                    real.push(part);
                }
                return Ok(real);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(ToOwned::to_owned) else {
                    return Err(e);
                };
                rest.push(name);
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes a file atomically: a temporary file beside it, then a rename. A replaced file keeps
/// its permissions; a new one is readable by all (0644), as `open` with the usual umask gives.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    written_beside(path, bytes)?
        .persist(path)
        .map_err(|e| e.error)?;
    Ok(())
}

/// Writes a file atomically unless it exists: whole or not at all, and never over another
/// writer's file. Returns false when the file was there.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    match written_beside(path, bytes)?.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// `bytes` in a synced temporary file in `path`'s directory (made when missing), with the
/// permissions of the file at `path`, or 0644.
fn written_beside(path: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;

    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".octoflow-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    let permissions = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions(),
        Err(_) => std::fs::Permissions::from_mode(0o644),
    };
    tmp.as_file().set_permissions(permissions)?;
    tmp.as_file().sync_data()?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, FilesRoot) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let root = FilesRoot::new(&dir.path().join("data"), &[], false).unwrap();
        (dir, root)
    }

    #[test]
    fn relative_paths_land_in_the_data_dir() {
        let (_dir, root) = root();
        let p = root.resolve("out/a.json").unwrap();
        assert!(p.as_path().starts_with(root.data_dir()));
        assert!(root.resolve("a/../b.txt").is_ok());
    }

    #[test]
    fn escapes_are_refused() {
        let (dir, root) = root();
        assert!(matches!(
            root.resolve("../secret"),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            root.resolve("/etc/passwd"),
            Err(PathError::Outside { .. })
        ));
        std::os::unix::fs::symlink(dir.path(), root.data_dir().join("link")).unwrap();
        assert!(matches!(
            root.resolve("link/x"),
            Err(PathError::Outside { .. })
        ));
    }

    #[test]
    fn own_files_and_other_runs_are_refused_unless_a_root_names_them() {
        let (_dir, root) = root();
        let data = root.data_dir().to_owned();
        std::fs::write(data.join("secrets.yml"), "[]").unwrap();
        std::fs::create_dir_all(data.join("flows")).unwrap();
        std::fs::create_dir_all(data.join("runs/a/out")).unwrap();
        std::fs::create_dir_all(data.join("runs/b")).unwrap();
        let root = root
            .protect([
                "secrets.yml".into(),
                "flows".into(),
                "octoflow.db-wal".into(),
            ])
            .for_run(&data.join("runs/a"));
        for reserved in [
            "secrets.yml",
            "flows/x.yml",
            "out/../secrets.yml",
            "octoflow.db-wal",
        ] {
            assert!(
                matches!(root.resolve(reserved), Err(PathError::Reserved { .. })),
                "{reserved}"
            );
        }
        assert!(matches!(
            root.resolve("runs/b/x"),
            Err(PathError::OtherRun { .. })
        ));
        assert!(matches!(
            root.resolve("runs"),
            Err(PathError::OtherRun { .. })
        ));
        assert!(root.resolve("runs/a/out/x").is_ok(), "its own workspace");
        assert!(root.resolve("out/x").is_ok());
        // A child run also reads its parent's workspace.
        let child = root.for_run(&data.join("runs/c"));
        assert!(child.resolve("runs/a/out/x").is_ok());
        assert!(child.resolve("runs/c/y").is_ok());
        // A root that names them lets steps use them.
        let open = FilesRoot::new(&data, &["flows".into(), "runs".into()], false)
            .unwrap()
            .protect(["flows".into()]);
        assert!(open.resolve("flows/x.yml").is_ok());
        assert!(open.resolve("runs/b/x").is_ok());
    }

    #[test]
    fn atomic_write_replaces() {
        let (_dir, root) = root();
        let p = root.resolve("x/y.txt").unwrap();
        write_atomic(p.as_path(), b"one").unwrap();
        write_atomic(p.as_path(), b"two").unwrap();
        assert_eq!(std::fs::read_to_string(p.as_path()).unwrap(), "two");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(p.as_path()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
    }
}
