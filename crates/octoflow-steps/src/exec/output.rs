//! A process's output: read line by line into the step log as it arrives, kept (up to a cap)
//! for the result, and turned into the result or the error text at the end. A line too long
//! for the log goes in pieces, cut only in text already masked and only once what follows
//! the cut is long enough to hold any secret starting before it: no secret is cut in two.

use std::time::Duration;

use octoflow_core::secrets::Redactor;
use octoflow_core::step::StepLog;
use octoflow_core::step::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::process::Finished;
use super::settings::Parse;

/// The most of each stream kept for the result; past it, lines still go to the log.
pub(crate) const MAX_CAPTURE: usize = 16 * 1024 * 1024;
/// A longer line goes to the log in pieces of this size, so a stream without line breaks
/// cannot grow memory.
const MAX_LOG_LINE: usize = 64 * 1024;
/// How many lines of standard error the error text ends with.
const TAIL_LINES: usize = 10;
/// The most characters of standard error in the error text.
const TAIL_CHARS: usize = 2000;
const CHUNK: usize = 8192;

/// What was kept of one stream.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
    cap: usize,
}

impl Captured {
    fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            truncated: false,
            cap,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.bytes
                .extend_from_slice(chunk.get(..room).unwrap_or_default());
            self.truncated = true;
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    /// The text, invalid UTF-8 replaced.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Splits a byte stream into lines (without `\n` or `\r\n`), lossily decoded.
#[derive(Debug)]
struct Lines {
    pending: Vec<u8>,
    max: usize,
    redactor: Redactor,
}

impl Lines {
    fn new(max: usize, redactor: Redactor) -> Self {
        Self {
            pending: Vec::new(),
            max,
            redactor,
        }
    }

    /// The lines that `chunk` completes, and pieces of an over-long line.
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            let line = piece.strip_suffix(b"\n");
            self.pending.extend_from_slice(line.unwrap_or(piece));
            // The overlap: a secret starting before the cut ends within it.
            while self.pending.len() > self.max + self.redactor.longest() {
                if !self.redactor.is_empty() {
                    self.mask_pending();
                }
                // Never cut inside a UTF-8 character.
                let mut at = self.max;
                while at > 0 && self.pending.get(at).is_some_and(|b| b & 0xC0 == 0x80) {
                    at -= 1;
                }
                let at = if at == 0 { self.max } else { at };
                let head: Vec<u8> = self.pending.drain(..at).collect();
                out.push(String::from_utf8_lossy(&head).into_owned());
            }
            if line.is_some() {
                out.push(self.take());
            }
        }
        out
    }

    /// Masks the secrets in the pending text (its whole characters; a character still
    /// arriving stays as bytes).
    fn mask_pending(&mut self) {
        let whole = whole_characters(&self.pending);
        let text = String::from_utf8_lossy(self.pending.get(..whole).unwrap_or_default());
        if let std::borrow::Cow::Owned(masked) = self.redactor.text(&text) {
            let rest = self.pending.split_off(whole);
            self.pending = masked.into_bytes();
            self.pending.extend_from_slice(&rest);
        }
    }

    /// The last line when the stream did not end with a line break.
    fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        line
    }
}

/// How many leading bytes of `bytes` are whole UTF-8 characters (or invalid bytes): all of
/// them but a character whose last bytes have not arrived yet.
fn whole_characters(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let Some(&b) = bytes.get(len - back) else {
            break;
        };
        if b & 0xC0 != 0x80 {
            let needs = match b {
                0xF8.. => 1, // never a lead byte: an invalid one
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if back >= needs { len } else { len - back };
        }
    }
    len
}

/// One stream's reader: sends each line to the log and keeps the bytes.
async fn read_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: LogStream,
    log: StepLog,
    redactor: Redactor,
    stop: CancellationToken,
) -> (LogStream, Captured) {
    let mut captured = Captured::new(MAX_CAPTURE);
    let mut lines = Lines::new(MAX_LOG_LINE, redactor);
    let mut chunk = vec![0; CHUNK];
    loop {
        let n = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = reader.read(&mut chunk) => match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    log.note(format!("Cannot read {}: {e}.", stream.as_str())).await;
                    break;
                }
            },
        };
        let bytes = chunk.get(..n).unwrap_or_default();
        captured.push(bytes);
        for line in lines.push(bytes) {
            log.line(stream, line).await;
        }
    }
    if let Some(line) = lines.finish() {
        log.line(stream, line).await;
    }
    (stream, captured)
}

