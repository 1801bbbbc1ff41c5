//! Who may call a webhook (`auth:` of the trigger, SPEC §7):
//!
//! - `none`: anyone;
//! - `basic: {secret}`: HTTP basic auth against a `credential` secret (username and password);
//! - `bearer`: an octoflow token (an API or session token, or `OCTOFLOW_API_TOKEN`) with at
//!   least the `operator` role, checked as the API checks it;
//! - `token: {secret}`: a shared token in `Authorization: Bearer`, `X-Token` or `?token=`;
//! - `hmac: {secret, header}`: an HMAC-SHA256 of the raw body in `header`, as hex, with or
//!   without GitHub's `sha256=` prefix; checked once the body is read;
//! - `jwt: {secret, audience, algorithm}`: a JWT in `Authorization: Bearer`, HS256 (the secret
//!   is the key, as text or base64) or RS256 (the secret is the PEM public key), with `exp`
//!   required and `aud` checked when `audience` is set.
//!
//! Every comparison of a secret is constant-time. A secret the trigger names but
//! `secrets.yml` lacks is the server's fault: an internal error, logged.

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use octoflow_core::flow::WebhookAuth;
use octoflow_core::secrets::Secrets;
use octoflow_core::store::Role;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::Refused;
use crate::AppState;
use crate::error::{ApiError, Code};
use crate::jwt::JwtCheck;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What the check found: who called, and the body check still to do (`hmac`).
#[derive(Default)]
pub(super) struct Checked {
    /// The caller: the basic-auth user, the token's name, the JWT's `sub`.
    pub(super) by: Option<String>,
    /// The signature to check against the raw body.
    pub(super) body: Option<BodyMac>,
}

/// An HMAC-SHA256 of the body being read, and the signature it must match.
pub(super) struct BodyMac {
    mac: HmacSha256,
    expected: Vec<u8>,
}

impl BodyMac {
    /// Feeds a chunk of the raw body.
    pub(super) fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Checks the signature of the whole body (constant-time).
    pub(super) fn verify(self) -> Result<(), Refused> {
        self.mac
            .verify_slice(&self.expected)
            .map_err(|_| Refused::unauthenticated("the body's signature does not match", None))
    }
}

/// Checks the caller of a webhook before its body is read.
pub(super) async fn check(
    app: &AppState,
    auth: &WebhookAuth,
    parts: &Parts,
    query: &[(String, String)],
) -> Result<Checked, Refused> {
    let secrets = app.service.engine().secrets();
    match auth {
        WebhookAuth::None => Ok(Checked::default()),
        WebhookAuth::Bearer => {
            let caller = crate::auth::caller(app, &Method::POST, &parts.headers)
                .await
                .map_err(|e| Refused::challenge(e, "Bearer"))?;
            if !caller.role.allows(Role::Operator) {
                return Err(ApiError::new(
                    Code::Forbidden,
                    format!(
                        "this webhook needs the `operator` role; the token has `{}`",
                        caller.role
                    ),
                )
                .into());
            }
            Ok(Checked {
                by: caller.name,
                body: None,
            })
        }
        WebhookAuth::Basic { secret } => basic(secrets, secret, &parts.headers),
        WebhookAuth::Token { secret } => token(secrets, secret, &parts.headers, query),
        WebhookAuth::Hmac { secret, header } => hmac(secrets, secret, header, &parts.headers),
        WebhookAuth::Jwt {
            secret,
            audience,
            algorithm,
        } => jwt(
            secrets,
            secret,
            audience.as_deref(),
            algorithm.as_deref(),
            &parts.headers,
        ),
    }
}

/// The value of a secret that is one value: a `token`, `value`, `env` or `api-key` secret.
fn secret_value<'s>(secrets: &'s Secrets, name: &'s str) -> Result<&'s str, Refused> {
    secrets
        .lookup(name)
        .map(|(_, value)| value.expose().as_str())
        .map_err(|_| missing_secret(name))
}

