//! Browser sessions and forms: the login form trades a user name and password for a session
//! token kept in a cookie (`HttpOnly`, `SameSite=Strict`, `Path=/ui`, `Secure` behind
//! https), and every form carries a CSRF token that a page of another site cannot know.
//!
//! The CSRF token is a digest of the session token and of a random value this browser holds
//! in a second cookie (`octoflow_csrf`): bound to the session when there is one, and still
//! unguessable on an open server or on the login form, where there is none. Nodes keep no
//! state for it, so any node of a cluster checks a form another node served.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
const SESSION: &str = "octoflow_session";
/// The CSRF seed cookie's name.
const SEED: &str = "octoflow_csrf";

/// What a browser's cookies say about it.
#[derive(Debug, Clone)]
pub(super) struct Browser {
    /// The session token, when logged in.
    pub(super) session: Option<String>,
    /// The browser's CSRF seed: its cookie's, or a new one to set.
    seed: String,
    /// Whether `seed` is new (the answer sets its cookie).
    new_seed: bool,
}

impl Browser {
    /// The browser of a request.
    pub(super) fn of(headers: &HeaderMap) -> Self {
        let session = cookie(headers, SESSION).map(ToOwned::to_owned);
        match cookie(headers, SEED) {
            Some(seed) if seed.len() == 32 && seed.bytes().all(|b| b.is_ascii_hexdigit()) => Self {
                session,
                seed: seed.to_owned(),
                new_seed: false,
            },
            _ => Self {
                session,
                seed: uuid::Uuid::new_v4().simple().to_string(),
                new_seed: true,
            },
        }
    }

    /// The CSRF token forms of this browser carry.
    pub(super) fn csrf(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(b"octoflow-csrf\0");
        digest.update(self.session.as_deref().unwrap_or("").as_bytes());
        digest.update(b"\0");
        digest.update(self.seed.as_bytes());
        hex::encode(&digest.finalize()[..16])
    }

    /// Whether a form's `csrf` field is this browser's token (a new seed never matches:
    /// the form was not served to this browser).
    pub(super) fn csrf_matches(&self, sent: &str) -> bool {
        !self.new_seed && bool::from(self.csrf().as_bytes().ct_eq(sent.as_bytes()))
    }

    /// The `Set-Cookie` headers an answer to this browser needs: the seed when new.
    pub(super) fn cookies_to_set(&self, secure: bool) -> Vec<HeaderValue> {
        if !self.new_seed {
            return Vec::new();
        }
        set(SEED, &self.seed, None, secure).into_iter().collect()
    }
}

/// `Set-Cookie` for a new session of `max_age` seconds.
pub(super) fn start_session(token: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    set(SESSION, token, Some(max_age), secure)
}

/// `Set-Cookie` that ends the session in the browser.
pub(super) fn end_session(secure: bool) -> Option<HeaderValue> {
    set(SESSION, "", Some(0), secure)
}

/// Adds `cookies` to `headers` as `Set-Cookie`.
pub(super) fn append(headers: &mut HeaderMap, cookies: impl IntoIterator<Item = HeaderValue>) {
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
}

fn set(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> Option<HeaderValue> {
    let age = max_age
        .map(|age| format!("; Max-Age={age}"))
        .unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict{age}{secure}");
    HeaderValue::from_str(&text).ok()
}

/// The value of cookie `name` among the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(text: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(text).unwrap());
        headers
    }

    #[test]
    fn a_form_matches_only_the_browser_and_session_it_was_served_to() {
        let seed = "0123456789abcdef0123456789abcdef";
        let browser = Browser::of(&with_cookies(&format!(
            "a=b; octoflow_session=oft_x; octoflow_csrf={seed}"
        )));
        assert_eq!(browser.session.as_deref(), Some("oft_x"));
        let token = browser.csrf();
        assert!(browser.csrf_matches(&token));
        assert!(!browser.csrf_matches("0"));
        let other_session = Browser::of(&with_cookies(&format!(
            "octoflow_session=oft_y; octoflow_csrf={seed}"
        )));
        assert!(!other_session.csrf_matches(&token));
        let no_seed = Browser::of(&with_cookies("octoflow_session=oft_x"));
        assert!(
            !no_seed.csrf_matches(&no_seed.csrf()),
            "a new seed never matches"
        );
        assert_eq!(no_seed.cookies_to_set(false).len(), 1);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_https() {
        let cookie = start_session("oft_x", 900, true).unwrap();
        let text = cookie.to_str().unwrap();
        for part in [
            "octoflow_session=oft_x",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/ui",
            "Max-Age=900",
            "Secure",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let plain = start_session("oft_x", 900, false).unwrap();
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}
