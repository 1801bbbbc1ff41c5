//! The `OpenAPI` 3.1 document of the API, served at `GET /api/v1/openapi.json`.
//!
//! Every handler carries `#[utoipa::path]`; [`ApiDoc`] lists them all. A test compares the
//! document's operations with [`routes`](crate::routes) both ways.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{callback, flows, health, locks, logs, runs, schedules, state, tracker, users};
use crate::{auth, error};

/// The API's `OpenAPI` document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "octoflow",
        description = "Run and watch declarative YAML flows. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}` (see `docs/errors.md`).",
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        serve,
        auth::login,
        flows::list,
        flows::show,
        flows::put,
        flows::delete,
        flows::start,
        flows::dry_run,
        flows::validate,
        runs::list,
        runs::show,
        logs::logs,
        runs::file,
        runs::cancel,
        runs::retry,
        tracker::tracker,
        tracker::update_context,
        callback::report,
        schedules::list,
        schedules::add,
        schedules::pause,
        schedules::resume,
        schedules::remove,
        locks::list,
        locks::release_all,
        locks::release,
        state::show,
        state::put,
        users::list,
        users::put,
        users::delete,
        users::tokens,
        users::create_token,
        users::revoke_token,
    ),
    components(schemas(error::Code, error::ErrorBody, error::ErrorInfo)),
    modifiers(&BearerScheme),
    tags(
        (name = "flows", description = "Flow files, runs started from them, dry runs, validation"),
        (name = "runs", description = "Runs, their logs, files, trackers and callbacks"),
        (name = "schedules", description = "Schedules of the flow files and of the API, paused, resumed, added and removed"),
        (name = "locks", description = "Concurrency keys held by running runs"),
        (name = "state", description = "Each flow's key/value state"),
        (name = "auth", description = "Logging in"),
        (name = "access", description = "Users and API tokens"),
        (name = "health", description = "Probes and metrics"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme the operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `POST /api/v1/auth/login`, `octoflow token create` or `OCTOFLOW_API_TOKEN`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text, made once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    doc.to_pretty_json().unwrap_or_default()
});

/// The document, for tests and tools.
pub fn document() -> &'static str {
    &DOCUMENT
}

/// Serves this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn serve() -> Response {
    let mut response = DOCUMENT.as_str().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
