//! The UI's static files — one stylesheet, one small script — embedded in the binary and
//! served under names that hold a hash of their content (`/ui/assets/app.<hash>.css`), so
//! browsers may keep them for a year: a new build with a changed file changes its name.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    /// Its name before the hash: `app` and `.css` make `app.<hash>.css`.
    stem: &'static str,
    extension: &'static str,
    content_type: &'static str,
    content: &'static str,
}

const FILES: [Asset; 2] = [
    Asset {
        stem: "app",
        extension: "css",
        content_type: "text/css; charset=utf-8",
        content: include_str!("assets/app.css"),
    },
    Asset {
        stem: "app",
        extension: "js",
        content_type: "text/javascript; charset=utf-8",
        content: include_str!("assets/app.js"),
    },
];

/// Each file's served name, `<stem>.<first 12 hex digits of its SHA-256>.<extension>`, in
/// the order of `FILES`.
fn names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        FILES
            .iter()
            .map(|file| {
                let digest = Sha256::digest(file.content.as_bytes());
                format!(
                    "{}.{}.{}",
                    file.stem,
                    hex::encode(&digest[..6]),
                    file.extension
                )
            })
            .collect()
    })
}

/// The stylesheet's path, for pages to link.
pub(super) fn css_path() -> String {
    format!("/ui/assets/{}", names()[0])
}

/// The script's path, for pages to load.
pub(super) fn js_path() -> String {
    format!("/ui/assets/{}", names()[1])
}

/// `GET /ui/assets/{file}`: an embedded file under its hashed name, cached for a year.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let Some(found) = names().iter().position(|name| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let asset = &FILES[found];
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.content,
    )
        .into_response()
}
