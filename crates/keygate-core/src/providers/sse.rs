//! Server-sent events: an incremental parser for `text/event-stream` bodies read from an
//! upstream, and the encoders for the frames keygate writes to its callers.
//!
//! The parser follows the WHATWG event-stream rules: lines end in `\n`, `\r\n` or `\r`; a line
//! starting with `:` is a comment; `data` lines accumulate (joined with `\n`); `event` names the
//! event; `id` and `retry` are ignored; a blank line dispatches. Bytes are buffered, not text, so
//! a chunk may end anywhere, even inside a UTF-8 sequence or between `\r` and `\n`. One event may
//! hold at most `max_event_bytes`; past that [`SseParser::push`] returns an error instead of
//! growing without bound.
//!
//! It does not interpret the data (JSON or `[DONE]`): that is the translators' business.

/// The default bound on one event's size: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The frame that ends an OpenAI-style stream.
pub const DONE: &str = "data: [DONE]\n\n";

/// One dispatched event: its `event` name, if any, and its data lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, `None` when absent or empty.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Why an event stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (or one line) grew past the parser's limit.
    #[error("an upstream server-sent event exceeded the limit of {limit} bytes")]
    EventTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Incremental `text/event-stream` parser; feed it chunks with [`SseParser::push`].
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// The data buffer, each data line followed by `\n` (the last one is removed on dispatch).
    data: String,
    /// The event name buffer.
    event: String,
    /// The last terminator seen was `\r`: a `\n` right after it belongs to the same line end.
    after_cr: bool,
    /// No line has been completed yet (a leading byte-order mark is stripped from it).
    first_line: bool,
    max_event_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default 16 MiB event limit.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser whose events (data plus the pending line) may hold at most `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            after_cr: false,
            first_line: true,
            max_event_bytes,
        }
    }

    /// Feeds a chunk; returns the events it completed, in order. On an oversized event the
    /// parser's buffers are cleared and an error returned (events completed earlier in this
    /// chunk are dropped with it: the stream is broken anyway).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if let Some((b'\n', tail)) = rest.split_first() {
                    rest = tail;
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(pos) => {
                    let (segment, tail) = rest.split_at(pos);
                    self.after_cr = tail.first() == Some(&b'\r');
                    rest = tail.get(1..).unwrap_or_default();
                    if self.line.is_empty() {
                        // The whole line is in this chunk: no copy.
                        self.check_size(segment.len())?;
                        self.end_line(segment, &mut events);
                    } else {
                        self.extend_line(segment)?;
                        let line = std::mem::take(&mut self.line);
                        self.end_line(&line, &mut events);
                        self.line = line;
                        self.line.clear();
                    }
                }
                None => {
                    self.extend_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(events)
    }

    /// Ends the stream: a pending line is taken as complete and a pending event is dispatched
    /// even without its closing blank line. The parser is then ready for a new stream.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, &mut events);
        }
        self.dispatch(&mut events);
        self.after_cr = false;
        self.first_line = true;
        events
    }

    /// Records that whole events went past the parser unread (the caller saw they ended at an
    /// event boundary, with the parser idle before them): the stream is no longer at its first
    /// line.
    pub fn passed_over(&mut self) {
        self.first_line = false;
    }

    /// Whether nothing is pending: the bytes pushed so far ended exactly at an event boundary.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && self.data.is_empty() && self.event.is_empty() && !self.after_cr
    }

    /// Errs (clearing the buffers) when `more` bytes would make the event too large.
    fn check_size(&mut self, more: usize) -> Result<(), SseError> {
        let size = self.line.len() + more + self.data.len() + self.event.len();
        if size > self.max_event_bytes {
            self.line.clear();
            self.data.clear();
            self.event.clear();
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    fn extend_line(&mut self, segment: &[u8]) -> Result<(), SseError> {
        self.check_size(segment.len())?;
        self.line.extend_from_slice(segment);
        Ok(())
    }

    fn end_line(&mut self, raw: &[u8], events: &mut Vec<SseEvent>) {
        let mut bytes = raw;
        if std::mem::replace(&mut self.first_line, false) {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        if bytes.is_empty() {
            self.dispatch(events);
            return;
        }
        if bytes.first() == Some(&b':') {
            return;
        }
        let line = match std::str::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            // `id`, `retry` and unknown fields are ignored.
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        events.push(SseEvent {
            event: (!event.is_empty()).then_some(event),
            data,
        });
    }
}

/// An unnamed event: `data: {data}\n\n`. Multi-line data becomes one `data:` line per line.
pub fn encode_data(data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 8);
    push_data_lines(&mut out, data);
    out.push('\n');
    out
}

/// A named event: `event: {event}\ndata: {data}\n\n`. Line breaks in the name are dropped.
pub fn encode_event(event: &str, data: &str) -> String {
    let mut out = String::with_capacity(event.len() + data.len() + 16);
    out.push_str("event: ");
    out.extend(event.chars().filter(|c| *c != '\n' && *c != '\r'));
    out.push('\n');
    push_data_lines(&mut out, data);
    out.push('\n');
    out
}

fn push_data_lines(out: &mut String, data: &str) {
    let normalized;
    let data = if data.contains('\r') {
        normalized = data.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        data
    };
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
}