/// The two output readers of a process, as tasks that are aborted when this is dropped.
#[derive(Debug)]
pub(crate) struct Readers {
    tasks: JoinSet<(LogStream, Captured)>,
    stop: CancellationToken,
    stdout: Option<Captured>,
    stderr: Option<Captured>,
}

impl Readers {
    /// Starts reading both pipes.
    pub(crate) fn start<O, E>(
        stdout: Option<O>,
        stderr: Option<E>,
        log: &StepLog,
        redactor: &Redactor,
    ) -> Self
    where
        O: AsyncRead + Unpin + Send + 'static,
        E: AsyncRead + Unpin + Send + 'static,
    {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        if let Some(pipe) = stdout {
            tasks.spawn(read_stream(
                pipe,
                LogStream::Stdout,
                log.clone(),
                redactor.clone(),
                stop.clone(),
            ));
        }
        if let Some(pipe) = stderr {
            tasks.spawn(read_stream(
                pipe,
                LogStream::Stderr,
                log.clone(),
                redactor.clone(),
                stop.clone(),
            ));
        }
        Self {
            tasks,
            stop,
            stdout: None,
            stderr: None,
        }
    }

    /// Resolves when both streams are at their end. Cancel-safe.
    pub(crate) async fn finished(&mut self) {
        while let Some(done) = self.tasks.join_next().await {
            // A reader does not panic; were it to, its stream is simply empty.
            if let Ok((stream, captured)) = done {
                if stream == LogStream::Stdout {
                    self.stdout = Some(captured);
                } else {
                    self.stderr = Some(captured);
                }
            }
        }
    }

    /// Reads to the end, or for at most `within` before keeping what arrived.
    pub(crate) async fn drain(mut self, within: Duration, log: &StepLog) -> (Captured, Captured) {
        if tokio::time::timeout(within, self.finished()).await.is_err() {
            log.note("The output stayed open after the process group ended (a process left the group); stopped reading.")
                .await;
            self.stop.cancel();
            self.finished().await;
        }
        (
            self.stdout.unwrap_or_default(),
            self.stderr.unwrap_or_default(),
        )
    }
}

/// The step's result for a process that ended by itself, or the error it ended with.
pub(crate) fn outcome(
    done: &Finished,
    success_codes: &[i32],
    parse: Option<Parse>,
) -> Result<Value, StepError> {
    use std::os::unix::process::ExitStatusExt;

    let stderr = done.stderr.text();
    let Some(code) = done.status.code() else {
        let signal = done.status.signal().unwrap_or_default();
        let name = nix::sys::signal::Signal::try_from(signal)
            .map_or_else(|_| signal.to_string(), |s| s.to_string());
        return Err(StepError::failed(with_tail(
            format!("killed by signal {name}"),
            &stderr,
        )));
    };
    if !success_codes.contains(&code) {
        return Err(StepError::failed(with_tail(
            format!("exit code {code}"),
            &stderr,
        )));
    }
    let stdout = parse_stdout(&done.stdout, parse)?;
    let mut result = json!({
        "exit_code": code,
        "stdout": stdout,
        "stderr": stderr,
        "duration_ms": u64::try_from(done.duration.as_millis()).unwrap_or(u64::MAX),
    });
    for (key, captured) in [
        ("stdout_truncated", &done.stdout),
        ("stderr_truncated", &done.stderr),
    ] {
        if captured.truncated {
            result[key] = Value::Bool(true);
        }
    }
    Ok(result)
}

fn parse_stdout(stdout: &Captured, parse: Option<Parse>) -> Result<Value, StepError> {
    let text = stdout.text();
    Ok(match parse {
        None => Value::String(text),
        Some(Parse::Text) => {
            let trimmed = text
                .strip_suffix('\n')
                .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
            Value::String(trimmed.to_owned())
        }
        Some(Parse::Lines) => text.lines().map(|l| Value::String(l.to_owned())).collect(),
        Some(Parse::Json) => {
            if stdout.truncated {
                return Err(StepError::failed(format!(
                    "stdout is larger than {} MiB; cannot parse it as JSON",
                    MAX_CAPTURE / (1024 * 1024)
                )));
            }
            if text.trim().is_empty() {
                return Err(StepError::failed(
                    "stdout is empty; `parse: json` expects one JSON document",
                ));
            }
            serde_json::from_str(&text)
                .map_err(|e| StepError::failed(format!("stdout is not valid JSON: {e}")))?
        }
    })
}

