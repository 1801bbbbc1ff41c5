//! Running one process in its own process group: start it, wait for it, its timeout or the
//! cancel, and stop the whole group so that no process outlives the step — not even when the
//! step's future is dropped mid-run, nor when the node itself is killed: the process dies
//! with the node ([`die_with_node`]), and the group is recorded for the next start on the
//! host to kill what the process left in it ([`ProcessGroups`]).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use octoflow_core::flow::format_duration;
use octoflow_core::process_groups::{GroupRecord, ProcessGroups};
use octoflow_core::secrets::Redactor;
use octoflow_core::step::{StepError, StepLog};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::output::{Captured, Readers};

/// At most this long between SIGTERM and SIGKILL for processes the command left behind
/// in its group after it exited by itself.
const LEFTOVER_GRACE: Duration = Duration::from_millis(500);

/// How long reading may go on once the whole group is gone: only a process that left the
/// group (`setsid`) can still hold the pipes open then.
const DRAIN: Duration = Duration::from_secs(5);

/// How long the output pipes may take to close after the process exited, when it left
/// nothing running.
const PIPES_CLOSE: Duration = Duration::from_millis(20);

/// One process to run, every setting rendered.
#[derive(Debug)]
pub(crate) struct Invocation {
    /// The program: a path, or a name looked up in `PATH`.
    pub(crate) program: String,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// Its working directory, already confined.
    pub(crate) cwd: PathBuf,
    /// Its whole environment.
    pub(crate) env: BTreeMap<String, String>,
    /// What to write to its standard input, if anything.
    pub(crate) stdin: Option<Vec<u8>>,
    /// The kind's own time limit.
    pub(crate) timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub(crate) kill_grace: Duration,
}

/// A process that ended by itself, with what it wrote.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it ended.
    pub(crate) status: ExitStatus,
    /// From start to exit.
    pub(crate) duration: Duration,
    /// Its standard output.
    pub(crate) stdout: Captured,
    /// Its standard error.
    pub(crate) stderr: Captured,
}

/// Runs the process to its end, streaming its output to `log`. On `cancel` or the timeout
/// the whole process group is stopped and the error says which.
pub(crate) async fn run(
    inv: Invocation,
    log: &StepLog,
    redactor: &Redactor,
    cancel: &CancellationToken,
    groups: &ProcessGroups,
) -> Result<Finished, StepError> {
    if cancel.is_cancelled() {
        return Err(StepError::Cancelled);
    }
    let mut command = Command::new(&inv.program);
    command
        .args(&inv.args)
        .current_dir(&inv.cwd)
        .env_clear()
        .envs(&inv.env)
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    die_with_node(&mut command);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| cannot_start(&inv.program, &e))?;
    let mut group = Group::of(&child, groups)?;

    let mut readers = Readers::start(child.stdout.take(), child.stderr.take(), log, redactor);
    // Aborted when dropped, like the readers: nothing the step started outlives it.
    let mut writer = JoinSet::new();
    if let (Some(bytes), Some(mut pipe)) = (inv.stdin, child.stdin.take()) {
        // A process that exits without reading its input closes the pipe: not an error.
        writer.spawn(async move {
            let _ = pipe.write_all(&bytes).await;
            let _ = pipe.shutdown().await;
        });
    }

    let deadline = async {
        match inv.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let stopped = tokio::select! {
        status = child.wait() => Ok(status),
        () = cancel.cancelled() => Err(StepError::Cancelled),
        () = &mut deadline => Err(StepError::TimedOut(inv.timeout.unwrap_or_default())),
    };
    match stopped {
        Ok(status) => {
            let status = status.map_err(|e| StepError::Internal(Box::new(e)))?;
            let duration = started.elapsed();
            stop_leftovers(&mut group, &mut readers, inv.kill_grace, log).await;
            let (stdout, stderr) = readers.drain(DRAIN, log).await;
            Ok(Finished {
                status,
                duration,
                stdout,
                stderr,
            })
        }
        Err(err) => {
            log.note(format!(
                "{}; stopping the process group.",
                capitalised(&err.to_string())
            ))
            .await;
            terminate(&mut child, &mut group, &mut readers, inv.kill_grace, log).await;
            readers.drain(DRAIN, log).await;
            Err(err)
        }
    }
}

