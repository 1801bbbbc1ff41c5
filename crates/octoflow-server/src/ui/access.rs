//! Users and tokens, for admins: the users and their roles, a form adding or changing one;
//! the tokens, each revocable, and a form making an API token whose secret is shown once.
//! Each does what the API's route of the same purpose does.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Serde;
use octoflow_core::store::Role;
use serde::Deserialize;

use super::pages::{caller, failed, form_caller, render, who};
use super::session::Browser;
use crate::Shared;
use crate::api::users::{TokenBody, make_token, save_user};
use crate::auth::Caller;
use crate::error::ApiError;

/// What the page shows beyond the lists: a secret just made, or an error.
#[derive(Debug, Default)]
struct Notice {
    secret: Option<(String, String)>,
    error: Option<String>,
}

/// `GET /ui/access`.
pub(super) async fn show(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let browser = Browser::of(&headers);
    match caller(&state, &browser, Role::Admin).await {
        Ok(caller) => page(&state, &browser, &caller, Notice::default()).await,
        Err(answer) => answer,
    }
}

async fn page(state: &Shared, browser: &Browser, caller: &Caller, notice: Notice) -> Response {
    let store = state.service.store();
    let (users, tokens) = match (store.users().await, store.tokens().await) {
        (Ok(users), Ok(tokens)) => (users, tokens),
        (Err(error), _) | (_, Err(error)) => return ApiError::from(error).into_response(),
    };
    let users: Vec<_> = users
        .iter()
        .map(|u| serde_json::json!({"name": u.name, "role": u.role, "created_at": u.created_at}))
        .collect();
    let status = if notice.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (secret_name, secret) = notice.secret.unzip();
    render(
        state,
        browser,
        status,
        "access.html",
        context! {
            page => "access", caller => who(caller, browser),
            users => Serde(users), tokens => Serde(tokens),
            secret => secret, secret_name => secret_name, error => notice.error,
        },
    )
}

/// The user form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct UserForm {
    #[serde(default)]
    csrf: String,
    name: String,
    role: Role,
    password: String,
}

/// `POST /ui/access/user`: adds or changes a user, then the page again.
pub(super) async fn save(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Response {
    let browser = Browser::of(&headers);
    let caller = match form_caller(&state, &browser, &form.csrf, Role::Admin).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    match save_user(&state, form.name.trim(), form.role, &form.password).await {
        Ok(_) => Redirect::to("/ui/access").into_response(),
        Err(error) => {
            let notice = Notice {
                error: Some(error.message),
                ..Notice::default()
            };
            page(&state, &browser, &caller, notice).await
        }
    }
}

/// The token form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    csrf: String,
    name: String,
    role: Role,
    #[serde(default)]
    days: String,
}

/// `POST /ui/access/token`: makes an API token and shows its secret, once.
pub(super) async fn make(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let browser = Browser::of(&headers);
    let caller = match form_caller(&state, &browser, &form.csrf, Role::Admin).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let days = form.days.trim();
    let ttl_seconds = match days {
        "" => None,
        text => match text.parse::<u64>() {
            Ok(days) if days > 0 => Some(days.saturating_mul(86_400)),
            _ => {
                let notice = Notice {
                    error: Some(format!("`{text}` is not a number of days")),
                    ..Notice::default()
                };
                return page(&state, &browser, &caller, notice).await;
            }
        },
    };
    let body = TokenBody {
        name: form.name,
        role: form.role,
        ttl_seconds,
    };
    let notice = match make_token(&state, body).await {
        Ok(made) => Notice {
            secret: Some((made.token.name, made.secret)),
            ..Notice::default()
        },
        Err(error) => Notice {
            error: Some(error.message),
            ..Notice::default()
        },
    };
    page(&state, &browser, &caller, notice).await
}

/// The revoke form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    csrf: String,
    id: String,
}

/// `POST /ui/access/revoke`: revokes a token, then the page again.
pub(super) async fn revoke(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<RevokeForm>,
) -> Response {
    let browser = Browser::of(&headers);
    if let Err(answer) = form_caller(&state, &browser, &form.csrf, Role::Admin).await {
        return answer;
    }
    match state.service.store().revoke_token(&form.id).await {
        Ok(true) => {
            tracing::info!(token = %form.id, "Token revoked.");
            Redirect::to("/ui/access").into_response()
        }
        Ok(false) => failed(
            &state,
            &browser,
            &ApiError::not_found(format!("no token `{}`", form.id)),
            "/ui/access",
        ),
        Err(error) => ApiError::from(error).into_response(),
    }
}
