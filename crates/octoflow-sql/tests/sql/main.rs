//! The `sql` kind against the machine's real PostgreSQL and MariaDB: types, bound values,
//! writes and transactions, large results to a file, cancel, and connection errors.
//!
//! URLs come from `OCTOFLOW_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and `OCTOFLOW_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`). Each test
//! works in its own schema (PostgreSQL) or database (MariaDB), dropped at the end.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod cancel;
mod mysql;
mod postgres;
mod support;
