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

    #[test]
    fn records_come_and_go_and_dead_nodes_groups_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let groups = ProcessGroups::new(dir.path(), "host:1:dead");
        // A real group left behind: `sleep` leading its own group.
        #[allow(clippy::disallowed_methods)] // a test's own process, not a step's
        let mut child = std::process::Command::new("sleep");
        std::os::unix::process::CommandExt::process_group(&mut child, 0);
        let mut child = child.arg("30").spawn().unwrap();
        let pgid = i32::try_from(child.id()).unwrap();
        let record = groups.record(pgid);
        let file = dir.path().join(format!("nodes/host:1:dead/groups/{pgid}"));
        assert!(file.exists());

        let alive_node = ProcessGroups::new(dir.path(), "host:2:alive");
        let kept = alive_node.record(999_999);
        assert_eq!(kill_left_behind(dir.path(), |n| n.ends_with("alive")), 1);
        assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(!dir.path().join("nodes/host:1:dead").exists());
        assert!(dir.path().join("nodes/host:2:alive/groups/999999").exists());
        drop(record);
        drop(kept);
        assert!(!dir.path().join("nodes/host:2:alive/groups/999999").exists());
    }
}
