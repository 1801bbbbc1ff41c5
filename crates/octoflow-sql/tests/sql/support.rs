//! A scratch database per test and a harness whose `sql` kind knows it as `db`.

use std::collections::BTreeMap;

use octoflow_core::step::Registry;
use octoflow_sql::{ConnectionConfig, Connections, Sql};
use octoflow_testkit::harness::Harness;
use octoflow_testkit::services;
use sqlx::{AssertSqlSafe, Connection, Executor, SqlSafeStr};

pub(crate) const POSTGRES_VAR: &str = "OCTOFLOW_TEST_POSTGRES_URL";
pub(crate) const MYSQL_VAR: &str = "OCTOFLOW_TEST_MYSQL_URL";

/// Which server a scratch database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    Postgres,
    MySql,
}

/// A scratch schema or database, dropped by [`Scratch::drop_all`].
pub(crate) struct Scratch {
    pub(crate) server: Server,
    /// The URL steps connect with (the scratch schema or database selected).
    pub(crate) url: String,
    /// The server's URL, for the test's own statements.
    admin_url: String,
    pub(crate) name: String,
}

impl Scratch {
    /// A new scratch area, or `None` (skipped locally) when the server is unreachable.
    pub(crate) async fn new(server: Server) -> Option<Self> {
        let name = format!("octoflow_t_{}", uuid::Uuid::new_v4().simple());
        match server {
            Server::Postgres => {
                let admin_url =
                    services::url(POSTGRES_VAR, "postgres://postgres@127.0.0.1:5432/test");
                let mut conn = match sqlx::PgConnection::connect(&admin_url).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        return services::unreachable("PostgreSQL", POSTGRES_VAR, &e.to_string());
                    }
                };
                run(&mut conn, &format!("CREATE SCHEMA {name}")).await;
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{sep}options=-csearch_path%3D{name}");
                Some(Self {
                    server,
                    url,
                    admin_url,
                    name,
                })
            }
            Server::MySql => {
                let admin_url = services::url(MYSQL_VAR, "mysql://root@127.0.0.1:3306/test");
                let mut conn = match sqlx::MySqlConnection::connect(&admin_url).await {
                    Ok(conn) => conn,
                    Err(e) => return services::unreachable("MariaDB", MYSQL_VAR, &e.to_string()),
                };
                run(&mut conn, &format!("CREATE DATABASE {name}")).await;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                let url = format!("{base}/{name}");
                Some(Self {
                    server,
                    url,
                    admin_url,
                    name,
                })
            }
        }
    }

    /// Runs the test's own statements (setup, checks) on the scratch area.
    pub(crate) async fn exec(&self, sql: &str) {
        match self.server {
            Server::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                run(&mut conn, sql).await;
            }
            Server::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                run(&mut conn, sql).await;
            }
        }
    }

    /// One number from the scratch area (a count).
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        let sql = AssertSqlSafe(sql.to_owned()).into_sql_str();
        match self.server {
            Server::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
            Server::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    /// A harness whose `sql` steps know this area as connection `db`.
    pub(crate) fn harness(&self) -> Harness {
        harness_with("db", &self.url)
    }

    /// Drops the scratch area.
    pub(crate) async fn drop_all(self) {
        match self.server {
            Server::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
                run(&mut conn, &format!("DROP SCHEMA {} CASCADE", self.name)).await;
            }
            Server::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.admin_url)
                    .await
                    .unwrap();
                run(&mut conn, &format!("DROP DATABASE {}", self.name)).await;
            }
        }
    }
}

/// A harness with every core kind and `sql` with one connection.
pub(crate) fn harness_with(name: &str, url: &str) -> Harness {
    let mut configs = BTreeMap::new();
    configs.insert(name.to_owned(), ConnectionConfig::new(url));
    let mut registry = Registry::with_core_kinds();
    registry.register(Sql::new(Connections::new(configs)));
    octoflow_steps::register_builtin(&mut registry);
    Harness::new(registry)
}

async fn run<C>(conn: &mut C, sql: &str)
where
    for<'c> &'c mut C: Executor<'c>,
{
    let text = AssertSqlSafe(sql.to_owned()).into_sql_str();
    (&mut *conn)
        .execute(text)
        .await
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
}
