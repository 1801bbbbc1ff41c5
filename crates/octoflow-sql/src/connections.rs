//! Named connections (`connections:` in config.yml): a URL written with secrets, and a pool
//! opened at the connection's first use and shared by every step of the node.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use octoflow_core::secrets::Secrets;
use serde::Deserialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::OnceCell;

use crate::error::{SqlError, driver_message};

/// How long a step waits for a free connection (or a new one) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// One entry of `connections:`.
#[derive(Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The database URL: `postgres://…` (or `postgresql://…`) or `mysql://…` (or
    /// `mariadb://…`); may hold `{{ secrets.<name>.<field> }}`, rendered at first use.
    pub url: String,
    /// The most connections the node opens to this database at once. Default 10.
    #[serde(default)]
    pub max_connections: Option<u32>,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("url", &without_userinfo(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl ConnectionConfig {
    /// A connection to `url`, with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: None,
        }
    }

    /// Checks what can be checked without secrets or a network: the URL's scheme.
    ///
    /// # Errors
    /// A message for `config.yml` when the scheme is not one of a supported database.
    pub fn check(&self) -> Result<(), String> {
        Backend::of(&self.url).map(|_| ())
    }
}

/// The databases `sql` steps talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    MySql,
}

impl Backend {
    fn of(url: &str) -> Result<Self, String> {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        match scheme {
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::MySql),
            _ => Err(format!(
                "connection URL must start with `postgres://` or `mysql://` (got `{}`)",
                without_userinfo(url)
            )),
        }
    }
}

/// A connection's pool.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Every named connection of a node. Cloning shares the pools.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    entries: Arc<BTreeMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    config: ConnectionConfig,
    pool: OnceCell<Pool>,
}

impl Connections {
    /// The connections of `config.yml`; nothing is opened yet.
    pub fn new(configs: BTreeMap<String, ConnectionConfig>) -> Self {
        let entries = configs
            .into_iter()
            .map(|(name, config)| {
                let entry = Entry {
                    config,
                    pool: OnceCell::new(),
                };
                (name, entry)
            })
            .collect();
        Self {
            entries: Arc::new(entries),
        }
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether a connection of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The pool of connection `name`, made at its first use: the URL rendered with
    /// `secrets`, no connection opened until a statement needs one.
    pub(crate) async fn pool(&self, name: &str, secrets: &Secrets) -> Result<Pool, SqlError> {
        let fail = |message: String| SqlError::Connect {
            connection: name.to_owned(),
            message,
        };
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| fail("no such connection in `connections:`".to_owned()))?;
        entry
            .pool
            .get_or_try_init(|| async {
                let url = secrets
                    .render(&entry.config.url)
                    .map_err(|e| fail(format!("cannot render the URL: {e}")))?;
                let size = entry.config.max_connections.unwrap_or(10).max(1);
                lazy_pool(&url, size).map_err(fail)
            })
            .await
            .cloned()
    }
}

/// A pool that connects when a statement first needs a connection.
fn lazy_pool(url: &str, size: u32) -> Result<Pool, String> {
    let invalid = |e: &sqlx::Error| format!("invalid URL: {}", driver_message(e));
    match Backend::of(url)? {
        Backend::Postgres => {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| invalid(&e))?
                .application_name("octoflow");
            let pool = PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(options);
            Ok(Pool::Postgres(pool))
        }
        Backend::MySql => {
            let url = url.replacen("mariadb://", "mysql://", 1);
            let options = MySqlConnectOptions::from_str(&url).map_err(|e| invalid(&e))?;
            let pool = MySqlPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(options);
            Ok(Pool::MySql(pool))
        }
    }
}

/// A URL without its `user:password@` part, for messages.
pub(crate) fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(host_end);
    match authority.rfind('@') {
        Some(at) => {
            let host = authority.get(at + 1..).unwrap_or_default();
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_checked_without_a_network() {
        assert!(ConnectionConfig::new("postgres://u:p@h/db").check().is_ok());
        assert!(ConnectionConfig::new("postgresql://h/db").check().is_ok());
        assert!(ConnectionConfig::new("mysql://h/db").check().is_ok());
        assert!(ConnectionConfig::new("mariadb://h/db").check().is_ok());
        let error = ConnectionConfig::new("oracle://u:hunter2@h/db")
            .check()
            .unwrap_err();
        assert_eq!(
            error,
            "connection URL must start with `postgres://` or `mysql://` (got `oracle://h/db`)"
        );
    }

    #[test]
    fn debug_and_messages_never_show_the_password() {
        let config = ConnectionConfig::new("mysql://reader:hunter2@127.0.0.1:3306/x");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            without_userinfo("mysql://reader:p@ss@h:1/x?y=@"),
            "mysql://h:1/x?y=@"
        );
        assert_eq!(without_userinfo("nats://h:4222"), "nats://h:4222");
    }

    #[tokio::test]
    async fn a_pool_is_made_without_dialing() {
        let mut configs = BTreeMap::new();
        // Port 1: nothing listens; a lazy pool does not notice.
        configs.insert(
            "db".to_owned(),
            ConnectionConfig::new("postgres://u@127.0.0.1:1/x"),
        );
        let connections = Connections::new(configs);
        let pool = connections.pool("db", &Secrets::default()).await;
        assert!(matches!(pool, Ok(Pool::Postgres(_))));
        let missing = connections
            .pool("nope", &Secrets::default())
            .await
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "connection `nope`: no such connection in `connections:`"
        );
    }
}
