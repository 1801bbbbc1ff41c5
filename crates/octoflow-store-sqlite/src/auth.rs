//! The `users`, `api_tokens` and `node_settings` tables (SPEC §11.1).

use async_trait::async_trait;
use octoflow_core::store::{ApiToken, AuthStore, StoreError, User};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row, SqliteConnection};

use crate::error::{conflict_or, from_sqlx};
use crate::{SqliteStore, codec};

/// The `node_settings` key of the node-shared signing key.
const NODE_KEY: &str = "node_key";

fn decode_user(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        name: codec::get_text(row, "name")?,
        role: codec::get_word(row, "role")?,
        password_hash: codec::get_text(row, "password_hash")?,
        created_at: codec::get_time(row, "created_at")?,
    })
}

fn decode_token(row: &SqliteRow) -> Result<ApiToken, StoreError> {
    let revoked: i64 = row.try_get("revoked").map_err(from_sqlx)?;
    Ok(ApiToken {
        id: codec::get_text(row, "id")?,
        name: codec::get_text(row, "name")?,
        role: codec::get_word(row, "role")?,
        kind: codec::get_word(row, "kind")?,
        user: codec::get_opt_text(row, "user")?,
        created_at: codec::get_time(row, "created_at")?,
        expires_at: codec::get_opt_time(row, "expires_at")?,
        revoked: revoked != 0,
    })
}

/// The columns of a token, for [`decode_token`].
macro_rules! token_columns {
    () => {
        "id, name, role, kind, user, created_at, expires_at, revoked"
    };
}

/// The node key, made (32 random bytes) and stored on first use, in one transaction.
async fn node_key(conn: &mut SqliteConnection) -> Result<Vec<u8>, StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT value FROM node_settings WHERE key = ?")
            .bind(NODE_KEY)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
    let key = if let Some(key) = stored {
        key
    } else {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        sqlx::query("INSERT INTO node_settings (key, value) VALUES (?, ?)")
            .bind(NODE_KEY)
            .bind(key.clone())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        key
    };
    tx.commit().await.map_err(from_sqlx)?;
    Ok(key)
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.writer
            .run(move |c| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO users (name, role, password_hash, created_at) \
                         VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
                         role = excluded.role, password_hash = excluded.password_hash, \
                         created_at = excluded.created_at",
                    )
                    .bind(user.name)
                    .bind(user.role.as_str())
                    .bind(user.password_hash)
                    .bind(codec::time(user.created_at))
                    .execute(c)
                    .await
                    .map_err(from_sqlx)?;
                    Ok(())
                })
            })
            .await
    }

    async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT name, role, password_hash, created_at FROM users WHERE name = ?")
            .bind(name.to_owned())
            .fetch_optional(&self.reader)
            .await
            .map_err(from_sqlx)?
            .as_ref()
            .map(decode_user)
            .transpose()
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query("SELECT name, role, password_hash, created_at FROM users ORDER BY name")
            .fetch_all(&self.reader)
            .await
            .map_err(from_sqlx)?
            .iter()
            .map(decode_user)
            .collect()
    }

    async fn insert_token(&self, token: &ApiToken, digest: &str) -> Result<(), StoreError> {
        let (token, digest) = (token.clone(), digest.to_owned());
        self.writer
            .run(move |c| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO api_tokens \
                         (id, digest, name, role, kind, user, created_at, expires_at, revoked) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(token.id)
                    .bind(digest)
                    .bind(token.name)
                    .bind(token.role.as_str())
                    .bind(token.kind.as_str())
                    .bind(token.user)
                    .bind(codec::time(token.created_at))
                    .bind(codec::opt_time(token.expires_at))
                    .bind(i64::from(token.revoked))
                    .execute(c)
                    .await
                    .map_err(conflict_or("token"))?;
                    Ok(())
                })
            })
            .await
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE digest = ?"
        ))
        .bind(digest.to_owned())
        .fetch_optional(&self.reader)
        .await
        .map_err(from_sqlx)?
        .as_ref()
        .map(decode_token)
        .transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY created_at DESC, id DESC"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(decode_token)
        .collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.writer
            .run(move |c| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE id = ?")
                        .bind(id)
                        .execute(c)
                        .await
                        .map_err(from_sqlx)?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await
    }

    async fn auth_configured(&self) -> Result<bool, StoreError> {
        let any: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users) \
             OR EXISTS (SELECT 1 FROM api_tokens WHERE revoked = 0)",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(from_sqlx)?;
        Ok(any != 0)
    }

    async fn node_key(&self) -> Result<Vec<u8>, StoreError> {
        self.writer
            .run(move |c| Box::pin(async move { node_key(c).await }))
            .await
    }
}
