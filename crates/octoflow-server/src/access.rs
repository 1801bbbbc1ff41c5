//! Passwords and bearer tokens (SPEC §11.1): Argon2 password hashes in PHC form, token
//! secrets (`oft_…`, shown once) and their SHA-256 digests, which are all the store keeps.
//!
//! The CLI's `octoflow user add` and `octoflow token create` use these helpers too, so a
//! user or token made offline works against the server.

use std::sync::LazyLock;
use std::time::Duration;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use chrono::Utc;
use octoflow_core::store::{ApiToken, AuthStore, Role, StoreError, TokenKind, User};
use sha2::{Digest, Sha256};

/// The prefix of every token secret, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "oft_";

/// Random bytes in a token secret (256 bits).
const TOKEN_BYTES: usize = 32;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password is empty.
    #[error("password is empty")]
    Empty,
    /// The system's random source failed.
    #[error("cannot read random bytes: {0}")]
    Random(getrandom::Error),
    /// Argon2 refused the input.
    #[error("cannot hash password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Hashes a password with Argon2id and a fresh salt, in PHC string form
/// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(PasswordError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches a PHC hash made by [`hash_password`]; false for a malformed
/// hash. Takes about as long whether or not it matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no password is known for, checked when a login names an unknown user so that the
/// answer takes as long as for a known one.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        let (secret, _) = new_token();
        hash_password(&secret).unwrap_or_default()
    });
    &DUMMY
}

/// A new token: its secret (`oft_` and 64 hex digits; shown once, never stored) and the
/// SHA-256 hex digest of the secret (what the store keeps).
///
/// # Panics
///
/// When the operating system's random source fails, which leaves no safe way to go on.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; TOKEN_BYTES];
    // A token must never be predictable; without a random source nothing can be issued.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let digest = digest(&secret);
    (secret, digest)
}

/// The SHA-256 hex digest of a token secret: the key the store finds tokens by.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A user record with a freshly hashed password.
pub fn new_user(name: &str, role: Role, password: &str) -> Result<User, PasswordError> {
    Ok(User {
        name: name.to_owned(),
        role,
        password_hash: hash_password(password)?,
        created_at: Utc::now(),
    })
}

/// What a token is made for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// A name saying what it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// API token or login session.
    pub kind: TokenKind,
    /// The user it is given to (session tokens).
    pub user: Option<String>,
    /// How long it works; `None` for ever (until revoked).
    pub ttl: Option<Duration>,
}

/// A token just made: its secret (show it once) and its record.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The bearer secret, `oft_…`.
    pub secret: String,
    /// The stored record.
    pub token: ApiToken,
}

/// Ends every session of user `name` (its password or role changed): their tokens are
/// revoked, so the user logs in again, with the new password and role. How many ended.
///
/// # Errors
/// When the store fails.
pub async fn end_sessions(store: &dyn AuthStore, name: &str) -> Result<usize, StoreError> {
    let mut ended = 0;
    for token in store.tokens().await? {
        if token.kind == TokenKind::Session
            && !token.revoked
            && token.user.as_deref() == Some(name)
            && store.revoke_token(&token.id).await?
        {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Makes a token and records it (by digest) in the store.
pub async fn issue_token(
    store: &dyn AuthStore,
    request: TokenRequest,
) -> Result<IssuedToken, StoreError> {
    let (secret, digest) = new_token();
    let now = Utc::now();
    let expires_at = request
        .ttl
        .and_then(|ttl| chrono::Duration::from_std(ttl).ok())
        .and_then(|ttl| now.checked_add_signed(ttl));
    let token = ApiToken {
        id: token_id(&digest),
        name: request.name,
        role: request.role,
        kind: request.kind,
        user: request.user,
        created_at: now,
        expires_at,
        revoked: false,
    };
    store.insert_token(&token, &digest).await?;
    Ok(IssuedToken { secret, token })
}

/// A token's public id: `tok_` and the first 16 hex digits of its digest (the secret cannot
/// be recovered from it).
fn token_id(digest: &str) -> String {
    let short: String = digest.chars().take(16).collect();
    format!("tok_{short}")
}

#[cfg(test)]
mod tests {
    use octoflow_core::store::MemoryStore;

    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("s3cret!", &hash));
        assert!(!verify_password("s3cret", "not a hash"));
        assert!(!verify_password("s3cret", dummy_hash()));
        assert!(matches!(hash_password(""), Err(PasswordError::Empty)));
    }

    #[test]
    fn tokens_are_prefixed_random_and_digested() {
        let (a, da) = new_token();
        let (b, db) = new_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(da, digest(&a));
        assert_ne!(da, db);
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn issued_tokens_are_found_by_digest() {
        let store = MemoryStore::new();
        let issued = issue_token(
            &store,
            TokenRequest {
                name: "ci".to_owned(),
                role: Role::Operator,
                kind: TokenKind::Api,
                user: None,
                ttl: Some(Duration::from_secs(60)),
            },
        )
        .await
        .unwrap();
        let found = store
            .token_by_digest(&digest(&issued.secret))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, issued.token);
        assert!(found.id.starts_with("tok_"));
        assert!(found.is_usable(Utc::now()));
        assert!(!found.is_usable(Utc::now() + chrono::Duration::seconds(61)));
    }
}
