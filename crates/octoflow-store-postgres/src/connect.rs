//! Connecting a store: the URL and options become a pool whose sessions use the store's
//! schema, the schema is brought up to date, and the listening task starts.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::ends::Ends;
use crate::error::ConnectError;
use crate::leader::Leadership;
use crate::listen::Wakeups;
use crate::migrate::migrate;
use crate::names::{Names, is_plain_identifier, quoted};
use crate::{PostgresOptions, PostgresStore};

/// How long a statement waits for a free connection (or a new one) before the store answers
/// `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, migrates and starts listening (see [`PostgresStore::connect`]).
pub(crate) async fn connect(
    url: &str,
    options: &PostgresOptions,
) -> Result<PostgresStore, ConnectError> {
    // Read committed whatever the server's default: a statement that follows the taking of
    // an advisory lock must see what the lock's previous holder committed.
    let mut connect = PgConnectOptions::from_str(url)
        .map_err(|source| ConnectError::Url { source })?
        .application_name("octoflow")
        .options([("default_transaction_isolation", "read committed")]);
    if let Some(schema) = &options.schema {
        if !is_plain_identifier(schema) {
            return Err(ConnectError::Schema {
                name: schema.clone(),
            });
        }
        // Every session, the listening one too, finds the tables in the schema.
        connect = connect.options([("search_path", quoted(schema))]);
    }
    let target = format!(
        "{}:{}/{}",
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or_default()
    );
    let unreachable = |source| ConnectError::Connect {
        target: target.clone(),
        source,
    };
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(connect.clone())
        .await
        .map_err(unreachable)?;
    let mut conn = pool.acquire().await.map_err(unreachable)?;
    let schema = match &options.schema {
        Some(schema) => schema.clone(),
        None => sqlx::query("SELECT current_schema() AS schema")
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| row.try_get::<Option<String>, _>("schema"))
            .map_err(unreachable)?
            .ok_or(ConnectError::NoSchema)?,
    };
    migrate(&mut conn, &schema, options.schema.is_some()).await?;
    drop(conn);
    let names = Names::new(schema);
    let leadership = Leadership::new(connect.clone(), names.scheduler_lock());
    let wakeups = Wakeups::start(connect, names.channel.clone()).await?;
    tracing::info!(%target, schema = %names.schema, "Store connected.");
    Ok(PostgresStore {
        ends: Ends::start(pool.clone(), names.channel.clone()),
        pool,
        names: Arc::new(names),
        wakeups: Arc::new(wakeups),
        leadership: Arc::new(leadership),
        auth_seen: Arc::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch;

    #[tokio::test]
    async fn a_schema_that_is_not_a_plain_name_is_refused_before_connecting() {
        let options = PostgresOptions {
            schema: Some("a; DROP TABLE runs".to_owned()),
            ..PostgresOptions::default()
        };
        // Port 1: nothing listens there, and nothing is dialled.
        let err = connect("postgres://u:hunter2@127.0.0.1:1/db", &options)
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::Schema { .. }), "{err:?}");
    }

    /// The store's sessions read committed whatever the URL or the server say: a statement
    /// after a lock must see what the lock's last holder committed.
    #[tokio::test]
    async fn sessions_read_committed() {
        let url = scratch::url();
        let sep = if url.contains('?') { '&' } else { '?' };
        let serializable =
            format!("{url}{sep}options=-c%20default_transaction_isolation%3Dserializable");
        let Some(store) = scratch::store_at(&serializable).await else {
            return;
        };
        let level: String = sqlx::query_scalar("SHOW transaction_isolation")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(level, "read committed");
        scratch::drop_schema(store).await;
    }
}
