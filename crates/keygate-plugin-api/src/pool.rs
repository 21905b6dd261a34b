//! Upstream HTTP/1.1 connections read by the task that uses them, kept per thread.
//!
//! A pooled client that gives each connection a task of its own makes every exchange cross
//! tasks: the request goes to the connection's task, and each body chunk comes back through a
//! channel, one task switch per stream event, so events that arrived in one read still leave one
//! by one. Here the caller's task writes the request and reads the response itself: every body
//! byte already read comes out as one piece ([`wire`] decodes the framing in place), and the
//! relay writes it to its client in one write. An idle connection waits in its thread's pool,
//! polled by no one; it is checked when taken out (closed by the server, sent something
//! unasked, idle too long: dropped), and a request that a pooled connection could not take at
//! all (the first write failed) is sent again on a new one. Nothing is sent twice once a byte of
//! it has gone out.
//!
//! HTTP/1.1 only (the TLS handshake offers only `http/1.1`): LLM APIs serve it everywhere, and
//! HTTP/2 multiplexing needs a task that owns the connection.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::uri::{Authority, Scheme};
use http::{header, Method, Request, Uri};
use hyper::body::{Body, Frame, SizeHint};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tower_service::Service;

mod wire;

use wire::Decoder;
pub use wire::{read_response_in_pieces, WireError};

/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per upstream (scheme and authority) on one thread.
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// How long connecting (DNS, TCP, TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Room made in the read buffer before the first read; doubled after each read that fills it.
const FIRST_READ: usize = 8 * 1024;
/// The most room made for one read.
const MAX_READ: usize = 256 * 1024;
/// A buffer that grew past this is not kept with an idle connection.
const MAX_IDLE_BUFFER: usize = 64 * 1024;

type Io = TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>;
type Key = (Scheme, Authority);

/// Why an exchange got no response, or its body broke.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The request's URI has no scheme or host.
    #[error("the upstream URL has no scheme or host")]
    BadUri,
    /// No connection could be made (DNS, TCP, TLS).
    #[error("connection failed: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// Reading or writing the connection failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The response broke HTTP/1.1 or ended early.
    #[error("{0}")]
    Wire(#[from] WireError),
}

/// One upstream connection and what has been read from it.
struct Conn {
    key: Key,
    io: Io,
    buf: BytesMut,
    /// Room to make for the next read.
    read_size: usize,
}

impl Conn {
    /// Reads what has arrived onto the buffer: `Ok(0)` at the end of the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < self.read_size / 4 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let read = ready!(pin!(self.io.read_buf(&mut self.buf)).poll(cx))?;
        if read == room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        Poll::Ready(Ok(read))
    }

    /// Whether an idle connection can carry a request: the server has neither closed it nor
    /// sent anything.
    fn idle_and_open(&mut self, cx: &mut Context<'_>) -> bool {
        self.buf.is_empty() && self.poll_fill(cx).is_pending()
    }

    /// Writes the request. On failure, tells whether any of it went out.
    async fn write(&mut self, head: &[u8], body: &[u8]) -> Result<(), (io::Error, bool)> {
        let mut written = 0;
        let result = poll_fn(|cx| {
            while written < head.len() + body.len() {
                let rest = [
                    IoSlice::new(head.get(written..).unwrap_or_default()),
                    IoSlice::new(&body[written.saturating_sub(head.len())..]),
                ];
                match ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &rest)) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => written += n,
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
            Pin::new(&mut self.io).poll_flush(cx)
        })
        .await;
        result.map_err(|err| (err, written > 0))
    }

    /// Reads until the response head is in.
    async fn read_head(&mut self, head_request: bool) -> Result<wire::Head, SendError> {
        poll_fn(|cx| loop {
            if let Some(head) = wire::parse_head(&mut self.buf, head_request)? {
                return Poll::Ready(Ok(head));
            }
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(WireError::Incomplete.into()));
            }
        })
        .await
    }
}

/// A connection waiting in the pool, boxed: a connection holds its TLS state inline, and is
/// moved in and out of the pool once per exchange.
type Idle = (Box<Conn>, Instant);

thread_local! {
    /// Per upstream, the idle connections, most recently used last. A list: a thread talks to
    /// a handful of upstreams.
    static IDLE: RefCell<Vec<(Key, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
    static CONNECTOR: HttpsConnector<HttpConnector> = connector();
}

fn connector() -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// A live idle connection to `scheme://authority` from this thread's pool, if there is one.
async fn checkout(scheme: &Scheme, authority: &Authority) -> Option<Box<Conn>> {
    loop {
        let (mut conn, since) = IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let (_, list) = idle
                .iter_mut()
                .find(|((s, a), _)| s == scheme && a == authority)?;
            list.pop()
        })?;
        if since.elapsed() < IDLE_TIMEOUT && poll_fn(|cx| Poll::Ready(conn.idle_and_open(cx))).await
        {
            return Some(conn);
        }
    }
}

