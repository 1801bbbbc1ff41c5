//! The `OpenAPI` 3.1 document of the API, served at `GET /api/v1/openapi.json`.
//!
//! Every handler carries `#[utoipa::path]`; [`ApiDoc`] lists them all. A test compares the
//! document's operations with [`routes`](crate::routes) both ways.

use std::sync::LazyLock;

use axum::http::Method;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::api::{callback, flows, health, locks, logs, runs, schedules, state, tracker, users};
use crate::browser::Body;
use crate::routes::{Route, routes};
use crate::{Access, auth, error};

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
    modifiers(&BearerScheme, &CommonAnswers),
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

/// Adds to each operation the error answers every route of its kind can give, from the
/// route table: a bad request or `Host` (400), a server fault (500) or an unreachable store
/// (503) anywhere; a missing or wrong token (401) or a low role (403) where a token is
/// needed; a body too large (413) or of the wrong type (415) where a body is read; too many
/// attempts (429) at the login.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::HttpMethod;

        let methods = [
            (HttpMethod::Get, Method::GET),
            (HttpMethod::Post, Method::POST),
            (HttpMethod::Put, Method::PUT),
            (HttpMethod::Patch, Method::PATCH),
            (HttpMethod::Delete, Method::DELETE),
        ];
        for (path, item) in &mut openapi.paths.paths {
            for (kind, method) in &methods {
                let operation = match kind {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Put => item.put.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    _ => item.delete.as_mut(),
                };
                let (Some(operation), Some(route)) = (operation, route_of(method, path)) else {
                    continue;
                };
                let mut answers = vec![
                    ("400", "A bad request: a field, the query or the `Host`"),
                    (
                        "500",
                        "A fault of the server; the answer carries a request id",
                    ),
                    ("503", "The store cannot be reached now; try again"),
                ];
                if route.access != Access::Open {
                    answers.push(("401", "No token, or a wrong, expired or revoked one"));
                    answers.push(("403", "The token's role is too low"));
                }
                if route.body != Body::None {
                    answers.push(("413", "The body is larger than the route takes"));
                    answers.push(("415", "The body is not of a content type the route takes"));
                }
                if route.path == "/api/v1/auth/login" {
                    answers.push(("429", "Too many failed logins lately; see `Retry-After`"));
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in answers {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_answer(description));
                }
            }
        }
    }
}

/// The route of the table the document's `path` and `method` name.
fn route_of(method: &Method, path: &str) -> Option<&'static Route> {
    routes()
        .iter()
        .find(|r| r.method == *method && r.path.replace('*', "") == path)
}

fn error_answer(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
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