/// `head: <last lines of stderr>`, or `head` when stderr is empty.
fn with_tail(head: String, stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim().lines().collect();
    let tail = lines
        .get(lines.len().saturating_sub(TAIL_LINES)..)
        .unwrap_or_default()
        .join("\n");
    let tail = tail.trim();
    if tail.is_empty() {
        return head;
    }
    let count = tail.chars().count();
    if count > TAIL_CHARS {
        let kept: String = tail.chars().skip(count - TAIL_CHARS).collect();
        format!("{head}: …{kept}")
    } else {
        format!("{head}: {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks() {
        let mut lines = Lines::new(MAX_LOG_LINE, Redactor::default());
        assert_eq!(lines.push(b"one\r\ntw"), vec!["one"]);
        assert_eq!(lines.push(b"o\n\nthree"), vec!["two", ""]);
        assert_eq!(lines.finish().as_deref(), Some("three"));
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn long_lines_are_cut_at_character_boundaries() {
        let mut lines = Lines::new(4, Redactor::default());
        assert_eq!(lines.push("abcdé\n".as_bytes()), vec!["abcd", "é"]);
        assert_eq!(lines.push("aéé".as_bytes()), vec!["aé"]);
        assert_eq!(lines.finish().as_deref(), Some("é"));
        let mut lines = Lines::new(4, Redactor::default());
        assert_eq!(lines.push(b"ab\xffcdef\n"), vec!["ab\u{fffd}c", "def"]);
    }

    #[test]
    fn a_secret_across_a_forced_cut_is_masked_whole() {
        let secret = "hunter2-correct-horse";
        let redactor = Redactor::new([secret.to_owned()]);
        for offset in 0..secret.len() {
            let mut lines = Lines::new(16, redactor.clone());
            let text = format!("{}{secret}{}", "a".repeat(32 - offset), "b".repeat(40));
            let mut pieces = Vec::new();
            // Byte by byte: the worst case for a cut.
            for byte in text.as_bytes() {
                pieces.extend(lines.push(std::slice::from_ref(byte)));
            }
            pieces.extend(lines.finish());
            let joined = pieces.concat();
            assert!(!joined.contains("hunter"), "offset {offset}: {pieces:?}");
            assert!(!joined.contains("horse"), "offset {offset}: {pieces:?}");
            assert!(pieces.iter().all(|p| p.len() <= 16 + redactor.longest()));
        }
    }

    #[test]
    fn whole_characters_leave_a_character_still_arriving() {
        assert_eq!(whole_characters(b"abc"), 3);
        assert_eq!(whole_characters("aé".as_bytes()), 3);
        assert_eq!(whole_characters(&"aé".as_bytes()[..2]), 1);
        assert_eq!(whole_characters(&"a€".as_bytes()[..3]), 1);
        assert_eq!(whole_characters(b"a\xff"), 2);
    }

    #[test]
    fn capture_stops_at_the_cap() {
        let mut captured = Captured::new(5);
        captured.push(b"abc");
        assert!(!captured.truncated);
        captured.push(b"defg");
        assert!(captured.truncated);
        assert_eq!(captured.text(), "abcde");
    }

    #[test]
    fn parse_modes() {
        let mut out = Captured::new(100);
        out.push(b"a\n\nb\r\n");
        assert_eq!(parse_stdout(&out, None).unwrap(), json!("a\n\nb\r\n"));
        assert_eq!(
            parse_stdout(&out, Some(Parse::Text)).unwrap(),
            json!("a\n\nb")
        );
        assert_eq!(
            parse_stdout(&out, Some(Parse::Lines)).unwrap(),
            json!(["a", "", "b"])
        );
        let err = parse_stdout(&out, Some(Parse::Json)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stdout is not valid JSON: expected value at line 1 column 1"
        );
        let mut cut = Captured::new(2);
        cut.push(b"[1]");
        let err = parse_stdout(&cut, Some(Parse::Json)).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn error_text_ends_with_the_last_lines_of_stderr() {
        assert_eq!(with_tail("exit code 3".into(), ""), "exit code 3");
        assert_eq!(
            with_tail("exit code 3".into(), " \nboom\n\n"),
            "exit code 3: boom"
        );
        let many = (1..=15)
            .map(|i| format!("l{i}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            with_tail("exit code 1".into(), &many),
            format!(
                "exit code 1: {}",
                (6..=15)
                    .map(|i| format!("l{i}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        );
        let long = "x".repeat(TAIL_CHARS + 10);
        assert_eq!(
            with_tail("e".into(), &long).chars().count(),
            "e: …".chars().count() + TAIL_CHARS
        );
    }
}
