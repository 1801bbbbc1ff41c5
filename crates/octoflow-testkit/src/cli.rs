//! Drives the real `octoflow` binary in a temporary working directory, the way a person
//! would, and asserts on what it printed and how it exited (ripgrep's and just's test
//! builders).
//!
//! ```ignore
//! Octo::new(env!("CARGO_BIN_EXE_octoflow"))
//!     .flow("hello", "steps: [{name: a, set_fact: {value: 1}}]")
//!     .args(["run", "hello"])
//!     .run()
//!     .success()
//!     .stderr_contains("step a succeeded");
//! ```
//!
//! The working directory is a fresh temporary directory; the data directory is `data/` in
//! it (the binary's default), so paths in output are short and stable: `data/flows/x.yml`.
//! The child gets a clean environment: only `PATH`, `HOME` and what [`Octo::env`] adds.
#![allow(clippy::disallowed_methods)] // test code: spawns the binary and waits on it

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one command may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A command line to run in a temporary working directory. Cloning shares the directory,
/// so one setup can run several commands.
#[derive(Debug, Clone)]
pub struct Octo {
    bin: PathBuf,
    dir: Arc<tempfile::TempDir>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<String>,
}

impl Octo {
    /// A command of the binary at `bin` (`env!("CARGO_BIN_EXE_octoflow")`), in a fresh
    /// working directory that holds an empty `data/flows/`.
    ///
    /// # Panics
    /// If the temporary directory cannot be made.
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        let dir = tempfile::tempdir().expect("temporary working directory");
        std::fs::create_dir_all(dir.path().join("data/flows")).expect("data/flows");
        Self {
            bin: bin.into(),
            dir: Arc::new(dir),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    /// The working directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the working directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The data directory, `data/` in the working directory.
    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// Writes `data/flows/<name>.yml`.
    #[must_use]
    pub fn flow(self, name: &str, yaml: &str) -> Self {
        self.file(&format!("data/flows/{name}.yml"), yaml)
    }

    /// Writes a file, relative to the working directory (`data/templates/a.j2`, `in.json`).
    ///
    /// # Panics
    /// If the file cannot be written.
    #[must_use]
    pub fn file(self, rel: &str, contents: &str) -> Self {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent directory");
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the child.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Gives the child this standard input (else it gets none).
    #[must_use]
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_owned());
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env_clear();
        // Commands run by flows need a PATH; nothing else of the runner's leaks in.
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts the command with piped output, for tests that signal or kill it. The working
    /// directory lives as long as the returned process handle.
    ///
    /// # Panics
    /// If the binary cannot be started.
    pub fn spawn(&self) -> Spawned {
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        Spawned {
            child,
            command: self.describe(),
            _dir: self.dir.clone(),
        }
    }

    /// Runs the command to its end.
    ///
    /// # Panics
    /// If it cannot be started, or runs longer than two minutes.
    pub fn run(&self) -> Output {
        let mut child = self
            .command()
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        if let (Some(text), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(text.as_bytes());
            });
        }
        let output = Output::wait(child, TIMEOUT);
        output.with_command(self.describe())
    }

    fn describe(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        format!("octoflow {}", args.join(" "))
    }
}

/// A started command; derefs to its [`Child`]. It keeps the working directory alive.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    command: String,
    _dir: Arc<tempfile::TempDir>,
}

impl Spawned {
    /// Waits for the end, collecting what is left of its output.
    ///
    /// # Panics
    /// If it does not end within `timeout` (it is killed first).
    pub fn wait(self, timeout: Duration) -> Output {
        Output::wait(self.child, timeout).with_command(self.command)
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// How a command ended and what it printed.
#[derive(Debug, Clone)]
pub struct Output {
    command: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    /// Waits for a started command (see [`Octo::spawn`]), collecting its output.
    ///
    /// # Panics
    /// If it does not end within `timeout` (it is killed first).
    pub fn wait(mut child: Child, timeout: Duration) -> Self {
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for octoflow") {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("octoflow ran longer than {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let collect = |h: Option<std::thread::JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        Self {
            command: "octoflow".to_owned(),
            status,
            stdout: collect(out),
            stderr: collect(err),
        }
    }

    fn with_command(mut self, command: String) -> Self {
        self.command = command;
        self
    }

    /// What it printed on stdout.
    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    /// What it printed on stderr.
    pub fn stderr(&self) -> &str {
        &self.stderr
    }

    /// Its exit code (`None` when a signal ended it).
    pub fn exit_code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(&self) -> &Self {
        self.code(0)
    }

    /// Asserts exit code 1: the thing asked about failed (a run, a validation).
    #[track_caller]
    pub fn failure(&self) -> &Self {
        self.code(1)
    }

    /// Asserts an exit code.
    ///
    /// # Panics
    /// If the code differs; the message shows both outputs.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert!(
            self.status.code() == Some(code),
            "`{}` exited with {:?}, expected {code}\n{}",
            self.command,
            self.status.code(),
            self.shown()
        );
        self
    }

    /// Asserts stdout contains `text`.
    ///
    /// # Panics
    /// If it does not.
    #[track_caller]
    pub fn stdout_contains(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n{}",
            self.shown()
        );
        self
    }

    /// Asserts stderr contains `text`.
    ///
    /// # Panics
    /// If it does not.
    #[track_caller]
    pub fn stderr_contains(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n{}",
            self.shown()
        );
        self
    }

    /// Asserts stdout is exactly `text`.
    ///
    /// # Panics
    /// If it is not.
    #[track_caller]
    pub fn stdout_is(&self, text: &str) -> &Self {
        assert!(
            self.stdout == text,
            "stdout is not {text:?}\n{}",
            self.shown()
        );
        self
    }

    /// Parses stdout as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", self.shown()))
    }

    fn shown(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.stdout, self.stderr
        )
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
