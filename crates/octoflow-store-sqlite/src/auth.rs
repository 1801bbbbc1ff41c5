//! The `users`, `api_tokens` and `node_settings` tables (SPEC §11.1).

use async_trait::async_trait;
use octoflow_core::store::{ApiToken, AuthStore, StoreError, User};
use rusqlite::{Connection, Row, params};

use crate::error::{conflict_or, from_sqlite};
use crate::query::{all, execute, one};
use crate::{SqliteStore, codec};

/// The `node_settings` key of the node-shared signing key.
pub(crate) const NODE_KEY: &str = "node_key";

pub(crate) fn decode_user(row: &Row<'_>) -> Result<User, StoreError> {
    Ok(User {
        name: codec::get_text(row, "name")?,
        role: codec::get_word(row, "role")?,
        password_hash: codec::get_text(row, "password_hash")?,
        created_at: codec::get_time(row, "created_at")?,
    })
}

pub(crate) fn decode_token(row: &Row<'_>) -> Result<ApiToken, StoreError> {
    let revoked: i64 = codec::get(row, "revoked")?;
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
pub(crate) use token_columns;

/// The columns of a user, for [`decode_user`].
macro_rules! user_columns {
    () => {
        "name, role, password_hash, created_at"
    };
}
pub(crate) use user_columns;

/// The node key, made (32 random bytes) and stored on first use (the caller's transaction
/// makes the read and the insert one change).
fn node_key(conn: &Connection) -> Result<Vec<u8>, StoreError> {
    let stored = one(
        conn,
        "SELECT value FROM node_settings WHERE key = ?",
        [NODE_KEY],
        |row| codec::get::<Vec<u8>>(row, "value"),
    )?;
    if let Some(key) = stored {
        return Ok(key);
    }
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    execute(
        conn,
        "INSERT INTO node_settings (key, value) VALUES (?, ?)",
        params![NODE_KEY, key],
    )?;
    Ok(key)
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO users (name, role, password_hash, created_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
                 role = excluded.role, password_hash = excluded.password_hash, \
                 created_at = excluded.created_at",
                params![
                    user.name,
                    user.role.as_str(),
                    user.password_hash,
                    codec::time(user.created_at)
                ],
            )
            .map(drop)
        })
        .await?;
        self.auth_seen.forget();
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            one(
                c,
                concat!("SELECT ", user_columns!(), " FROM users WHERE name = ?"),
                [name],
                decode_user,
            )
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.read(|c| {
            all(
                c,
                concat!("SELECT ", user_columns!(), " FROM users ORDER BY name"),
                [],
                decode_user,
            )
        })
        .await
    }

    async fn insert_token(&self, token: &ApiToken, digest: &str) -> Result<(), StoreError> {
        let (token, digest) = (token.clone(), digest.to_owned());
        self.write(move |c| {
            let mut stmt = c
                .prepare_cached(concat!(
                    "INSERT INTO api_tokens (digest, ",
                    token_columns!(),
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ))
                .map_err(from_sqlite)?;
            stmt.execute(params![
                digest,
                token.id,
                token.name,
                token.role.as_str(),
                token.kind.as_str(),
                token.user,
                codec::time(token.created_at),
                codec::opt_time(token.expires_at),
                token.revoked,
            ])
            .map_err(conflict_or("token"))?;
            Ok(())
        })
        .await?;
        self.auth_seen.forget();
        Ok(())
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>, StoreError> {
        let digest = digest.to_owned();
        self.read(move |c| {
            one(
                c,
                concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens WHERE digest = ?"
                ),
                [digest],
                decode_token,
            )
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.read(|c| {
            all(
                c,
                concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens ORDER BY created_at DESC, id DESC"
                ),
                [],
                decode_token,
            )
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        let deleted = self
            .write(move |c| execute(c, "DELETE FROM users WHERE name = ?", [&name]).map(|n| n == 1))
            .await?;
        self.auth_seen.forget();
        Ok(deleted)
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let revoked = self
            .write(move |c| {
                execute(c, "UPDATE api_tokens SET revoked = 1 WHERE id = ?", [&id]).map(|n| n == 1)
            })
            .await?;
        self.auth_seen.forget();
        Ok(revoked)
    }

    /// Answers from the cached answer (`auth_seen`) while it is fresh.
    async fn auth_configured(&self) -> Result<bool, StoreError> {
        let reading = match self.auth_seen.fresh() {
            Ok(answer) => return Ok(answer),
            Err(reading) => reading,
        };
        let answer = self
            .read(|c| {
                one(
                    c,
                    "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM api_tokens) AS any",
                    [],
                    |row| codec::get::<bool>(row, "any"),
                )
                .map(|any| any.unwrap_or(false))
            })
            .await?;
        self.auth_seen.keep(reading, answer);
        Ok(answer)
    }

    async fn node_key(&self) -> Result<Vec<u8>, StoreError> {
        self.write(node_key).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use octoflow_core::store::Role;

    use super::*;
    use octoflow_core::store::AUTH_SEEN_FOR;

    /// A user added by another process (here another store on the same file) requires tokens
    /// once the kept answer has aged.
    #[tokio::test]
    async fn another_processs_user_is_seen_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("octoflow.db");
        let server = SqliteStore::open(&path).await.unwrap();
        let cli = SqliteStore::open(&path).await.unwrap();
        assert!(!server.auth_configured().await.unwrap());
        let user = User {
            name: "ops".to_owned(),
            role: Role::Admin,
            password_hash: "$argon2id$unused".to_owned(),
            created_at: Utc::now(),
        };
        cli.put_user(&user).await.unwrap();
        assert!(
            cli.auth_configured().await.unwrap(),
            "its own write shows at once"
        );
        tokio::time::sleep(AUTH_SEEN_FOR).await;
        assert!(server.auth_configured().await.unwrap());
    }
}
