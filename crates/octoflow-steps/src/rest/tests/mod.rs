//! Tests of the `rest` kind through the real engine, against a real HTTP peer: an axum
//! server on `127.0.0.1:0` started by each test. Methods, query, headers, bodies, forms,
//! multipart uploads, authentication, `expect`, `ignore_errors`, retries, timeout, cancel,
//! `save_to` of a large streamed body, `full_response`, redirects, and load-time problems;
//! and against a real https peer (`tls`): a redirect from https to http is refused.

mod peer;
mod redirects;
mod requests;
mod responses;
mod tls;
