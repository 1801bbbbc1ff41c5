//! The `sql` step kind of octoflow: statements against named connections to PostgreSQL and
//! MySQL/MariaDB.
//!
//! Connections are named in the node's config (`connections:`); each opens a pool at its
//! first use, so loading or validating a flow never dials a database. Values reach a
//! statement only as bound parameters, never spliced into its text, and rows come back as
//! JSON objects with faithful types (see [`Sql`] and `docs/step-kinds/sql.md`).
//!
//! A binary registers the kind with its connections:
//! ```
//! use std::collections::BTreeMap;
//! use octoflow_core::step::Registry;
//! use octoflow_sql::{ConnectionConfig, Connections, Sql};
//!
//! let mut configs = BTreeMap::new();
//! configs.insert(
//!     "warehouse".to_owned(),
//!     ConnectionConfig::new("postgres://reader:{{ secrets.wh.password }}@127.0.0.1/db"),
//! );
//! let mut registry = Registry::with_core_kinds();
//! registry.register(Sql::new(Connections::new(configs)));
//! assert!(registry.contains("sql"));
//! ```

mod backend;
mod cancel;
mod connections;
mod error;
mod kind;
mod mysql;
mod numeric;
mod output;
mod postgres;
mod rows;
mod session;
mod settings;
mod values;

pub use connections::{ConnectionConfig, Connections};
pub use kind::Sql;
pub use settings::SqlSettings;
