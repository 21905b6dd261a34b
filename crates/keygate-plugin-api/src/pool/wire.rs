//! HTTP/1.1 on the wire for the upstream client: the request head written, the response head
//! parsed, the response body's framing (RFC 9112 §6) decoded. Functions over buffers only: the
//! reading and writing is [`super`]'s.
//!
//! A body is decoded in place: every body byte already in the read buffer comes out as one
//! piece, however many chunks carried it (the chunk-size lines between them are squeezed out
//! of the buffer), so a stream's events that arrived in one read leave in one write.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};

/// The largest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// The most header lines a response head may have.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line read (with its extensions and CRLF).
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes read after the last chunk (with the closing empty line).
const MAX_TRAILERS: usize = 16 * 1024;

/// A response that breaks HTTP/1.1, or ends early.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The response head could not be parsed.
    #[error("invalid response head: {0}")]
    Head(&'static str),
    /// The response head did not end within [`MAX_HEAD`] bytes.
    #[error("the response head is larger than 64 KiB")]
    HeadTooLarge,
    /// `content-length` is not one decimal number.
    #[error("invalid content-length")]
    ContentLength,
    /// The chunked body's framing is broken.
    #[error("invalid chunked body: {0}")]
    Chunked(&'static str),
    /// The connection ended before the response did.
    #[error("the upstream closed the connection before the response was complete")]
    Incomplete,
}

/// The request head for `parts` with a body of `body_len` bytes: origin-form target, `host`
/// first when given (a value already fit for a header), the headers as given except framing
/// ones, and `content-length` where a body is sent or expected.
pub(crate) fn request_head(
    parts: &http::request::Parts,
    host: Option<&str>,
    body_len: usize,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(host.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let bodiless = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if body_len > 0 || !bodiless {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) parts: http::response::Parts,
    /// How the body is framed.
    pub(crate) body: Decoder,
    /// Whether the connection may carry another request once the body has been read (never
    /// when the body ends with the connection).
    pub(crate) keep_alive: bool,
}

/// Takes the response head off the front of `buf`, once it is all there (`None`: read more).
/// Interim (1xx) responses are skipped. `head_request`: the request was `HEAD`, so no body.
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<Head>, WireError> {
    loop {
        // Left uninitialised: httparse fills what it parses (4 KiB of empty headers to write
        // per response otherwise).
        let mut lines = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        // Only the first MAX_HEAD bytes are looked at, so the outcome does not depend on how
        // much has arrived beyond them.
        let seen = &buf[..buf.len().min(MAX_HEAD)];
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            seen,
            &mut lines,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(WireError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(WireError::Head("too many headers"))
            }
            Err(_) => return Err(WireError::Head("not an HTTP/1.x status line and headers")),
        };
        let status = response
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or(WireError::Head("invalid status code"))?;
        let version = match response.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let start = buf.as_ptr() as usize;
        let mut fields = Vec::with_capacity(response.headers.len());
        for line in response.headers.iter() {
            let name = HeaderName::from_bytes(line.name.as_bytes())
                .map_err(|_| WireError::Head("invalid header name"))?;
            let at = line.value.as_ptr() as usize - start;
            fields.push((name, at..at + line.value.len()));
        }
        let head = buf.split_to(len).freeze();
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        return head_of(status, version, &head, fields, head_request).map(Some);
    }
}

fn head_of(
    status: StatusCode,
    version: Version,
    head: &Bytes,
    fields: Vec<(HeaderName, Range<usize>)>,
    head_request: bool,
) -> Result<Head, WireError> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, range) in fields {
        let value = HeaderValue::from_maybe_shared(head.slice(range))
            .map_err(|_| WireError::Head("invalid header value"))?;
        headers.append(name, value);
    }
    let mut keep_alive = if version == Version::HTTP_11 {
        !has_token(&headers, &CONNECTION, "close")
    } else {
        has_token(&headers, &CONNECTION, "keep-alive")
    };
    let body = if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Decoder::Done
    } else if headers.contains_key(TRANSFER_ENCODING) {
        // A length beside a transfer coding is a smuggling shape: the coding wins and the
        // connection is not reused (RFC 9112 §6.3).
        if headers.contains_key(CONTENT_LENGTH) {
            keep_alive = false;
        }
        let last = tokens(&headers, &TRANSFER_ENCODING).last();
        if last.is_some_and(|coding| coding.eq_ignore_ascii_case("chunked")) {
            Decoder::Chunked(Chunk::Size)
        } else {
            keep_alive = false;
            Decoder::Close
        }
    } else if headers.contains_key(CONTENT_LENGTH) {
        match content_length(&headers)? {
            0 => Decoder::Done,
            n => Decoder::Length(n),
        }
    } else {
        keep_alive = false;
        Decoder::Close
    };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Head {
        parts: response.into_parts().0,
        body,
        keep_alive,
    })
}

/// The comma-separated tokens of every `name` header, in order; a value that is not text
/// counts as one token that matches nothing.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{fffd}").split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// The body length: every `content-length` value must be the same decimal number.
fn content_length(headers: &HeaderMap) -> Result<u64, WireError> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for token in value.as_bytes().split(|b| *b == b',') {
            let n = decimal(token.trim_ascii()).ok_or(WireError::ContentLength)?;
            if length.is_some_and(|seen| seen != n) {
                return Err(WireError::ContentLength);
            }
            length = Some(n);
        }
    }
    length.ok_or(WireError::ContentLength)
}

