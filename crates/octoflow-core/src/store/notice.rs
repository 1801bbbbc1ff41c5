//! Notices between the nodes of one store: a node following a run that another node runs
//! (a `?follow=true` log stream, a webhook waiting with `wait: true`) says so, and the node
//! running it then tells of each change and of the end; a cancel reaches the node running
//! the run at once. They make remote views live; they carry no state — whoever misses one
//! still reads the store, as it would without them.

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{RunId, StoreError};

/// One notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A node follows the run: the node running it should tell of its changes and its end.
    Follow(RunId),
    /// The run changed (log lines, status).
    Changed(RunId),
    /// The run ended.
    Ended(RunId),
    /// A cancel of the run was recorded: the node running it stops it.
    Cancel(RunId),
}

impl Notice {
    /// The notice as text (`follow:<run id>`, …), as a store carries it.
    pub fn encode(&self) -> String {
        let (word, id) = match self {
            Self::Follow(id) => ("follow", id),
            Self::Changed(id) => ("changed", id),
            Self::Ended(id) => ("ended", id),
            Self::Cancel(id) => ("cancel", id),
        };
        format!("{word}:{id}")
    }

    /// A notice from its text; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (word, id) = text.split_once(':')?;
        let id: RunId = id.parse().ok()?;
        Some(match word {
            "follow" => Self::Follow(id),
            "changed" => Self::Changed(id),
            "ended" => Self::Ended(id),
            "cancel" => Self::Cancel(id),
            _ => return None,
        })
    }
}

/// Notices between nodes. A store that only one process uses (the in-memory store, a
/// `SQLite` file) has no other node: it keeps the defaults, which send nothing and hear
/// nothing.
#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// Sends `notices`, in order, to every node of the store (this one may hear them too).
    async fn notify(&self, _notices: &[Notice]) -> Result<(), StoreError> {
        Ok(())
    }

    /// The notices of every node, as they come; `None` when the store has no other nodes.
    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back_as_written() {
        let id = RunId::new();
        for notice in [
            Notice::Follow(id),
            Notice::Changed(id),
            Notice::Ended(id),
            Notice::Cancel(id),
        ] {
            assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        }
        assert_eq!(Notice::decode(""), None);
        assert_eq!(Notice::decode("ended:not-a-run"), None);
        assert_eq!(Notice::decode(&format!("other:{id}")), None);
    }
}
