//! The route table: every route of the API in one list — method, path, the role it needs and
//! its handler. The router is built from it, and a test checks the `OpenAPI` document against
//! it, so a route cannot be served undocumented or documented unserved.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::api::{callback, flows, health, locks, runs, schedules, state, tracker, users};
use crate::auth::{self, Access};
use crate::browser::{self, Body};
use crate::{Shared, openapi};

/// One route of the API.
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path, in axum's syntax (`{name}`, `{*path}`).
    pub path: &'static str,
    /// The role it needs.
    pub access: Access,
    /// The body a write takes (its content type is checked before anything else).
    pub body: Body,
    handler: fn(MethodFilter) -> MethodRouter<Shared>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

macro_rules! route {
    ($method:ident $path:literal, $access:ident, $handler:path) => {
        route!($method $path, $access, None, $handler)
    };
    ($method:ident $path:literal, $access:ident, $body:ident, $handler:path) => {
        Route {
            method: Method::$method,
            path: $path,
            access: Access::$access,
            body: Body::$body,
            handler: |filter| on(filter, $handler),
        }
    };
}

static ROUTES: &[Route] = &[
    route!(GET "/healthz", Open, health::healthz),
    route!(GET "/readyz", Open, health::readyz),
    route!(GET "/metrics", Open, health::metrics),
    route!(GET "/api/v1/openapi.json", Viewer, openapi::serve),
    route!(POST "/api/v1/auth/login", Open, JsonOrForm, auth::login),
    route!(GET "/api/v1/flows", Viewer, flows::list),
    route!(GET "/api/v1/flows/{name}", Viewer, flows::show),
    route!(PUT "/api/v1/flows/{name}", Admin, Yaml, flows::put),
    route!(DELETE "/api/v1/flows/{name}", Admin, flows::delete),
    route!(POST "/api/v1/flows/{name}/runs", Operator, Json, flows::start),
    route!(POST "/api/v1/flows/{name}/dryrun", Operator, Json, flows::dry_run),
    route!(POST "/api/v1/validate", Viewer, Yaml, flows::validate),
    route!(GET "/api/v1/runs", Viewer, runs::list),
    route!(GET "/api/v1/runs/{id}", Viewer, runs::show),
    route!(GET "/api/v1/runs/{id}/logs", Viewer, runs::logs),
    route!(GET "/api/v1/runs/{id}/files/{*path}", Viewer, runs::file),
    route!(POST "/api/v1/runs/{id}/cancel", Operator, Json, runs::cancel),
    route!(POST "/api/v1/runs/{id}/retry", Operator, Json, runs::retry),
    route!(GET "/api/v1/runs/{id}/tracker", Viewer, tracker::tracker),
    route!(PATCH "/api/v1/runs/{id}/context", Operator, Json, tracker::update_context),
    route!(POST "/api/v1/runs/{id}/callback", Open, Json, callback::report),
    route!(GET "/api/v1/schedules", Viewer, schedules::list),
    route!(POST "/api/v1/schedules", Admin, Json, schedules::add),
    route!(POST "/api/v1/schedules/{id}/pause", Admin, Json, schedules::pause),
    route!(POST "/api/v1/schedules/{id}/resume", Admin, Json, schedules::resume),
    route!(DELETE "/api/v1/schedules/{id}", Admin, schedules::remove),
    route!(GET "/api/v1/locks", Viewer, locks::list),
    route!(DELETE "/api/v1/locks", Operator, locks::release_all),
    route!(DELETE "/api/v1/locks/{key}", Operator, locks::release),
    route!(GET "/api/v1/state/{flow}", Viewer, state::show),
    route!(PUT "/api/v1/state/{flow}/{key}", Admin, Json, state::put),
    route!(GET "/api/v1/users", Admin, users::list),
    route!(PUT "/api/v1/users/{name}", Admin, Json, users::put),
    route!(DELETE "/api/v1/users/{name}", Admin, users::delete),
    route!(GET "/api/v1/tokens", Admin, users::tokens),
    route!(POST "/api/v1/tokens", Admin, Json, users::create_token),
    route!(DELETE "/api/v1/tokens/{id}", Admin, users::revoke_token),
];

/// Every route of the API.
pub fn routes() -> &'static [Route] {
    ROUTES
}

/// The router of [`ROUTES`], each route behind the role check it needs. Other paths are
/// the webhooks' (see `hooks`), which answer `404` for paths no hook has.
/// Routes that take a few fields only, under [`BodyLimits::small`](crate::BodyLimits):
/// anyone may call them.
const SMALL_BODIES: &[&str] = &["/api/v1/auth/login", "/api/v1/runs/{id}/callback"];

pub(crate) fn build(shared: &Shared) -> Router<Shared> {
    let mut router = Router::new();
    for route in ROUTES {
        let mut method_router = (route.handler)(filter(&route.method));
        if route.access != Access::Open {
            method_router = method_router.route_layer(axum::middleware::from_fn_with_state(
                (shared.clone(), route.access),
                auth::guard,
            ));
        }
        // Outermost: the host and the content type are checked before the token.
        if route.body != Body::None {
            method_router = method_router.route_layer(axum::middleware::from_fn_with_state(
                route.body,
                browser::require_content_type,
            ));
        }
        if SMALL_BODIES.contains(&route.path) {
            method_router = method_router.layer(DefaultBodyLimit::max(shared.limits.small));
        }
        if route.path.starts_with("/api/") {
            method_router = method_router.route_layer(axum::middleware::from_fn_with_state(
                shared.hosts.clone(),
                browser::require_own_host,
            ));
        }
        router = router.route(route.path, method_router);
    }
    router
}

fn filter(method: &Method) -> MethodFilter {
    match *method {
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        Method::PATCH => MethodFilter::PATCH,
        _ => MethodFilter::GET,
    }
}
