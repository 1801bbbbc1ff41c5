//! Notices between nodes (see [`octoflow_core::store::NoticeStore`]): sent with `pg_notify` on
//! the store's channel, the notice's text as the payload (work wake-ups carry none), and
//! heard by the listening task of every node (see `listen`).

use async_trait::async_trait;
use octoflow_core::store::{Notice, NoticeStore, StoreError};
use tokio::sync::broadcast;

use crate::PostgresStore;
use crate::error::from_sqlx;

#[async_trait]
impl NoticeStore for PostgresStore {
    async fn notify(&self, notices: &[Notice]) -> Result<(), StoreError> {
        if notices.is_empty() {
            return Ok(());
        }
        // One statement for the lot: a busy node sends hundreds a second.
        sqlx::query("SELECT pg_notify($1, notice) FROM unnest($2::text[]) AS notice")
            .bind(&self.names.channel)
            .bind(notices.iter().map(Notice::encode).collect::<Vec<_>>())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.wakeups.notices())
    }
}
