//! The process groups a node's steps lead, written down so that nothing a dead node started
//! goes on running (SPEC §9): each group a step starts is a file
//! `nodes/<node>/groups/<pgid>` in the data directory, removed when the group is gone. When a
//! node dies, the next start on the host kills every group its files name — before its runs
//! are re-queued or ended — so a retried run never races a command of the run it retries.
//!
//! (The leader of each group also dies with its node at once: the `exec` kind sets it to be
//! killed when its parent dies. This finds what the leader left in its group.)

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The directory of node records inside the data directory.
pub const NODES_DIR: &str = "nodes";

/// Where one node records the process groups its steps lead; a no-op without a directory
/// (library use).
#[derive(Debug, Clone, Default)]
pub struct ProcessGroups {
    dir: Option<PathBuf>,
}

impl ProcessGroups {
    /// The records of `node` in `data_dir`.
    pub fn new(data_dir: &Path, node: &str) -> Self {
        Self {
            dir: Some(node_dir(data_dir, node).join("groups")),
        }
    }

    /// Records that a step leads the process group `pgid`, until the returned guard drops.
    /// A record that cannot be written is logged: the group still dies with its leader.
    pub fn record(&self, pgid: i32) -> GroupRecord {
        let Some(dir) = &self.dir else {
            return GroupRecord { path: None };
        };
        let path = dir.join(pgid.to_string());
        let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, b""));
        match written {
            Ok(()) => GroupRecord { path: Some(path) },
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "Cannot record a step's process group.");
                GroupRecord { path: None }
            }
        }
    }
}

/// A recorded process group; the record goes when this drops (the group is gone).
#[derive(Debug)]
pub struct GroupRecord {
    path: Option<PathBuf>,
}

impl Drop for GroupRecord {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Kills every process group that the nodes `is_alive` says are dead left behind on this
/// host, and forgets those nodes' records; returns how many groups still had processes.
/// Blocking: call it at start-up, before runs are handed back.
pub fn kill_left_behind(data_dir: &Path, is_alive: impl Fn(&str) -> bool) -> usize {
    let Ok(nodes) = std::fs::read_dir(data_dir.join(NODES_DIR)) else {
        return 0;
    };
    let mut killed = 0;
    for entry in nodes.flatten() {
        let node = entry.file_name().to_string_lossy().into_owned();
        if is_alive(&node) {
            continue;
        }
        let groups = entry.path().join("groups");
        for group in std::fs::read_dir(&groups).into_iter().flatten().flatten() {
            let Some(pgid) = group
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|&p| p > 1)
            else {
                continue;
            };
            // The group's leader died with its node (the `exec` kind sees to it). A live
            // process of that id is another's, leading a group that reused the id: only a
            // group without its leader is what the dead node's step left.
            if Path::new("/proc").join(pgid.to_string()).exists() {
                continue;
            }
            match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
                Ok(()) => {
                    tracing::warn!(node = %node, pgid, "Killed a process group a dead node left running.");
                    killed += 1;
                }
                Err(Errno::ESRCH) => {}
                Err(error) => {
                    tracing::warn!(node = %node, pgid, error = %error, "Cannot kill a process group a dead node left.");
                }
            }
        }
        if let Err(error) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(node = %node, error = %error, "Cannot remove a dead node's records.");
        }
    }
    killed
}

/// The records of `node`: `nodes/<node>` (a `/` in the name becomes `_`).
fn node_dir(data_dir: &Path, node: &str) -> PathBuf {
    data_dir.join(NODES_DIR).join(node.replace('/', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process group of its own: `sh` starts `sleep` in the background and, with
    /// `exit_leader`, exits (reaped here) so the group has no leader left.
    fn group(exit_leader: bool) -> (std::process::Child, i32) {
        let script = if exit_leader {
            "sleep 30 & exit 0"
        } else {
            "sleep 30"
        };
        #[allow(clippy::disallowed_methods)] // a test's own process, not a step's
        let mut command = std::process::Command::new("sh");
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.args(["-c", script]).spawn().unwrap();
        let pgid = i32::try_from(child.id()).unwrap();
        if exit_leader {
            child.wait().unwrap();
        }
        (child, pgid)
    }

    fn has_processes(pgid: i32) -> bool {
        killpg(Pid::from_raw(pgid), None).is_ok()
    }

    #[test]
    fn records_come_and_go_and_dead_nodes_groups_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let dead = ProcessGroups::new(dir.path(), "host:1:dead");
        // What a dead node's step left: a group whose leader died with the node.
        let (_, left) = group(true);
        let left_record = dead.record(left);
        // A group whose leader lives: its id was reused by another process, not ours.
        let (mut other, reused) = group(false);
        let reused_record = dead.record(reused);
        assert!(
            dir.path()
                .join(format!("nodes/host:1:dead/groups/{left}"))
                .exists()
        );

        let alive_node = ProcessGroups::new(dir.path(), "host:2:alive");
        let kept = alive_node.record(999_999);
        std::mem::forget((left_record, reused_record)); // the node died: its records stay
        assert_eq!(kill_left_behind(dir.path(), |n| n.ends_with("alive")), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while has_processes(left) {
            assert!(
                std::time::Instant::now() < deadline,
                "the left group lives on"
            );
            std::thread::yield_now();
        }
        assert!(has_processes(reused), "another's group is left alone");
        assert!(!dir.path().join("nodes/host:1:dead").exists());
        assert!(dir.path().join("nodes/host:2:alive/groups/999999").exists());
        drop(kept);
        assert!(!dir.path().join("nodes/host:2:alive/groups/999999").exists());
        killpg(Pid::from_raw(reused), Signal::SIGKILL).unwrap();
        other.wait().unwrap();
    }
}
