//! The login form and logout: a session cookie for the right name and password, revoked at
//! logout; both forms carry the browser's CSRF token.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::pages::{refused_form, render, secure};
use super::session::{self, Browser};
use crate::Shared;
use crate::auth::{self, LoginRequest};
use crate::error::Code;
use crate::extract::ClientAddress;

/// `GET /ui/login`: the login form (the flows page when no login is needed).
pub(super) async fn login_form(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let browser = Browser::of(&headers);
    if matches!(auth::browser_caller(&state, &Method::GET, None).await, Ok(Some(caller)) if !caller.anonymous)
    {
        return Redirect::to("/ui/").into_response();
    }
    render(
        &state,
        &browser,
        StatusCode::OK,
        "login.html",
        context! { username => "" },
    )
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/login`: a session cookie for the right name and password, then the flows page;
/// the form again, with the error, otherwise.
pub(super) async fn log_in(
    State(state): State<Shared>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let browser = Browser::of(&headers);
    if !browser.csrf_matches(&form.csrf) {
        return refused_form(&state, &browser);
    }
    let credentials = LoginRequest {
        username: form.username.clone(),
        password: form.password,
    };
    match auth::log_in(&state, address, credentials).await {
        Ok(answer) => {
            let mut response = Redirect::to("/ui/").into_response();
            session::append(
                response.headers_mut(),
                session::start_session(&answer.access_token, answer.expires_in, secure(&state)),
            );
            response
        }
        Err(error) if error.code == Code::Unauthenticated => render(
            &state,
            &browser,
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! { username => form.username, error => "Wrong user name or password." },
        ),
        Err(error) => error.into_response(),
    }
}

/// The logout form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: the session ends (its token is revoked) and the cookie is cleared.
pub(super) async fn log_out(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let browser = Browser::of(&headers);
    if !browser.csrf_matches(&form.csrf) {
        return refused_form(&state, &browser);
    }
    if let Some(token) = &browser.session
        && let Err(error) = auth::end_session(&state, token).await
    {
        return error.into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    session::append(response.headers_mut(), session::end_session(secure(&state)));
    response
}
