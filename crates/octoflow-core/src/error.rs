//! The one place where errors become text.

use std::error::Error;

/// Joins an error and its sources with `": "`, outermost first.
///
/// Every message a user sees is produced here, so causes are never printed twice.
pub fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The text a panic was raised with (`panic!("…")` or a formatted one).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A boxed error that crosses a component seam.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read flow file `a.yml`")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_causes() {
        let err = Outer(std::io::Error::other("permission denied"));
        assert_eq!(
            chain(&err),
            "cannot read flow file `a.yml`: permission denied"
        );
    }
}
