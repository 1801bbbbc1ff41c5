//! The `users`, `api_tokens` and `node_settings` tables (SPEC §11.1).

use async_trait::async_trait;
use octoflow_core::store::{ApiToken, AuthStore, StoreError, User};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use crate::error::{conflict_or, from_sqlx};
use crate::{PostgresStore, codec};

/// The `node_settings` key of the node-shared signing key.
pub(crate) const NODE_KEY: &str = "node_key";

/// The columns of a token, for [`decode_token`].
macro_rules! token_columns {
    () => {
        "id, name, role, kind, \"user\", created_at, expires_at, revoked"
    };
}
pub(crate) use token_columns;

/// The columns of a user, for [`decode_user`].
macro_rules! user_columns {
    () => {
        "name, role, password_hash, created_at"
    };
}
pub(crate) use user_columns;

pub(crate) fn decode_user(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        name: codec::get(row, "name")?,
        role: codec::get_word(row, "role")?,
        password_hash: codec::get(row, "password_hash")?,
        created_at: codec::get(row, "created_at")?,
    })
}

pub(crate) fn decode_token(row: &PgRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: codec::get(row, "id")?,
        name: codec::get(row, "name")?,
        role: codec::get_word(row, "role")?,
        kind: codec::get_word(row, "kind")?,
        user: codec::get(row, "user")?,
        created_at: codec::get(row, "created_at")?,
        expires_at: codec::get(row, "expires_at")?,
        revoked: codec::get(row, "revoked")?,
    })
}

/// The stored node key, if one was made.
async fn stored_key(pool: &PgPool) -> Result<Option<Vec<u8>>, StoreError> {
    sqlx::query("SELECT value FROM node_settings WHERE key = $1")
        .bind(NODE_KEY)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .map(|row| codec::get(&row, "value"))
        .transpose()
}

#[async_trait]
impl AuthStore for PostgresStore {
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
             password_hash = excluded.password_hash, created_at = excluded.created_at",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        self.auth_seen.forget();
        Ok(())
    }

    async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        self.auth_seen.forget();
        Ok(deleted == 1)
    }

    async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?
        .as_ref()
        .map(decode_user)
        .transpose()
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY name COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(decode_user).collect()
    }

    async fn insert_token(&self, token: &ApiToken, digest: &str) -> Result<(), StoreError> {
        token_insert(
            concat!(
                "INSERT INTO api_tokens (digest, ",
                token_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            token,
            digest,
        )
        .execute(&self.pool)
        .await
        .map_err(conflict_or("token"))?;
        self.auth_seen.forget();
        Ok(())
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE digest = $1"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?
        .as_ref()
        .map(decode_token)
        .transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY created_at DESC, id COLLATE \"C\" DESC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(decode_token).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let revoked = sqlx::query("UPDATE api_tokens SET revoked = true WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        self.auth_seen.forget();
        Ok(revoked == 1)
    }

    /// Answers from the cached answer (`auth_seen`) while it is fresh.
    async fn auth_configured(&self) -> Result<bool, StoreError> {
        let reading = match self.auth_seen.fresh() {
            Ok(answer) => return Ok(answer),
            Err(reading) => reading,
        };
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM api_tokens) AS any",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(from_sqlx)?;
        let answer = codec::get(&row, "any")?;
        self.auth_seen.keep(reading, answer);
        Ok(answer)
    }

    /// Made on first use by whichever node asks first: the others' inserts do nothing, and
    /// every node reads the one key stored.
    async fn node_key(&self) -> Result<Vec<u8>, StoreError> {
        if let Some(key) = stored_key(&self.pool).await? {
            return Ok(key);
        }
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        sqlx::query(
            "INSERT INTO node_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(NODE_KEY)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        stored_key(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Backend("the node key vanished as it was made".into()))
    }
}

/// An `INSERT INTO api_tokens` statement (`sql`: the digest, then the token's columns in
/// `token_columns!` order) with the token's values bound.
pub(crate) fn token_insert<'q>(
    sql: &'static str,
    token: &'q ApiToken,
    digest: &'q str,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(digest)
        .bind(&token.id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(token.kind.as_str())
        .bind(&token.user)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked)
}
