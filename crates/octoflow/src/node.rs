//! This process as a node (`<hostname>:<pid>:<nonce>`), and whether the node recorded on a
//! run is still alive — so a run left `running` by a killed `octoflow run` or `serve` is
//! found at the next start, while a run of another live process is left alone.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The node this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    host: String,
    pid: u32,
    /// Random for each start of the process: a later process that gets the same pid (a
    /// container restarted) is another node.
    nonce: String,
}

impl Node {
    /// This process.
    pub(crate) fn current() -> Result<Self> {
        let host = nix::unistd::gethostname()
            .context("cannot read this machine's host name")?
            .to_string_lossy()
            .into_owned();
        let mut nonce = uuid::Uuid::new_v4().simple().to_string();
        nonce.truncate(8);
        Ok(Self {
            host,
            pid: std::process::id(),
            nonce,
        })
    }

    /// The node's id as recorded on runs: `<hostname>:<pid>:<nonce>`.
    pub(crate) fn id(&self) -> String {
        format!("{}:{}:{}", self.host, self.pid, self.nonce)
    }

    /// Whether the node that recorded a run may still be running it.
    ///
    /// Only a process on this host can be checked: it is alive when its pid exists (`kill`
    /// with no signal succeeds, or is refused for permission). A node on another host, or an
    /// id this binary did not write, counts as alive: its runs are not ours to end (their
    /// leases end them). A node with this process's pid and another nonce (or none, as ids
    /// of earlier builds, `<hostname>:<pid>`) is a predecessor whose pid was reused.
    pub(crate) fn is_alive(&self, node: &str) -> bool {
        let mut parts = node.splitn(3, ':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return true;
        };
        let nonce = parts.next();
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
            return nonce == Some(self.nonce.as_str());
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
    fn liveness_by_pid_and_nonce_on_this_host() {
        let me = Node::current().unwrap();
        let host = &me.host;
        let pid = me.pid;
        assert!(me.id().starts_with(&format!("{host}:{pid}:")));
        assert!(me.is_alive(&me.id()), "this process");
        // A predecessor with our own pid (another nonce, or an id without one) is gone.
        assert!(!me.is_alive(&format!("{host}:{pid}:00000000")));
        assert!(!me.is_alive(&format!("{host}:{pid}")));
        // pid 1 always exists.
        assert!(me.is_alive(&format!("{host}:1:abcdef01")));
        assert!(me.is_alive(&format!("{host}:1")));
        // Beyond the largest pid Linux hands out (2^22).
        assert!(!me.is_alive(&format!("{host}:4194305:abcdef01")));
        // Other hosts and foreign ids are not ours to judge.
        assert!(me.is_alive("elsewhere:4194305:abcdef01"));
        assert!(me.is_alive("local"));
        assert!(me.is_alive(&format!("{host}:x")));
    }
}
