//! Small helpers for what the commands print: exit codes, durations, and stdout writes that
//! report a closed pipe as an error instead of panicking (so `octoflow … | head` exits 0).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Exit code 1: the thing asked about failed (a run, a validation).
pub(crate) fn failure() -> ExitCode {
    ExitCode::from(1)
}

/// Whether an error comes from writing to a closed pipe.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Writes text to stdout, all of it, and flushes.
pub(crate) fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A line for the person watching, on stderr (a closed stderr is ignored).
pub(crate) fn note(text: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// A duration for people: `12ms`, `1.2s`, `2m 3s`, `1h 2m`.
pub(crate) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        60_000..3_600_000 => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(human_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(human_duration(Duration::from_secs(123)), "2m 3s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h 2m");
    }

    #[test]
    fn broken_pipes_are_found_in_the_chain() {
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
