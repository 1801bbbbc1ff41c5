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
    async fn notify(&self, notice: &Notice) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.names.channel)
            .bind(notice.encode())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.wakeups.notices())
    }
}
