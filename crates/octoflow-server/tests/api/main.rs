//! HTTP API tests, driven through the router without a socket (`tower::ServiceExt::oneshot`)
//! over a `MemoryStore` and a temp flows directory. Error bodies are pinned with inline insta
//! snapshots.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod auth;
mod browser;
mod errors;
mod flows;
mod hooks;
mod hooks_auth;
mod hooks_deferred;
mod hooks_limits;
mod hooks_upload;
mod openapi;
mod runs;
mod schedules;
mod support;
mod ui;
mod ui_admin;
mod ui_runs;
