//! Conformance cases for users, API tokens and the node key (SPEC §11.1).

use octoflow_core::store::{ApiToken, Role, Store, StoreError, TokenKind, User};

use super::at;

fn user(name: &str, role: Role) -> User {
    User {
        name: name.to_owned(),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${name}"),
        created_at: at(0, 1),
    }
}

fn token(id: &str, secs: i64) -> ApiToken {
    ApiToken {
        id: id.to_owned(),
        name: format!("{id} token"),
        role: Role::Operator,
        kind: TokenKind::Api,
        user: None,
        created_at: at(secs, 7),
        expires_at: None,
        revoked: false,
    }
}

/// Users: added, read by name, listed by name, replaced by name, deleted by name.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn auth_users(store: &dyn Store) {
    assert!(store.users().await.expect("users").is_empty());
    let bob = user("bob", Role::Viewer);
    let alice = user("alice", Role::Admin);
    store.put_user(&bob).await.expect("put bob");
    store.put_user(&alice).await.expect("put alice");
    assert_eq!(
        store.user("alice").await.expect("user"),
        Some(alice.clone())
    );
    assert_eq!(store.user("nobody").await.expect("user"), None);
    assert_eq!(store.users().await.expect("users"), [alice, bob.clone()]);

    let demoted = User {
        password_hash: "$argon2id$new".to_owned(),
        ..user("alice", Role::Operator)
    };
    store.put_user(&demoted).await.expect("replace alice");
    assert_eq!(store.users().await.expect("users"), [demoted, bob.clone()]);

    assert!(store.delete_user("alice").await.expect("delete"));
    assert!(!store.delete_user("alice").await.expect("delete again"));
    assert_eq!(store.user("alice").await.expect("user"), None);
    assert_eq!(store.users().await.expect("users"), [bob]);
}

/// Tokens: found by digest, listed newest first, revoked by id; a digest is unique.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn auth_tokens(store: &dyn Store) {
    let old = token("t-old", 0);
    let session = ApiToken {
        kind: TokenKind::Session,
        role: Role::Admin,
        user: Some("alice".to_owned()),
        expires_at: Some(at(900, 7)),
        ..token("t-new", 10)
    };
    store.insert_token(&old, "d-old").await.expect("insert");
    store.insert_token(&session, "d-new").await.expect("insert");
    assert_eq!(
        store.token_by_digest("d-new").await.expect("by digest"),
        Some(session.clone())
    );
    assert_eq!(
        store.token_by_digest("d-none").await.expect("by digest"),
        None
    );
    assert_eq!(
        store.tokens().await.expect("tokens"),
        [session.clone(), old.clone()],
        "newest first"
    );
    let err = store
        .insert_token(&token("t-dup", 20), "d-old")
        .await
        .expect_err("duplicate digest");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");

    assert!(store.revoke_token("t-old").await.expect("revoke"));
    assert!(!store.revoke_token("t-none").await.expect("revoke"));
    let revoked = store
        .token_by_digest("d-old")
        .await
        .expect("by digest")
        .expect("still found");
    assert!(revoked.revoked);
    assert_eq!(store.tokens().await.expect("tokens").len(), 2);
}

/// Auth is configured once any user or unrevoked token exists.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn auth_configured(store: &dyn Store) {
    assert!(!store.auth_configured().await.expect("configured"));
    store
        .put_user(&user("alice", Role::Viewer))
        .await
        .expect("put user");
    assert!(store.auth_configured().await.expect("configured"));
}

/// Once a token has existed, the API stays closed, even after it was revoked.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn auth_configured_by_a_token(store: &dyn Store) {
    assert!(!store.auth_configured().await.expect("configured"));
    store
        .insert_token(&token("t", 0), "d")
        .await
        .expect("insert");
    assert!(store.auth_configured().await.expect("configured"));
    store.revoke_token("t").await.expect("revoke");
    assert!(
        store.auth_configured().await.expect("configured"),
        "revoking the last token does not open the API again"
    );
}

/// The node key is 32 bytes, made once and the same on every later call.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn node_key_is_stable(store: &dyn Store) {
    let (a, b) = tokio::join!(store.node_key(), store.node_key());
    let a = a.expect("node key");
    assert_eq!(a.len(), 32);
    assert!(a.iter().any(|&byte| byte != 0), "not all zero");
    assert_eq!(b.expect("node key"), a, "racing first calls agree");
    assert_eq!(store.node_key().await.expect("node key"), a);
}
