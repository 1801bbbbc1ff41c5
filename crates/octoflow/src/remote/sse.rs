//! Server-Sent Events, read by hand: `field: value` lines, a blank line ends an event
//! (the WHATWG `text/event-stream` rules, less reconnection).

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// `event:`; `message` when the event names none.
    pub(crate) name: String,
    /// The `data:` lines, joined by line breaks.
    pub(crate) data: String,
}

/// Turns the bytes of a stream, as they arrive in chunks of any size, into events.
#[derive(Debug, Default)]
pub(crate) struct EventReader {
    /// Bytes of a line not ended yet.
    pending: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
}

impl EventReader {
    /// Reads a chunk; returns the events it completed, in order.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.pending.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.pending);
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if let Some(event) = self.line(line) {
                events.push(event);
            }
        }
        self.pending.extend_from_slice(rest);
        events
    }

    /// Ends the stream: an event not closed by a blank line is dropped, as the standard says.
    pub(crate) fn finish(&mut self) {
        self.pending.clear();
        self.name = None;
        self.data = None;
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let name = self.name.take();
            let data = self.data.take();
            if name.is_none() && data.is_none() {
                return None;
            }
            return Some(Event {
                name: name.unwrap_or_else(|| "message".to_owned()),
                data: data.unwrap_or_default(),
            });
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {} // `id`, `retry` and unknown fields
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_end_at_blank_lines_whatever_the_chunks() {
        let text = b": hello\n\ndata: one\n\ndata:two\ndata:  three\n\nevent: end\r\ndata: {\"status\":\"failed\"}\r\n\r\n";
        let whole = EventReader::default().feed(text);
        let want = vec![
            event("message", "one"),
            event("message", "two\n three"),
            event("end", "{\"status\":\"failed\"}"),
        ];
        assert_eq!(whole, want);
        for size in 1..text.len() {
            let mut reader = EventReader::default();
            let got: Vec<Event> = text.chunks(size).flat_map(|c| reader.feed(c)).collect();
            assert_eq!(got, want, "chunks of {size}");
        }
    }

    #[test]
    fn split_characters_and_unknown_fields() {
        let text = "id: 7\nretry: 10\ndata: café ✔\n\n".as_bytes();
        let mut reader = EventReader::default();
        let got: Vec<Event> = text.chunks(1).flat_map(|c| reader.feed(c)).collect();
        assert_eq!(got, vec![event("message", "café ✔")]);
        let mut reader = EventReader::default();
        assert!(reader.feed(b"data: unfinished").is_empty());
        reader.finish();
        assert!(reader.feed(b"\n\n").is_empty());
        assert_eq!(reader.feed(b"event: end\n\n"), vec![event("end", "")]);
    }
}
