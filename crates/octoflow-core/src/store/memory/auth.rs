//! In-memory users, API tokens and the node key.

use async_trait::async_trait;

use super::MemoryStore;
use crate::store::{ApiToken, AuthStore, StoreError, User};

#[async_trait]
impl AuthStore for MemoryStore {
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.lock().users.insert(user.name.clone(), user.clone());
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(name).cloned())
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self.lock().users.values().cloned().collect())
    }

    async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.lock().users.remove(name).is_some())
    }

    async fn insert_token(&self, token: &ApiToken, digest: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.tokens.iter().any(|(t, _)| t.id == token.id) {
            return Err(StoreError::Conflict {
                what: "token id".to_owned(),
            });
        }
        if inner.tokens.iter().any(|(_, d)| d == digest) {
            return Err(StoreError::Conflict {
                what: "token digest".to_owned(),
            });
        }
        inner.tokens.push((token.clone(), digest.to_owned()));
        Ok(())
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self
            .lock()
            .tokens
            .iter()
            .find(|(_, d)| d == digest)
            .map(|(t, _)| t.clone()))
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let mut tokens: Vec<ApiToken> = self.lock().tokens.iter().map(|(t, _)| t.clone()).collect();
        tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(tokens)
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some((token, _)) = inner.tokens.iter_mut().find(|(t, _)| t.id == id) else {
            return Ok(false);
        };
        token.revoked = true;
        Ok(true)
    }

    async fn auth_configured(&self) -> Result<bool, StoreError> {
        let inner = self.lock();
        Ok(!inner.users.is_empty() || !inner.tokens.is_empty())
    }

    async fn node_key(&self) -> Result<Vec<u8>, StoreError> {
        let mut inner = self.lock();
        Ok(inner.node_key.get_or_insert_with(new_node_key).clone())
    }
}

/// 32 random bytes (two version-4 UUIDs' worth of randomness).
fn new_node_key() -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}
