//! Records of who may use the API (SPEC §11.1): users, roles and tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

text_enum! {
    /// What a user or token may do; each role includes the ones before it.
    Role {
        /// Read flows, runs, logs, locks and state.
        Viewer = "viewer",
        /// Also start, cancel and retry runs, and free locks.
        Operator = "operator",
        /// Also change flows, schedules, state, users and tokens.
        Admin = "admin",
    }
}

impl Role {
    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Viewer => 0,
            Self::Operator => 1,
            Self::Admin => 2,
        }
    }
}

/// A person who logs in with a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The password's Argon2 hash, in PHC string form.
    pub password_hash: String,
    /// When the user was added.
    pub created_at: DateTime<Utc>,
}

text_enum! {
    /// Where a token came from.
    TokenKind {
        /// Made by `octoflow token create`, for machines; lives until revoked or it expires.
        Api = "api",
        /// Given by `POST /api/v1/auth/login`; expires after `auth.token_ttl`.
        Session = "session",
    }
}

/// A bearer token's record; its secret is kept only as a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    /// Its id (shown, used to revoke it).
    pub id: String,
    /// A name saying what it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// API token or login session.
    pub kind: TokenKind,
    /// The user it was given to, for session tokens.
    pub user: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl ApiToken {
    /// Whether it may be used at `now`.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| at > now)
    }
}