fn missing_secret(name: &str) -> Refused {
    ApiError::internal(format!(
        "the webhook's auth names secret `{name}`, which is not in secrets.yml"
    ))
    .into()
}

fn same(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// `Authorization: <scheme> <value>`, the scheme in any case.
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (given, rest) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| rest.trim())
        .filter(|r| !r.is_empty())
}

fn basic(secrets: &Secrets, name: &str, headers: &HeaderMap) -> Result<Checked, Refused> {
    let (Some(user), Some(password)) = (
        secrets.plain_field(name, "username"),
        secrets.field(name, "password"),
    ) else {
        return Err(missing_secret(name));
    };
    let challenge = Some("Basic realm=\"octoflow\"");
    let Some(encoded) = authorization(headers, "basic") else {
        return Err(Refused::unauthenticated(
            "missing credentials; send `Authorization: Basic <base64 of user:password>`",
            challenge,
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some((given_user, given_password)) = decoded.as_deref().and_then(|d| d.split_once(':'))
    else {
        return Err(Refused::unauthenticated(
            "malformed basic credentials",
            challenge,
        ));
    };
    // Both compared, whichever differs, so the time says nothing about which one.
    let user_ok = same(given_user, user);
    let password_ok = same(given_password, password.expose());
    if user_ok && password_ok {
        Ok(Checked {
            by: Some(user.to_owned()),
            body: None,
        })
    } else {
        Err(Refused::unauthenticated(
            "wrong username or password",
            challenge,
        ))
    }
}

fn token(
    secrets: &Secrets,
    name: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Checked, Refused> {
    let expected = secret_value(secrets, name)?;
    let given = authorization(headers, "bearer")
        .or_else(|| headers.get("x-token").and_then(|v| v.to_str().ok()))
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.as_str())
        });
    match given {
        None => Err(Refused::unauthenticated(
            "missing token; send `Authorization: Bearer <token>`, `X-Token: <token>` or `?token=<token>`",
            Some("Bearer"),
        )),
        Some(given) if same(given.trim(), expected) => Ok(Checked::default()),
        Some(_) => Err(Refused::unauthenticated("wrong token", Some("Bearer"))),
    }
}

fn hmac(
    secrets: &Secrets,
    name: &str,
    header: &str,
    headers: &HeaderMap,
) -> Result<Checked, Refused> {
    let key = secret_value(secrets, name)?;
    let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) else {
        return Err(Refused::unauthenticated(
            format!("missing signature header `{header}`"),
            None,
        ));
    };
    let value = value.trim();
    let hex_text = value.strip_prefix("sha256=").unwrap_or(value);
    let Ok(expected) = hex::decode(hex_text) else {
        return Err(Refused::unauthenticated(
            format!("malformed signature in `{header}`; expected `sha256=<hex>`"),
            None,
        ));
    };
    let mac = HmacSha256::new_from_slice(key.as_bytes()).map_err(ApiError::internal)?;
    Ok(Checked {
        by: None,
        body: Some(BodyMac { mac, expected }),
    })
}

fn jwt(
    secrets: &Secrets,
    name: &str,
    audience: Option<&str>,
    algorithm: Option<&str>,
    headers: &HeaderMap,
) -> Result<Checked, Refused> {
    let secret = secret_value(secrets, name)?;
    let Some(token) = authorization(headers, "bearer") else {
        return Err(Refused::unauthenticated(
            "missing token; send `Authorization: Bearer <JWT>`",
            Some("Bearer"),
        ));
    };
    let check = JwtCheck::new(
        Some(secret),
        &[algorithm.unwrap_or("HS256")],
        audience,
        None,
    )
    .map_err(|e| ApiError::internal(format!("secret `{name}`: {e}")))?;
    match check.verify(token) {
        Ok(claims) => Ok(Checked {
            by: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            body: None,
        }),
        Err(reason) => Err(Refused::unauthenticated(reason, Some("Bearer"))),
    }
}
