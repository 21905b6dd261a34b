//! Upstream HTTP/1.1 connections driven by the task that uses them, kept per thread.
//!
//! A pooled client that gives each connection a task of its own makes every exchange cross
//! tasks: the request goes to the connection's task, and each body chunk comes back through a
//! channel, one task switch per stream event, so events that arrived in one read still leave one
//! by one. Here the caller's task polls the connection itself while it waits for the response
//! head and while it reads the body: chunks already read come out back to back (the relay merges
//! them into one write to its client), and nothing else is scheduled. An idle connection waits
//! in its thread's pool, polled by no one; it is checked when taken out (closed by the server,
//! idle too long: dropped), and a request the pool's connection turns out unable to carry (it
//! was closed before the request was written) is sent again on a new one.
//!
//! HTTP/1.1 only (the TLS handshake offers only `http/1.1`): LLM APIs serve it everywhere, and
//! HTTP/2 multiplexing needs a task that owns the connection.

use std::cell::RefCell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per upstream (scheme and authority) on one thread.
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// How long connecting (DNS, TCP, TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;
type Key = (Scheme, Authority);

/// Why an exchange got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The request's URI has no scheme or host.
    BadUri,
    /// No connection could be made (DNS, TCP, TLS).
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed before the response head arrived.
    Http(hyper::Error),
}

/// One upstream connection and the handle that sends requests on it.
struct Conn {
    key: Key,
    sender: http1::SendRequest<Full<Bytes>>,
    driver: http1::Connection<Io, Full<Bytes>>,
    /// Whether `driver` has not finished (closed or failed): a finished future is not polled.
    open: bool,
}

impl Conn {
    /// Lets the connection make progress on its socket: write what is queued, read what has
    /// arrived (and hand it to the response or body waiting for it).
    fn drive(&mut self, cx: &mut Context<'_>) {
        if self.open && Pin::new(&mut self.driver).poll(cx).is_ready() {
            self.open = false;
        }
    }

    /// Whether a new request can be sent now.
    fn reusable(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx);
        self.open && self.sender.is_ready()
    }

    /// Sends `request` and drives the connection until the response head arrives. On failure
    /// the request comes back when it was never written.
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Full<Bytes>>>> {
        let mut response = pin!(self.sender.try_send_request(request));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = response.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
    }
}

/// A connection waiting in the pool, boxed: a connection holds its buffers inline, and is
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

/// A live idle connection to `key` from this thread's pool, if there is one.
async fn checkout(key: &Key) -> Option<Box<Conn>> {
    loop {
        let (mut conn, since) = IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let (_, list) = idle.iter_mut().find(|(k, _)| k == key)?;
            list.pop()
        })?;
        if since.elapsed() < IDLE_TIMEOUT
            && std::future::poll_fn(|cx| Poll::Ready(conn.reusable(cx))).await
        {
            return Some(conn);
        }
    }
}

/// Puts a connection whose exchange has ended back in this thread's pool, if it can carry
/// another request.
fn checkin(mut conn: Box<Conn>, cx: &mut Context<'_>) {
    if !conn.reusable(cx) {
        return;
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
    let (sender, driver) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(SendError::Http)?;
    Ok(Box::new(Conn {
        key: key.clone(),
        sender,
        driver,
        open: true,
    }))
}

/// Sends `request` (its URI absolute) on a pooled connection, or a new one, and returns the
/// response head with a body that drives the connection as it is read.
pub(crate) async fn send(
    request: Request<Bytes>,
) -> Result<(http::response::Parts, PooledBody), SendError> {
    let (mut parts, body) = request.into_parts();
    let (Some(scheme), Some(authority)) = (parts.uri.scheme(), parts.uri.authority()) else {
        return Err(SendError::BadUri);
    };
    let key = (scheme.clone(), authority.clone());
    if !parts.headers.contains_key(header::HOST) {
        let host = HeaderValue::from_str(host_header(&key)).map_err(|_| SendError::BadUri)?;
        parts.headers.insert(header::HOST, host);
    }
    parts.uri = Uri::from(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    let mut request = Request::from_parts(parts, Full::new(body));
    loop {
        let (mut conn, reused) = match checkout(&key).await {
            Some(conn) => (conn, true),
            None => (connect(&key).await?, false),
        };
        match conn.send(request).await {
            Ok(response) => {
                let (head, incoming) = response.into_parts();
                let body = PooledBody {
                    incoming,
                    conn: Some(conn),
                };
                return Ok((head, body));
            }
            Err(mut err) => match err.take_message() {
                // The pooled connection was closed before the request went out: a new one.
                Some(unsent) if reused => request = unsent,
                _ => return Err(SendError::Http(err.into_error())),
            },
        }
    }
}

/// The `Host` header for `key`: the authority without userinfo, and without the port when it
/// is the scheme's default.
fn host_header(key: &Key) -> &str {
    let (scheme, authority) = key;
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

/// A response body that drives its connection while it is read, and gives the connection back
/// to the pool once read to its end. Dropped before its end, it closes the connection (which
/// cancels the upstream request).
pub(crate) struct PooledBody {
    incoming: Incoming,
    conn: Option<Box<Conn>>,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut polled = Poll::Pending;
        // Twice at most: the connection hands over a chunk only once the body has asked for
        // one, which the first poll of the body does.
        for _ in 0..2 {
            if let Some(conn) = &mut this.conn {
                conn.drive(cx);
            }
            polled = Pin::new(&mut this.incoming).poll_frame(cx);
            if polled.is_ready() || this.conn.as_ref().is_none_or(|conn| !conn.open) {
                break;
            }
        }
        match &polled {
            Poll::Ready(None) => {
                if let Some(conn) = this.conn.take() {
                    checkin(conn, cx);
                }
            }
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests;
