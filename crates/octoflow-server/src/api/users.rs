//! Users and API tokens (SPEC §11.1), for admins: the same records `octoflow user add` and
//! `octoflow token create` make. Password hashes and token secrets are never answered; a new
//! token's secret is answered once, when it is made. User names are logged only as digests
//! (`login_guard::shown_name`), as logins log them.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use octoflow_core::store::{ApiToken, Role, TokenKind};
use serde::{Deserialize, Serialize};

use super::blocking;
use crate::access::{PasswordError, TokenRequest, issue_token, new_user};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::login_guard::shown_name;
use crate::{AppState, Shared};

/// A user, without the password hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserInfo {
    /// Login name.
    name: String,
    /// What the user may do.
    role: Role,
    /// When the user was added.
    created_at: DateTime<Utc>,
}

/// Lists the users.
#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    responses((status = 200, description = "Every user, by name", body = Vec<UserInfo>)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Shared>,
) -> Result<axum::Json<Vec<UserInfo>>, ApiError> {
    let mut users: Vec<UserInfo> = state
        .service
        .store()
        .users()
        .await?
        .into_iter()
        .map(|u| UserInfo {
            name: u.name,
            role: u.role,
            created_at: u.created_at,
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(axum::Json(users))
}

/// `PUT /api/v1/users/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserRequest {
    /// What the user may do.
    role: Role,
    /// The password (stored as an Argon2 hash).
    password: String,
}

/// Adds a user, or replaces the one with that name.
#[utoipa::path(put, path = "/api/v1/users/{name}", tag = "access",
    params(("name" = String, Path, description = "The login name")),
    request_body = UserRequest,
    responses((status = 200, description = "Replaced", body = UserInfo),
        (status = 201, description = "Added", body = UserInfo),
        (status = 400, description = "Bad body, name or password", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put(
    State(state): State<Shared>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let (existed, info) = save_user(&state, &name, body.role, &body.password).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(info)).into_response())
}

/// Adds user `name` or replaces it; whether it existed, and the user as saved.
pub(crate) async fn save_user(
    state: &AppState,
    name: &str,
    role: Role,
    password: &str,
) -> Result<(bool, UserInfo), ApiError> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if !valid_name {
        return Err(ApiError::bad_request(format!(
            "invalid user name `{name}`; use letters, digits, `_`, `.`, `@` and `-` (at most 64)"
        )));
    }
    let store = state.service.store();
    let existed = store.user(name).await?.is_some();
    let user = {
        let (name, password) = (name.to_owned(), password.to_owned());
        blocking(move || new_user(&name, role, &password)).await?
    }
    .map_err(|e| match e {
        PasswordError::Empty => ApiError::bad_request("password is empty"),
        other => ApiError::internal(other),
    })?;
    store.put_user(&user).await?;
    let ended = if existed {
        crate::access::end_sessions(store.as_ref(), &user.name).await?
    } else {
        0
    };
    tracing::info!(
        user = %shown_name(&user.name),
        role = %user.role,
        sessions_ended = ended,
        "User saved."
    );
    let info = UserInfo {
        name: user.name,
        role: user.role,
        created_at: user.created_at,
    };
    Ok((existed, info))
}

/// Lists the tokens (API and session), newest first.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, description = "Every token, newest first", body = Vec<ApiToken>)),
    security(("bearer" = [])))]
pub(crate) async fn tokens(
    State(state): State<Shared>,
) -> Result<axum::Json<Vec<ApiToken>>, ApiError> {
    Ok(axum::Json(state.service.store().tokens().await?))
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    /// What it is for.
    pub(crate) name: String,
    /// What it may do.
    pub(crate) role: Role,
    /// Seconds until it expires; never when absent.
    #[serde(default)]
    pub(crate) ttl_seconds: Option<u64>,
}

/// A token just made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct NewToken {
    /// The bearer secret (`oft_…`), shown only now.
    pub(crate) secret: String,
    /// Its record.
    pub(crate) token: ApiToken,
}

/// Makes an API token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access",
    request_body = TokenBody,
    responses((status = 201, description = "The token and its secret (shown once)", body = NewToken),
        (status = 400, description = "Bad body", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_token(
    State(state): State<Shared>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Response, ApiError> {
    let answer = make_token(&state, body).await?;
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// Makes an API token; its secret is in the answer, and only there.
pub(crate) async fn make_token(state: &AppState, body: TokenBody) -> Result<NewToken, ApiError> {
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("give the token a `name`"));
    }
    let issued = issue_token(
        state.service.store().as_ref(),
        TokenRequest {
            name: body.name,
            role: body.role,
            kind: TokenKind::Api,
            user: None,
            ttl: body.ttl_seconds.map(Duration::from_secs),
        },
    )
    .await?;
    tracing::info!(token = %issued.token.id, role = %issued.token.role, "Token made.");
    Ok(NewToken {
        secret: issued.secret,
        token: issued.token,
    })
}

/// Removes a user and ends its sessions; its API tokens, if any, stay until revoked.
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "access",
    params(("name" = String, Path, description = "The login name")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such user", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = state.service.store();
    if !store.delete_user(&name).await? {
        return Err(ApiError::not_found(format!("no user `{name}`")));
    }
    let ended = crate::access::end_sessions(store.as_ref(), &name).await?;
    tracing::info!(user = %shown_name(&name), sessions_ended = ended, "User removed.");
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "The token id (`tok_…`)")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn revoke_token(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.service.store().revoke_token(&id).await? {
        tracing::info!(token = %id, "Token revoked.");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no token `{id}`")))
    }
}
