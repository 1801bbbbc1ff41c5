//! The UI's static files, embedded in the binary and served under a name that holds a hash
//! of their content (`/ui/assets/app.<hash>.css`), so browsers may keep them for a year: a
//! new build with a changed file changes its name.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The stylesheet.
const APP_CSS: &str = include_str!("assets/app.css");

/// The stylesheet's served name, `app.<first 12 hex digits of its SHA-256>.css`.
pub(super) fn css_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let digest = Sha256::digest(APP_CSS.as_bytes());
        format!("app.{}.css", hex::encode(&digest[..6]))
    })
}

/// The stylesheet's path, for pages to link.
pub(super) fn css_path() -> String {
    format!("/ui/assets/{}", css_name())
}

/// `GET /ui/assets/{file}`: an embedded file under its hashed name, cached for a year.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    if file != css_name() {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        APP_CSS,
    )
        .into_response()
}
