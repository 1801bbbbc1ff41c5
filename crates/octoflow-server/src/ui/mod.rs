//! The web UI (SPEC §15): pages rendered on the server under `/ui` from templates compiled
//! into the binary, one embedded stylesheet, no request to any other host. The UI follows the
//! API's rules: the same roles, the same tokens — a login here is a session token kept in a
//! cookie (see `session`) — and an open server (no users, no tokens) is open here too.
//!
//! - `assets`: the stylesheet under a content-hashed name;
//! - `session`: the cookies and the CSRF token every form carries;
//! - `pages`: what every page shares, and the flows page;
//! - `flow`: a flow's page and its run form;
//! - `runs`: the runs list and a run's page;
//! - `access`: users and tokens, for admins;
//! - `actions`: cancel and retry from a run's page;
//! - `schedules`: the schedules, added, paused, resumed and removed by admins;
//! - `locks`: the held concurrency keys, freed by operators;
//! - `login`: the login form and logout.

mod access;
mod actions;
mod assets;
mod flow;
mod locks;
mod login;
mod pages;
mod runs;
mod schedules;
mod session;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{get, post};

use crate::{Shared, browser};

/// What every page may load and do: its own stylesheet, script, log stream and forms,
/// nothing from elsewhere, never inside another site's frame.
const POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The routes of the UI, answering only to this server's names (as the API does: a page of
/// a rebound domain gets nothing), each answer with the page policy.
pub(crate) fn router(shared: &Shared) -> Router<Shared> {
    pages(shared)
        .route_layer(from_fn(protect))
        .route_layer(from_fn_with_state(
            shared.hosts.clone(),
            browser::require_own_host,
        ))
}

/// Sets the page policy and its companions on an answer.
async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn pages(shared: &Shared) -> Router<Shared> {
    Router::new()
        .route("/ui", get(pages::home))
        .route("/ui/", get(pages::flows))
        .route("/ui/flows/{name}", get(flow::show))
        .route("/ui/flows/{name}/run", post(flow::run))
        .route("/ui/runs", get(runs::list))
        .route("/ui/runs/{id}", get(runs::show))
        .route("/ui/runs/{id}/logs", get(runs::logs))
        .route("/ui/runs/{id}/cancel", post(actions::cancel))
        .route("/ui/runs/{id}/retry", post(actions::retry))
        .route("/ui/schedules", get(schedules::list).post(schedules::add))
        .route("/ui/schedules/{id}/{action}", post(schedules::change))
        .route("/ui/locks", get(locks::list))
        .route("/ui/locks/free", post(locks::free))
        .route("/ui/access", get(access::show))
        .route("/ui/access/user", post(access::save))
        .route("/ui/access/token", post(access::make))
        .route("/ui/access/revoke", post(access::revoke))
        .route(
            "/ui/login",
            get(login::login_form)
                .post(login::log_in)
                .layer(DefaultBodyLimit::max(shared.limits.small)),
        )
        .route("/ui/logout", post(login::log_out))
        .route("/ui/assets/{file}", get(assets::serve))
}