/// A program that cannot be started: not found and not allowed are for good; anything else
/// (too many processes, …) may pass on another attempt.
fn cannot_start(program: &str, err: &io::Error) -> StepError {
    let message = format!("cannot start `{program}`: {err}");
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::InvalidInput => {
            StepError::fatal(message)
        }
        _ => StepError::failed(message),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// SIGTERM to the group, up to `grace` for the process to exit, then SIGKILL to the group.
async fn terminate(
    child: &mut Child,
    group: &mut Group,
    readers: &mut Readers,
    grace: Duration,
    log: &StepLog,
) {
    group.signal(Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let grace = format_duration(grace);
        log.note(format!(
            "The process did not stop within {grace} of SIGTERM; sending SIGKILL."
        ))
        .await;
    } else if tokio::time::timeout(PIPES_CLOSE, readers.finished())
        .await
        .is_ok()
    {
        // Reaped, and nothing of its group holds the pipes: the group is gone, and its id
        // may already be another's (see `stop_leftovers`).
        group.disarm();
        return;
    }
    group.kill();
    // Reaps the process; SIGKILL cannot be ignored.
    let _ = child.wait().await;
}

/// After the process exited by itself: stops what it left running in its group (a `cmd &`),
/// which might otherwise hold the output pipes open forever.
///
/// The leader was reaped, so its id is free: once its group is empty too, the id may name
/// another process's group, which must never be signalled. What a command leaves running
/// holds the pipes it inherited; pipes that close at once mean nothing is left, and the group
/// is not signalled at all. Open pipes mean processes of the group are left, which keep its
/// id from being reused.
async fn stop_leftovers(group: &mut Group, readers: &mut Readers, grace: Duration, log: &StepLog) {
    if tokio::time::timeout(PIPES_CLOSE, readers.finished())
        .await
        .is_ok()
        || !group.signal(Signal::SIGTERM)
    {
        group.disarm();
        return;
    }
    log.note("The command exited but left processes running in its group; stopping them.")
        .await;
    let deadline = tokio::time::sleep(grace.min(LEFTOVER_GRACE));
    tokio::pin!(deadline);
    tokio::select! {
        () = &mut deadline => {}
        () = readers.finished() => {
            // The pipes closed: most likely every process is gone. One look, no polling.
            if !group.alive() {
                group.disarm();
                return;
            }
            deadline.await;
        }
    }
    group.kill();
}

/// Makes the started process die (SIGKILL) when the thread that starts it — a thread of the
/// node's async runtime, which lives as long as the node — ends, so a command never goes on
/// after its node was killed; a node that died between the fork and this call is noticed
/// too, and the process does not start.
///
/// The one `unsafe` block of octoflow (ARCHITECTURE.md says why): `pre_exec` runs in the
/// child between fork and exec.
#[allow(unsafe_code)]
fn die_with_node(command: &mut Command) {
    let node = nix::unistd::getpid();
    // SAFETY: the closure only makes two system calls (`prctl`, `getppid`), both
    // async-signal-safe, and allocates nothing (an `Errno` becomes an `io::Error` without
    // allocating), as code between fork and exec must.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() == node {
                Ok(())
            } else {
                Err(Errno::ESRCH.into())
            }
        });
    }
}

/// The process group of a started process. Dropped while armed, it SIGKILLs the group: the
/// step's future was dropped mid-run.
#[derive(Debug)]
struct Group {
    pgid: Pid,
    armed: bool,
    /// The group's record for the node's recovery; it goes with the group.
    _record: GroupRecord,
}

impl Group {
    /// The group the child leads (it was started with `process_group(0)`), recorded.
    fn of(child: &Child, groups: &ProcessGroups) -> Result<Self, StepError> {
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| StepError::Internal("the started process has no process id".into()))?;
        Ok(Self {
            pgid: Pid::from_raw(pid),
            armed: true,
            _record: groups.record(pid),
        })
    }

    /// Sends `signal` to every process of the group; false when the group is empty.
    fn signal(&self, signal: Signal) -> bool {
        send(self.pgid, Some(signal))
    }

    /// Whether any process is left in the group.
    fn alive(&self) -> bool {
        send(self.pgid, None)
    }

    /// SIGKILL to the whole group; the guard's work is then done.
    fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.disarm();
    }

    /// The group is known to be gone: dropping must not signal a group id that may be reused.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            send(self.pgid, Some(Signal::SIGKILL));
        }
    }
}

/// `killpg`; false only when no process is in the group.
fn send(pgid: Pid, signal: Option<Signal>) -> bool {
    match killpg(pgid, signal) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(error) => {
            tracing::warn!(pgid = pgid.as_raw(), %error, "Cannot signal a process group.");
            true
        }
    }
}
