//! Redirects of a `rest` request. Within one origin (scheme, host and port) the client
//! follows them as they come; to another origin the step follows them itself, sending no
//! credentials there — not `Authorization`, `Cookie` or `Proxy-Authorization`, not a
//! secret's header (`X-API-Key`), not any header holding a secret. Never from https to
//! http, and at most [`MAX_REDIRECTS`] in all.

use std::borrow::Cow;

use octoflow_core::secrets::Redactor;
use octoflow_core::step::StepError;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, PROXY_AUTHORIZATION,
};
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Method, Request, Response, StatusCode, Url};

/// The most redirects one request follows.
pub(super) const MAX_REDIRECTS: usize = 10;

/// The client's policy: follow within an origin, stop at another (the step goes on), refuse
/// a downgrade to http and an eleventh hop.
pub(crate) fn policy() -> Policy {
    Policy::custom(|attempt: Attempt<'_>| {
        let Some(from) = attempt.previous().last().cloned() else {
            return attempt.follow();
        };
        if attempt.previous().len() > MAX_REDIRECTS {
            let message = too_many();
            return attempt.error(message);
        }
        if let Some(message) = downgrade(&from, attempt.url()) {
            return attempt.error(message);
        }
        if same_origin(&from, attempt.url()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

fn too_many() -> String {
    format!("more than {MAX_REDIRECTS} redirects")
}

/// Why a redirect from `from` to `to` is refused: from https to http.
fn downgrade(from: &Url, to: &Url) -> Option<String> {
    (from.scheme() == "https" && to.scheme() == "http").then(|| {
        format!(
            "refused a redirect from https to http (`{}`)",
            to.as_str().split('?').next().unwrap_or_default()
        )
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The request that follows `answer` — a redirect the client stopped at because it leads to
/// another origin — made from `sent` (the request that was answered, `None` when its body
/// cannot be sent twice): credentials dropped, the method and body as the status says.
/// `None` when the answer is no redirect to follow.
pub(super) fn next(
    sent: Option<&Request>,
    answer: &Response,
    redactor: &Redactor,
    hops: usize,
) -> Result<Option<Request>, StepError> {
    let status = answer.status();
    let keeps_method = matches!(
        status,
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
    );
    if !(keeps_method
        || matches!(
            status,
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER
        ))
    {
        return Ok(None);
    }
    let Some(location) = answer.headers().get(LOCATION) else {
        return Ok(None);
    };
    let refused = |message: String| StepError::failed(message);
    if hops >= MAX_REDIRECTS {
        return Err(refused(too_many()));
    }
    let from = answer.url();
    let to = location
        .to_str()
        .ok()
        .and_then(|l| from.join(l).ok())
        .ok_or_else(|| refused("a redirect to an invalid `Location`".to_owned()))?;
    if let Some(message) = downgrade(from, &to) {
        return Err(refused(message));
    }
    let Some(sent) = sent else {
        return Err(refused(
            "cannot follow a redirect: the request's body cannot be sent again".to_owned(),
        ));
    };
    let method = match (status, sent.method()) {
        (_, &Method::HEAD) => Method::HEAD,
        (_, method) if keeps_method => method.clone(),
        (StatusCode::SEE_OTHER, _) | (_, &Method::POST) => Method::GET,
        (_, method) => method.clone(),
    };
    let mut next = Request::new(method.clone(), to);
    *next.headers_mut() = without_credentials(sent.headers(), redactor);
    if method == *sent.method() {
        *next.body_mut() = sent.try_clone().and_then(|mut r| r.body_mut().take());
    } else {
        next.headers_mut().remove(CONTENT_TYPE);
        next.headers_mut().remove(CONTENT_LENGTH);
    }
    Ok(Some(next))
}

/// `headers` without what could let another host act as the caller.
fn without_credentials(headers: &HeaderMap, redactor: &Redactor) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, value)| {
            let credential = [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION].contains(name)
                || value.is_sensitive()
                || value
                    .to_str()
                    .is_ok_and(|text| matches!(redactor.text(text), Cow::Owned(_)));
            !credential
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn credentials_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        let mut key = HeaderValue::from_static("k-1");
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
        headers.insert(
            "x-note",
            HeaderValue::from_static("has tok-9-secret inside"),
        );
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let kept = without_credentials(&headers, &Redactor::new(["tok-9-secret".to_owned()]));
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept.contains_key("accept"));
    }

    #[test]
    fn origins_and_downgrades() {
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(same_origin(&url("https://a/x"), &url("https://a:443/y")));
        assert!(!same_origin(&url("https://a/x"), &url("https://b/x")));
        assert!(!same_origin(&url("http://a/x"), &url("https://a/x")));
        assert!(downgrade(&url("https://a/"), &url("http://a/?t=1")).is_some());
        assert!(downgrade(&url("http://a/"), &url("https://a/")).is_none());
    }
}
