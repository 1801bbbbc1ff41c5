//! Tests that need a service (`PostgreSQL`, a broker): its URL from an environment variable
//! with a default, and what to do when it cannot be reached — skip with a one-line reason
//! locally, fail when `CI` or `OCTOFLOW_REQUIRE_SERVICES` is set.

use std::time::Duration;

/// The URL of a service: the variable `var` when set, else `default`.
pub fn url(var: &str, default: &str) -> String {
    #[allow(clippy::disallowed_methods)] // tests read their own settings
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Whether services must be reachable: `CI` or `OCTOFLOW_REQUIRE_SERVICES` is set.
pub fn required() -> bool {
    #[allow(clippy::disallowed_methods)] // tests read their own settings
    let set = |var| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    set("CI") || set("OCTOFLOW_REQUIRE_SERVICES")
}

/// What a test does with a service it could not reach (`why`, naming the variable):
/// `None` after printing one line saying the test is skipped — or, when services are
/// [`required`], a panic.
///
/// # Panics
/// When services are required.
pub fn unreachable<T>(service: &str, var: &str, why: &str) -> Option<T> {
    assert!(
        !required(),
        "{service} is required (CI or OCTOFLOW_REQUIRE_SERVICES) but unreachable: {why}; set {var}"
    );
    #[allow(clippy::print_stdout)] // the one line a skipped test leaves in its output
    {
        println!("skipped: {service} unreachable ({why}); set {var} to run this test");
    }
    None
}

/// Whether a TCP server answers at `host:port` within a second.
pub async fn answers(address: &str) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(address)
        )
        .await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_service_is_skipped_locally_and_fails_under_ci() {
        // Port 1 on loopback: nothing listens there.
        assert!(!answers("127.0.0.1:1").await);
        let outcome = std::panic::catch_unwind(|| {
            unreachable::<()>("Nothing", "OCTOFLOW_TEST_NOTHING_URL", "connection refused")
        });
        if required() {
            let panic = outcome.unwrap_err();
            let message = panic.downcast_ref::<String>().unwrap();
            assert!(
                message.contains("set OCTOFLOW_TEST_NOTHING_URL"),
                "{message}"
            );
        } else {
            assert_eq!(outcome.unwrap(), None);
        }
        assert_eq!(url("OCTOFLOW_TEST_NOTHING_URL", "tcp://x"), "tcp://x");
    }
}