/// Puts a connection whose exchange has ended cleanly back in this thread's pool.
fn checkin(mut conn: Box<Conn>) {
    if !conn.buf.is_empty() {
        return; // the server sent more than the response: nothing to trust on it
    }
    if conn.buf.capacity() > MAX_IDLE_BUFFER {
        conn.buf = BytesMut::new();
        conn.read_size = FIRST_READ;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let at = match idle.iter().position(|(k, _)| *k == conn.key) {
            Some(at) => at,
            None => {
                idle.push((conn.key.clone(), Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[at].1;
        // Oldest first (connections are taken from the end): the expired ones lead.
        let now = Instant::now();
        let expired = list.partition_point(|(_, since)| now - *since >= IDLE_TIMEOUT);
        list.drain(..expired);
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push((conn, now));
        }
    });
}

async fn connect(key: &Key) -> Result<Box<Conn>, SendError> {
    let uri = Uri::builder()
        .scheme(key.0.clone())
        .authority(key.1.clone())
        .path_and_query("/")
        .build()
        .map_err(|_| SendError::BadUri)?;
    let mut connector = CONNECTOR.with(Clone::clone);
    let io = connector.call(uri).await.map_err(SendError::Connect)?;
    Ok(Box::new(Conn {
        key: key.clone(),
        io: TokioIo::new(io),
        buf: BytesMut::new(),
        read_size: FIRST_READ,
    }))
}

/// Sends `request` (its URI absolute) on a pooled connection, or a new one, and returns the
/// response head with a body that reads the connection as it is read.
pub(crate) async fn send(
    request: Request<Bytes>,
) -> Result<(http::response::Parts, PooledBody), SendError> {
    let (parts, body) = request.into_parts();
    let (Some(scheme), Some(authority)) = (parts.uri.scheme(), parts.uri.authority()) else {
        return Err(SendError::BadUri);
    };
    // The authority was checked when the URI was parsed: it is fit for a header as it is.
    let host = (!parts.headers.contains_key(header::HOST)).then(|| host_header(scheme, authority));
    let request_head = wire::request_head(&parts, host, body.len());
    let head_request = parts.method == Method::HEAD;
    loop {
        let (mut conn, reused) = match checkout(scheme, authority).await {
            Some(conn) => (conn, true),
            None => (connect(&(scheme.clone(), authority.clone())).await?, false),
        };
        match conn.write(&request_head, &body).await {
            Ok(()) => {}
            // The pooled connection could not take the request at all: a new one.
            Err((_, false)) if reused => continue,
            Err((err, _)) => return Err(err.into()),
        }
        let head = conn.read_head(head_request).await?;
        let mut body = PooledBody {
            conn: Some(conn),
            decoder: head.body,
            keep_alive: head.keep_alive,
        };
        body.end_if_done();
        return Ok((head.parts, body));
    }
}

/// The `Host` header for `scheme://authority`: the authority without userinfo, and without the
/// port when it is the scheme's default.
fn host_header<'a>(scheme: &Scheme, authority: &'a Authority) -> &'a str {
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let hostport = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, rest)| rest);
    if authority
        .port_u16()
        .is_some_and(|port| Some(port) == default_port)
    {
        authority.host()
    } else {
        hostport
    }
}

/// A response body that reads its connection as it is read, and gives the connection back to
/// the pool once read to its end. Dropped before its end, it closes the connection (which
/// cancels the upstream request).
pub(crate) struct PooledBody {
    /// `None` once the body has ended or failed.
    conn: Option<Box<Conn>>,
    decoder: Decoder,
    /// Whether the connection goes back to the pool once the body has ended (never when the
    /// body ends with the connection: `wire::Head::keep_alive`).
    keep_alive: bool,
}

impl PooledBody {
    /// Once the body has ended, gives its connection back to the pool (if it may be reused).
    fn end_if_done(&mut self) {
        if self.decoder.is_done() {
            if let Some(conn) = self.conn.take() {
                if self.keep_alive {
                    checkin(conn);
                }
            }
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = SendError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SendError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = &mut this.conn else {
                return Poll::Ready(None);
            };
            let decoded = this.decoder.decode(&mut conn.buf);
            let filled = match decoded {
                Ok(data) if !data.is_empty() => {
                    this.end_if_done();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(_) if this.decoder.is_done() => {
                    this.end_if_done();
                    return Poll::Ready(None);
                }
                Ok(_) => conn.poll_fill(cx).map_err(SendError::from),
                Err(err) => Poll::Ready(Err(err.into())),
            };
            let failed: Option<SendError> = match ready!(filled) {
                Ok(0) => this.decoder.eof().err().map(SendError::from),
                Ok(_) => None,
                Err(err) => Some(err),
            };
            if let Some(err) = failed {
                this.conn = None;
                return Poll::Ready(Some(Err(err)));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
