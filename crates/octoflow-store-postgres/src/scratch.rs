//! Test support: stores on fresh schemas of the test server (`OCTOFLOW_TEST_POSTGRES_URL`),
//! skipped with a reason when it is unreachable, or failing under `CI`.

use octoflow_testkit::services;
use sqlx::AssertSqlSafe;

use crate::{PostgresOptions, PostgresStore};

const URL_VAR: &str = "OCTOFLOW_TEST_POSTGRES_URL";

/// The test server's URL.
pub(crate) fn url() -> String {
    services::url(URL_VAR, "postgres://postgres@127.0.0.1:5432/test")
}

/// A store at `url` on a fresh schema (dropped by [`drop_schema`] when the test passes), or
/// `None` (skipped) when the server is unreachable.
pub(crate) async fn store_at(url: &str) -> Option<PostgresStore> {
    // One quick try first: a store's pool keeps trying for seconds.
    if let Err(error) = <sqlx::PgConnection as sqlx::Connection>::connect(url).await {
        return services::unreachable("PostgreSQL", URL_VAR, &error.to_string());
    }
    let options = PostgresOptions {
        max_connections: 4,
        schema: Some(format!("oft_test_{}", uuid::Uuid::new_v4().simple())),
    };
    Some(
        PostgresStore::connect(url, &options)
            .await
            .expect("connect the store"),
    )
}

/// A store on a fresh schema of the test server (see [`store_at`]).
pub(crate) async fn store() -> Option<PostgresStore> {
    store_at(&url()).await
}

/// Drops the store's schema.
pub(crate) async fn drop_schema(store: PostgresStore) {
    let sql = format!("DROP SCHEMA {} CASCADE", store.names.schema);
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&store.pool)
        .await
        .unwrap();
}
