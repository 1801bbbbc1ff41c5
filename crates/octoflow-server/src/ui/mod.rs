//! The web UI (SPEC §15): pages rendered on the server under `/ui` from templates compiled
//! into the binary, one embedded stylesheet, no request to any other host. The UI follows the
//! API's rules: the same roles, the same tokens — a login here is a session token kept in a
//! cookie (see `session`) — and an open server (no users, no tokens) is open here too.
//!
//! - `assets`: the stylesheet under a content-hashed name;
//! - `session`: the cookies and the CSRF token every form carries;
//! - `pages`: what every page shares, and the flows page;
//! - `runs`: the runs list and a run's page;
//! - `actions`: cancel and retry from a run's page;
//! - `login`: the login form and logout.

mod actions;
mod assets;
mod login;
mod pages;
mod runs;
mod session;

use axum::Router;
use axum::routing::{get, post};

use crate::Shared;

/// The routes of the UI.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/ui", get(pages::home))
        .route("/ui/", get(pages::flows))
        .route("/ui/runs", get(runs::list))
        .route("/ui/runs/{id}", get(runs::show))
        .route("/ui/runs/{id}/cancel", post(actions::cancel))
        .route("/ui/runs/{id}/retry", post(actions::retry))
        .route("/ui/login", get(login::login_form).post(login::log_in))
        .route("/ui/logout", post(login::log_out))
        .route("/ui/assets/{file}", get(assets::serve))
}
