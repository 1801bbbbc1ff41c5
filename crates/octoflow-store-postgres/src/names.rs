//! Names derived from the store's schema: the notification channel and the keys of advisory
//! locks.
//!
//! `NOTIFY` channels and advisory locks belong to the whole database, not to a schema, so
//! each carries the schema's name: stores in two schemas of one database (tests, or two
//! octoflow installations) never wake or block each other. Lock keys are text, hashed to
//! a lock id by the server (`hashtextextended`); two keys hashing alike only make two
//! unrelated operations take turns, never break a rule.

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`).
const MAX_IDENTIFIER: usize = 63;

/// The schema the store keeps its tables in, and what follows from it.
#[derive(Debug)]
pub(crate) struct Names {
    /// The schema.
    pub(crate) schema: String,
    /// The channel of wake-ups: `octoflow_<schema>`, or a hash of the schema's name when
    /// that is too long for an identifier.
    pub(crate) channel: String,
}

impl Names {
    pub(crate) fn new(schema: String) -> Self {
        let readable = format!("octoflow_{schema}");
        let channel = if readable.len() <= MAX_IDENTIFIER {
            readable
        } else {
            format!("octoflow_{:016x}", fnv1a(schema.as_bytes()))
        };
        Self { schema, channel }
    }

    /// The key of the lock that admissions of runs with concurrency key `key` take, so that
    /// each counts the holders the one before it recorded.
    pub(crate) fn admission_lock(&self, key: &str) -> String {
        format!("octoflow:{}:admit:{key}", self.schema)
    }

    /// The key of the lock that admissions with idempotency key `key` for `flow` take.
    pub(crate) fn idempotency_lock(&self, flow: &str, key: &str) -> String {
        format!("octoflow:{}:idempotency:{flow}:{key}", self.schema)
    }

    /// The prefix of the keys of the locks claims take per concurrency key (the statement
    /// appends the key).
    pub(crate) fn claim_lock_prefix(&self) -> String {
        format!("octoflow:{}:claim:", self.schema)
    }

    /// The prefix of the keys of the locks log appends take per run (the statement appends
    /// the run id).
    pub(crate) fn log_lock_prefix(&self) -> String {
        format!("octoflow:{}:logs:", self.schema)
    }

    /// The key of the lock the node that fires schedules holds for as long as it does.
    pub(crate) fn scheduler_lock(&self) -> String {
        format!("octoflow:{}:scheduler", self.schema)
    }

    /// The key of the lock that bringing `schema` up to date takes.
    pub(crate) fn migration_lock(schema: &str) -> String {
        format!("octoflow:{schema}:migrate")
    }
}

/// Whether `name` is a schema name the store accepts: an unquoted identifier's characters
/// (ASCII letters, digits, `_`), not starting with a digit, at most 63 bytes.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= MAX_IDENTIFIER
}

/// A schema name quoted as an identifier (it is a plain identifier, so quoting only keeps its
/// case).
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The 64-bit FNV-1a hash: stable across builds and platforms, as a channel name must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_follow_the_schema_and_fit_an_identifier() {
        assert_eq!(Names::new("public".to_owned()).channel, "octoflow_public");
        let long = "s".repeat(63);
        let channel = Names::new(long.clone()).channel;
        assert!(channel.len() <= MAX_IDENTIFIER, "{channel}");
        assert_eq!(channel, Names::new(long).channel, "stable");
        assert_ne!(channel, Names::new("t".repeat(63)).channel);
    }

    #[test]
    fn plain_identifiers() {
        for good in ["octoflow", "_x", "Oft_1", &"a".repeat(63)] {
            assert!(is_plain_identifier(good), "{good}");
        }
        for bad in ["", "1abc", "a-b", "a b", "a\"b", "é", &"a".repeat(64)] {
            assert!(!is_plain_identifier(bad), "{bad}");
        }
        assert_eq!(quoted("Oft"), "\"Oft\"");
    }

    #[test]
    fn fnv_is_the_reference_hash() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
