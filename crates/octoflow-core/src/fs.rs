//! Confined paths: the only way to get a [`SafePath`] is [`FilesRoot::resolve`], so no step
//! can touch a file outside the data directory and the configured roots.

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// The directories steps may touch: the data directory and `files.roots` of config.
#[derive(Debug, Clone)]
pub struct FilesRoot {
    data_dir: PathBuf,
    roots: Vec<PathBuf>,
    allow_absolute: bool,
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
        })
    }

    /// The data directory (relative paths start here).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
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
        if (given.is_absolute() && self.allow_absolute) || self.allows(&real) {
            Ok(SafePath(real))
        } else {
            Err(PathError::Outside {
                path: user_path.to_owned(),
            })
        }
    }

    fn allows(&self, real: &Path) -> bool {
        real.starts_with(&self.data_dir) || self.roots.iter().any(|r| real.starts_with(r))
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
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
