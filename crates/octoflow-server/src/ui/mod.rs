//! The web UI (SPEC §15): pages rendered on the server under `/ui` from templates compiled
//! into the binary, one embedded stylesheet, no request to any other host. The UI follows the
//! API's rules: the same roles, the same tokens — a login here is a session token kept in a
//! cookie (see `session`) — and an open server (no users, no tokens) is open here too.
//!
//! - `assets`: the stylesheet under a content-hashed name;
//! - `session`: the cookies and the CSRF token every form carries;
//! - `pages`: the pages, each a handler rendering one template.

mod assets;
mod pages;
mod session;

use axum::Router;
use axum::routing::{get, post};

use crate::Shared;

/// The routes of the UI.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/ui", get(pages::home))
        .route("/ui/", get(pages::flows))
        .route("/ui/login", get(pages::login_form).post(pages::log_in))
        .route("/ui/logout", post(pages::log_out))
        .route("/ui/assets/{file}", get(assets::serve))
}