/// `digits` as a number: one or more ASCII digits, within `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Where the response body is in its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoder {
    /// This many bytes are still to come.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked(Chunk),
    /// The body ends when the connection does.
    Close,
    /// The body has ended.
    Done,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes to go.
    Data(u64),
    /// At the CRLF that ends a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
    /// The empty line after the trailers has been read: the body has ended.
    End,
}

impl Decoder {
    /// Takes every body byte now in `buf` off its front, as one piece (empty: read more, or
    /// the body has ended: see [`Decoder::is_done`]). Bytes after the body's end stay in `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Bytes, WireError> {
        match self {
            Decoder::Length(remaining) => {
                let take = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = Decoder::Done;
                }
                Ok(buf.split_to(take).freeze())
            }
            Decoder::Chunked(chunk) => {
                let (read, written) = dechunk(chunk, buf)?;
                if *chunk == Chunk::End {
                    *self = Decoder::Done;
                }
                let data = buf.split_to(written).freeze();
                buf.advance(read - written);
                Ok(data)
            }
            Decoder::Close => Ok(buf.split().freeze()),
            Decoder::Done => Ok(Bytes::new()),
        }
    }

    /// The connection has ended: fine where the body ends with it, or has already ended.
    pub(crate) fn eof(&mut self) -> Result<(), WireError> {
        match self {
            Decoder::Close | Decoder::Done => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err(WireError::Incomplete),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// The body bytes still to come, when known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }
}

/// Decodes the chunked framing in `buf` in place: the data of every chunk present is moved to
/// the front. Returns how many framing bytes were read and how many data bytes written at the
/// front; `chunk` is left where the framing stopped ([`Chunk::End`] at the end).
fn dechunk(chunk: &mut Chunk, buf: &mut BytesMut) -> Result<(usize, usize), WireError> {
    let (mut read, mut written) = (0, 0);
    loop {
        let rest = &buf[read..];
        match *chunk {
            Chunk::End => break,
            Chunk::Size => {
                match httparse::parse_chunk_size(&rest[..rest.len().min(MAX_CHUNK_LINE)]) {
                    Ok(httparse::Status::Complete((len, 0))) => {
                        read += len;
                        *chunk = Chunk::Trailers;
                    }
                    Ok(httparse::Status::Complete((len, size))) => {
                        read += len;
                        *chunk = Chunk::Data(size);
                    }
                    Ok(httparse::Status::Partial) if rest.len() >= MAX_CHUNK_LINE => {
                        return Err(WireError::Chunked("chunk-size line too long"))
                    }
                    Ok(httparse::Status::Partial) => break,
                    Err(_) => return Err(WireError::Chunked("invalid chunk size")),
                }
            }
            Chunk::Data(remaining) => {
                let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                if take == 0 {
                    break;
                }
                buf.copy_within(read..read + take, written);
                read += take;
                written += take;
                *chunk = match remaining - take as u64 {
                    0 => Chunk::DataEnd,
                    left => Chunk::Data(left),
                };
            }
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    read += 2;
                    *chunk = Chunk::Size;
                }
                [] | [b'\r'] => break,
                _ => return Err(WireError::Chunked("chunk data not followed by CRLF")),
            },
            Chunk::Trailers => {
                let seen = &rest[..rest.len().min(MAX_TRAILERS)];
                let end = if seen.starts_with(b"\r\n") {
                    Some(2)
                } else {
                    memchr::memmem::find(seen, b"\r\n\r\n").map(|at| at + 4)
                };
                match end {
                    Some(end) => {
                        read += end;
                        *chunk = Chunk::End;
                        break;
                    }
                    None if rest.len() >= MAX_TRAILERS => {
                        return Err(WireError::Chunked("trailers too long"))
                    }
                    None => break,
                }
            }
        }
    }
    Ok((read, written))
}

/// Reads a whole response from `data` as reads of `step` bytes would bring it (the connection
/// ending after the last): the head and the decoded body. For the fuzz target and tests: the
/// outcome must not depend on `step`, and nothing may panic.
pub fn read_response_in_pieces(
    data: &[u8],
    step: usize,
) -> Result<(http::response::Parts, Vec<u8>), WireError> {
    let mut pieces = data.chunks(step.max(1));
    let mut buf = BytesMut::new();
    let head = loop {
        if let Some(head) = parse_head(&mut buf, false)? {
            break head;
        }
        buf.extend_from_slice(pieces.next().ok_or(WireError::Incomplete)?);
    };
    let (mut decoder, mut body) = (head.body, Vec::new());
    loop {
        body.extend_from_slice(&decoder.decode(&mut buf)?);
        if decoder.is_done() {
            return Ok((head.parts, body));
        }
        match pieces.next() {
            Some(piece) => buf.extend_from_slice(piece),
            None => {
                decoder.eof()?;
                return Ok((head.parts, body));
            }
        }
    }
}

#[cfg(test)]
mod tests;
