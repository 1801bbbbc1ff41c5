//! This process as a node (`<hostname>:<pid>`), and whether the node recorded on a run is
//! still alive — so a run left `running` by a killed `octoflow run` is found at the next
//! start, while a run of another live process is left alone.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The node this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    host: String,
    pid: u32,
}

impl Node {
    /// This process.
    pub(crate) fn current() -> Result<Self> {
        let host = nix::unistd::gethostname()
            .context("cannot read this machine's host name")?
            .to_string_lossy()
            .into_owned();
        Ok(Self {
            host,
            pid: std::process::id(),
        })
    }

    /// The node's id as recorded on runs: `<hostname>:<pid>`.
    pub(crate) fn id(&self) -> String {
        format!("{}:{}", self.host, self.pid)
    }

    /// Whether the node that recorded a run may still be running it.
    ///
    /// Only a process on this host can be checked: it is alive when its pid exists (`kill`
    /// with no signal succeeds, or is refused for permission). A node on another host, or an
    /// id this binary did not write, counts as alive: its runs are not ours to end. A node
    /// with this process's own id is a predecessor whose pid was reused (containers restart
    /// at the same pid), since this process has not run anything yet.
    pub(crate) fn is_alive(&self, node: &str) -> bool {
        let Some((host, pid)) = node.rsplit_once(':') else {
            return true;
        };
        if host != self.host {
            return true;
        }
        let Ok(pid) = pid.parse::<i32>() else {
            return true;
        };
        if pid <= 0 {
            return true;
        }
        if u32::try_from(pid).is_ok_and(|p| p == self.pid) {
            return false;
        }
        match kill(Pid::from_raw(pid), None) {
            Ok(()) | Err(Errno::EPERM) => true,
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_by_pid_on_this_host() {
        let me = Node::current().unwrap();
        let host = &me.host;
        assert!(me.id().starts_with(&format!("{host}:")));
        // A predecessor with our own pid is gone; pid 1 always exists.
        assert!(!me.is_alive(&me.id()));
        assert!(me.is_alive(&format!("{host}:1")));
        // Beyond the largest pid Linux hands out (2^22).
        assert!(!me.is_alive(&format!("{host}:4194305")));
        // Other hosts and foreign ids are not ours to judge.
        assert!(me.is_alive("elsewhere:4194305"));
        assert!(me.is_alive("local"));
        assert!(me.is_alive(&format!("{host}:x")));
    }
}
