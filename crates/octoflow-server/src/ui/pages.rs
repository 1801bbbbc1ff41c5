//! What every page shares — the templates, rendering with the cookies a browser needs, the
//! caller from the session cookie (a browser that may not see a page is sent to the login
//! form) — and the flows page.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::value::Serde;
use minijinja::{Environment, Value as Template, context};
use octoflow_core::store::Role;
use serde_json::{Value, json};

use super::assets;
use super::session::{self, Browser};
use crate::Shared;
use crate::api::flows::{recent_runs, summary};
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};

/// Runs shown as marks beside each flow.
const RECENT_RUNS: u32 = 10;

/// The templates, compiled once.
fn templates() -> &'static Environment<'static> {
    static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("flows.html", include_str!("templates/flows.html")),
            ("runs.html", include_str!("templates/runs.html")),
            ("run.html", include_str!("templates/run.html")),
            ("failed.html", include_str!("templates/failed.html")),
            ("flow.html", include_str!("templates/flow.html")),
            ("schedules.html", include_str!("templates/schedules.html")),
            ("locks.html", include_str!("templates/locks.html")),
            ("access.html", include_str!("templates/access.html")),
        ] {
            env.add_template(name, source)
                .expect("the UI's templates are checked by its tests");
        }
        env
    })
}

/// A page: `template` rendered with `values` and what every page shows, with the cookies the
/// browser needs.
pub(super) fn render(
    state: &Shared,
    browser: &Browser,
    status: StatusCode,
    template: &str,
    values: Template,
) -> Response {
    let common = context! {
        css => Template::from_safe_string(assets::css_path()),
        js => Template::from_safe_string(assets::js_path()),
        csrf => browser.csrf(),
    };
    let rendered = templates()
        .get_template(template)
        .and_then(|t| t.render(context! { ..common, ..values }));
    let mut response = match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    };
    session::append(
        response.headers_mut(),
        browser.cookies_to_set(secure(state)),
    );
    response
}

/// Whether cookies are marked `Secure`: the server is reached over https.
pub(super) fn secure(state: &Shared) -> bool {
    state.hosts.https()
}

/// What a page says of its caller.
pub(super) fn who(caller: &Caller, browser: &Browser) -> Template {
    Template::from(Serde(json!({
        "name": caller.name,
        "role": caller.role.as_str(),
        "session": browser.session.is_some() && caller.name.is_some(),
    })))
}

/// The caller of a page, or the login form's address when the browser must log in first.
pub(super) async fn caller(
    state: &Shared,
    browser: &Browser,
    needed: Role,
) -> Result<Caller, Response> {
    match auth::browser_caller(state, &Method::GET, browser.session.as_deref()).await {
        Ok(Some(caller)) if caller.role.allows(needed) => Ok(caller),
        Ok(Some(caller)) if !caller.anonymous => {
            let refused = ApiError::new(
                Code::Forbidden,
                format!("this needs the `{needed}` role; you have `{}`", caller.role),
            );
            Err(failed(state, browser, &refused, "/ui/"))
        }
        Ok(_) => Err(Redirect::to("/ui/login").into_response()),
        Err(error) => Err(error.into_response()),
    }
}

/// The caller of a form's action: the form's CSRF token checked first (a forged form is
/// refused before anything else is read), then the role the action needs.
pub(super) async fn form_caller(
    state: &Shared,
    browser: &Browser,
    csrf: &str,
    needed: Role,
) -> Result<Caller, Response> {
    if !browser.csrf_matches(csrf) {
        return Err(refused_form(state, browser));
    }
    caller(state, browser, needed).await
}

/// A page saying what went wrong with an action, with a way back.
pub(super) fn failed(state: &Shared, browser: &Browser, error: &ApiError, back: &str) -> Response {
    render(
        state,
        browser,
        error.code.status(),
        "failed.html",
        context! { message => error.message.clone(), back => back },
    )
}

/// `GET /ui`: the flows page's address.
pub(super) async fn home() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/`: the flows, with their triggers, next fire and last runs.
pub(super) async fn flows(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let browser = Browser::of(&headers);
    let caller = match caller(&state, &browser, Role::Viewer).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    match flow_rows(&state).await {
        Ok(flows) => render(
            &state,
            &browser,
            StatusCode::OK,
            "flows.html",
            context! {
                page => "flows", caller => who(&caller, &browser), flows => Serde(flows),
                operator => caller.role.allows(Role::Operator),
            },
        ),
        Err(error) => error.into_response(),
    }
}

/// Each flow as the API lists it, with its most recent runs (one query for each flow).
async fn flow_rows(state: &Shared) -> Result<Vec<Value>, ApiError> {
    let next_fires = state.scheduler.next_fires().await?;
    let mut rows = Vec::new();
    for entry in state.flows.entries() {
        let recent = recent_runs(state, &entry.name, RECENT_RUNS).await?;
        let mut row = serde_json::to_value(summary(state, &entry, &next_fires, &recent))
            .map_err(ApiError::internal)?;
        row["recent"] = recent
            .iter()
            .rev()
            .map(|run| json!({"status": run.status, "created_at": run.created_at}))
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

/// The answer to a form without this browser's CSRF token: 403 with a page saying so (and
/// the cookies a fresh form needs), nothing done.
pub(super) fn refused_form(state: &Shared, browser: &Browser) -> Response {
    let refused = ApiError::new(
        Code::Forbidden,
        "the form's CSRF token is missing or stale; reload the page and try again",
    );
    failed(state, browser, &refused, "/ui/")
}
