//! Server-sent events (the `text/event-stream` format both APIs stream in),
//! parsed incrementally from arbitrary chunk boundaries.

/// One event: its `event:` name (empty when absent) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: String,
    /// The `data:` field(s).
    pub data: String,
}

/// Incremental parser: feed it bytes, take complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

/// The longest line we accept (a stream that never ends a line is broken).
const MAX_LINE: usize = 16 * 1024 * 1024;

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Add `chunk`; returns the events it completed, or an error for a line
    /// longer than 16 MiB.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            self.line(&line, &mut out);
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(format!("an event-stream line longer than {MAX_LINE} bytes"));
        }
        Ok(out)
    }

    /// End of stream: an event not yet closed by a blank line is dispatched.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buf);
        let mut out = Vec::new();
        if !rest.is_empty() {
            self.line(&String::from_utf8_lossy(&rest), &mut out);
        }
        self.line("", &mut out);
        out.pop()
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if !self.data.is_empty() || !self.event.is_empty() {
                out.push(SseEvent { event: std::mem::take(&mut self.event), data: self.data.join("\n") });
                self.data.clear();
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => self.data.push(value.to_string()),
            _ => {} // id, retry: not used by these APIs
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = "event: ping\ndata: {}\n\n: keep-alive\r\nevent: message_delta\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: [DONE]\n\n";
        for cut in 1..text.len() {
            let mut p = SseParser::new();
            let mut got = p.feed(&text.as_bytes()[..cut]).unwrap();
            got.extend(p.feed(&text.as_bytes()[cut..]).unwrap());
            assert_eq!(
                got,
                vec![
                    SseEvent { event: "ping".into(), data: "{}".into() },
                    SseEvent { event: "message_delta".into(), data: "{\"a\":\n1}".into() },
                    SseEvent { event: String::new(), data: "[DONE]".into() },
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_unterminated_last_event_is_kept_at_the_end() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: x").unwrap().is_empty());
        assert_eq!(p.finish(), Some(SseEvent { event: String::new(), data: "x".into() }));
    }
}
