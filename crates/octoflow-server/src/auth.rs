//! Who may call what (SPEC §11.1): the bearer token of a request becomes a [`Caller`] with a
//! role, checked against the role each route needs ([`Access`]); and `POST
//! /api/v1/auth/login`, which trades a username and password for a session token.
//!
//! A token is, in order: `OCTOFLOW_API_TOKEN` (admin, compared in constant time), a JWT of
//! the outside issuer of `auth.jwt` (its role from a claim), or a token found by its digest
//! in the store, usable when neither revoked nor expired. While no user
//! or token exists and no admin token is set, the API is open and every caller is admin.
//! With `auth.public_read`, `GET` and `HEAD` need no token (the caller is a viewer).

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use octoflow_core::store::{Role, TokenKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::access::{TokenRequest, digest, dummy_hash, issue_token};
use crate::error::{ApiError, Code, ErrorBody};
use crate::extract::ClientAddress;
use crate::extract::{parse_json, read_body};
use crate::jwt::looks_like_jwt;
use crate::login_guard::shown_name;
use crate::{AppState, IssuerTokens, Shared};

/// The role a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No token needed (health, metrics, login, callbacks with their own token).
    Open,
    /// Read.
    Viewer,
    /// Run, cancel, retry, free locks.
    Operator,
    /// Change flows, state, users and tokens.
    Admin,
}

impl Access {
    /// The role needed, `None` for open routes.
    pub fn role(self) -> Option<Role> {
        match self {
            Self::Open => None,
            Self::Viewer => Some(Role::Viewer),
            Self::Operator => Some(Role::Operator),
            Self::Admin => Some(Role::Admin),
        }
    }
}

/// Who is calling: their role and, when known, the user or token name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What the caller may do.
    pub role: Role,
    /// The user (session tokens), the token name (API tokens), `api_token` for
    /// `OCTOFLOW_API_TOKEN`; `None` when no token was needed.
    pub name: Option<String>,
    /// Whether the caller sent no token and reads as a viewer because of `public_read`.
    pub anonymous: bool,
}

/// Middleware of every route that is not open: resolves the caller, checks the role and
/// hands the [`Caller`] to the handler as a request extension.
pub(crate) async fn guard(
    State((state, access)): State<(Shared, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(needed) = access.role() else {
        return next.run(request).await;
    };
    match caller(&state, request.method(), request.headers()).await {
        Ok(caller) if caller.role.allows(needed) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok(caller) if caller.anonymous => unauthenticated(ApiError::unauthenticated(format!(
            "this needs the `{needed}` role; send `Authorization: Bearer <token>`"
        ))),
        Ok(caller) => ApiError::new(
            Code::Forbidden,
            format!(
                "this needs the `{needed}` role; the token has `{}`",
                caller.role
            ),
        )
        .with_details(json!({ "needed": needed.as_str(), "role": caller.role.as_str() }))
        .into_response(),
        Err(error) => unauthenticated(error),
    }
}

/// A 401 answer, with the `WWW-Authenticate` challenge.
fn unauthenticated(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Resolves the caller of a request, or says why it cannot be trusted (401).
pub(crate) async fn caller(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    caller_with(state, method, bearer(headers)?).await
}

/// The caller of a web UI page whose browser holds `session` (a token from its cookie):
/// `None` when the browser must log in first.
pub(crate) async fn browser_caller(
    state: &AppState,
    method: &Method,
    session: Option<&str>,
) -> Result<Option<Caller>, ApiError> {
    match caller_with(state, method, session).await {
        Ok(caller) => Ok(Some(caller)),
        Err(error) if error.code == Code::Unauthenticated => Ok(None),
        Err(error) => Err(error),
    }
}

/// Resolves the caller that sent `token` (none: no token was sent).
async fn caller_with(
    state: &AppState,
    method: &Method,
    token: Option<&str>,
) -> Result<Caller, ApiError> {
    let admin_token = state.auth.admin_token.as_ref();
    let required = admin_token.is_some()
        || state.auth.jwt.is_some()
        || state.service.store().auth_configured().await?;
    if !required {
        return Ok(Caller {
            role: Role::Admin,
            name: None,
            anonymous: false,
        });
    }
    let Some(token) = token else {
        if state.auth.public_read && (method == Method::GET || method == Method::HEAD) {
            return Ok(Caller {
                role: Role::Viewer,
                name: None,
                anonymous: true,
            });
        }
        return Err(ApiError::unauthenticated(
            "missing bearer token; send `Authorization: Bearer <token>`",
        ));
    };
    if let Some(admin) = admin_token
        && bool::from(admin.expose().as_bytes().ct_eq(token.as_bytes()))
    {
        return Ok(Caller {
            role: Role::Admin,
            name: Some("api_token".to_owned()),
            anonymous: false,
        });
    }
    if let Some(issuer) = &state.auth.jwt
        && looks_like_jwt(token)
    {
        return issuer_caller(issuer, token);
    }
    let Some(record) = state
        .service
        .store()
        .token_by_digest(&digest(token))
        .await?
    else {
        return Err(ApiError::unauthenticated("invalid bearer token"));
    };
    if record.revoked {
        return Err(ApiError::unauthenticated("bearer token was revoked"));
    }
    if !record.is_usable(Utc::now()) {
        let hint = match record.kind {
            TokenKind::Session => "; log in again",
            TokenKind::Api => "",
        };
        return Err(ApiError::unauthenticated(format!(
            "bearer token has expired{hint}"
        )));
    }
    Ok(Caller {
        role: record.role,
        name: Some(record.user.unwrap_or(record.name)),
        anonymous: false,
    })
}

/// The caller a token of the outside issuer names: its role from the role claim (`viewer`
/// without one), its name from `sub`.
fn issuer_caller(issuer: &IssuerTokens, token: &str) -> Result<Caller, ApiError> {
    let claims = issuer
        .check
        .verify(token)
        .map_err(ApiError::unauthenticated)?;
    let role = match claims.get(&issuer.role_claim) {
        None | Some(Value::Null) => Role::Viewer,
        Some(Value::String(text)) => text.parse::<Role>().map_err(|_| {
            ApiError::unauthenticated(format!(
                "the JWT's `{}` claim is `{text}`; expected viewer, operator or admin",
                issuer.role_claim
            ))
        })?,
        Some(_) => {
            return Err(ApiError::unauthenticated(format!(
                "the JWT's `{}` claim is not text",
                issuer.role_claim
            )));
        }
    };
    Ok(Caller {
        role,
        name: claims
            .get("sub")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned),
        anonymous: false,
    })
}

/// The token of an `Authorization: Bearer …` header; `None` without the header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || ApiError::unauthenticated("expected `Authorization: Bearer <token>`");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// Credentials of `POST /api/v1/auth/login`, as JSON or a form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's name.
    pub username: String,
    /// The user's password.
    pub password: String,
}

