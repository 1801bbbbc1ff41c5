//! URLs in messages: a sink's URL is shown without its user, password, query and fragment,
//! and a driver's error text is scrubbed of the password before anyone reads it.

/// The text put where a password was.
const MASK: &str = "***";

/// `scheme://host:port/path` of `url`: no user, password, query or fragment.
pub(crate) fn shown(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

/// The password written in `url` (`scheme://user:password@host`), if any.
fn password(url: &str) -> Option<&str> {
    let rest = url.trim().split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `text` with every trace of `url`'s credentials replaced: the URL itself by its shown
/// form, its password (as written and percent-decoded) by `***`.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut text = text.replace(url.trim(), &shown(url));
    if let Some(password) = password(url) {
        text = text.replace(password, MASK);
        let decoded = percent_decode(password);
        if decoded != password && !decoded.is_empty() {
            text = text.replace(&decoded, MASK);
        }
    }
    text
}

/// `%XX` sequences decoded (lossy for invalid UTF-8).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_lose_credentials_and_query() {
        assert_eq!(
            shown("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(shown("redis://:pw@h:6379/0?x=1#f"), "redis://h:6379/0");
        assert_eq!(shown("nats://h:4222"), "nats://h:4222");
        assert_eq!(shown("https://h/in?token=abc"), "https://h/in");
        assert_eq!(shown("u:p@h:1"), "h:1");
    }

    #[test]
    fn scrub_hides_the_password_in_any_form() {
        let url = "amqp://guest:p%40ss@h:5672/%2f";
        let text = format!("failed for {url}: bad password p@ss (p%40ss)");
        assert_eq!(
            scrub(&text, url),
            "failed for amqp://h:5672/%2f: bad password *** (***)"
        );
        assert_eq!(scrub("x", "nats://h:4222"), "x");
    }
}