impl<S: Send + Sync> FromRequest<S> for LoginRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let bytes = read_body(request, state).await?;
        if form {
            serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))
        } else {
            parse_json(&bytes)
        }
    }
}

/// A session token given by a login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    /// The bearer token (`oft_…`).
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// The answer to wrong credentials, the same whether or not the user exists.
fn wrong_credentials() -> ApiError {
    ApiError::unauthenticated("wrong username or password")
}

/// Trades a username and password for a session token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body(
        description = "The user's name and password, as JSON or a form",
        content(
            (LoginRequest = "application/json"),
            (LoginRequest = "application/x-www-form-urlencoded")
        )
    ),
    responses(
        (status = 200, description = "A session token", body = LoginAnswer),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody)
    )
)]
pub(crate) async fn login(
    State(state): State<Shared>,
    ClientAddress(address): ClientAddress,
    credentials: LoginRequest,
) -> Result<axum::Json<LoginAnswer>, ApiError> {
    Ok(axum::Json(log_in(&state, address, credentials).await?))
}

/// Checks a user name and password and issues a session token; a wrong pair is
/// `unauthenticated`, the same whether or not the user exists; too many wrong ones lately
/// from `address` or for the name are `429` ([`LoginGuard`](crate::login_guard)).
pub(crate) async fn log_in(
    state: &AppState,
    address: Option<std::net::IpAddr>,
    credentials: LoginRequest,
) -> Result<LoginAnswer, ApiError> {
    state.logins.admit(address, &credentials.username)?;
    let user = state.service.store().user(&credentials.username).await?;
    let hash = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let matches = state.logins.verify(credentials.password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        state.logins.failed(address, &credentials.username);
        tracing::info!(user = %shown_name(&credentials.username), "Login refused.");
        return Err(wrong_credentials());
    };
    let ttl = state.auth.token_ttl;
    let issued = issue_token(
        state.service.store().as_ref(),
        TokenRequest {
            name: format!("login {}", user.name),
            role: user.role,
            kind: TokenKind::Session,
            user: Some(user.name.clone()),
            ttl: Some(ttl),
        },
    )
    .await?;
    tracing::info!(user = %shown_name(&user.name), "Logged in.");
    Ok(LoginAnswer {
        access_token: issued.secret,
        token_type: "bearer",
        expires_in: ttl.as_secs(),
    })
}

/// Ends the session of `token`: it is revoked, and works no more.
pub(crate) async fn end_session(state: &AppState, token: &str) -> Result<(), ApiError> {
    let store = state.service.store();
    if let Some(record) = store.token_by_digest(&digest(token)).await?
        && record.kind == TokenKind::Session
    {
        store.revoke_token(&record.id).await?;
        let user = record.user.as_deref().map(shown_name).unwrap_or_default();
        tracing::info!(user = %user, "Logged out.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers_are_read_strictly() {
        #[track_caller]
        fn case(value: Option<&str>, expected: Result<Option<&str>, ()>) {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::AUTHORIZATION, v.parse().unwrap());
            }
            assert_eq!(bearer(&headers).map_err(|_| ()), expected);
        }
        case(None, Ok(None));
        case(Some("Bearer abc"), Ok(Some("abc")));
        case(Some("bearer  abc "), Ok(Some("abc")));
        case(Some("Basic abc"), Err(()));
        case(Some("Bearer"), Err(()));
        case(Some("Bearer "), Err(()));
    }
}
