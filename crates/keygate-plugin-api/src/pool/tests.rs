use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn key(uri: &str) -> Key {
    let uri: Uri = uri.parse().unwrap();
    (
        uri.scheme().unwrap().clone(),
        uri.authority().unwrap().clone(),
    )
}

#[test]
fn host_header_drops_default_ports_and_userinfo() {
    for (uri, host) in [
        ("https://api.openai.com/v1", "api.openai.com"),
        ("https://api.openai.com:443/v1", "api.openai.com"),
        ("http://127.0.0.1:8080/v1", "127.0.0.1:8080"),
        ("http://user:pw@example.com:81/", "example.com:81"),
        ("http://[::1]:80/", "[::1]"),
    ] {
        let (scheme, authority) = key(uri);
        assert_eq!(host_header(&scheme, &authority), host, "{uri}");
    }
}

/// What the test server answers to one request: the bytes to write, and whether to close the
/// connection after them.
type Answer = (Vec<u8>, bool);

/// A raw HTTP/1.1 server: each request (head and `content-length` body) is answered by
/// `answer(connection number, request number on it)`. Returns its address and the request heads
/// seen, each with its connection number.
async fn server(
    answer: impl Fn(usize, usize) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<(usize, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let log = seen.clone();
    tokio::spawn(async move {
        for conn in 0.. {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (answer, log) = (answer.clone(), log.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 0.. {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        if !read_more(&mut socket, &mut buf).await {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    while buf.len() < head_end + length {
                        if !read_more(&mut socket, &mut buf).await {
                            return;
                        }
                    }
                    buf.drain(..head_end + length);
                    log.lock().unwrap().push((conn, head));
                    let (bytes, close) = answer(conn, n);
                    if socket.write_all(&bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Reads what has arrived onto `buf`; false at the end of the connection.
async fn read_more(socket: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(k) => {
            buf.extend_from_slice(&chunk[..k]);
            true
        }
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn post(addr: SocketAddr) -> Request<Bytes> {
    Request::post(format!("http://{addr}/v1/chat/completions"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from_static(b"{\"model\":\"m\"}"))
        .unwrap()
}

/// The connection number of each request the server saw.
fn conns(seen: &Mutex<Vec<(usize, String)>>) -> Vec<usize> {
    seen.lock().unwrap().iter().map(|(c, _)| *c).collect()
}

async fn text(addr: SocketAddr) -> String {
    let (head, body) = send(post(addr)).await.unwrap();
    assert_eq!(head.status, 200);
    let body = body.collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn sequential_requests_share_one_connection_in_origin_form_with_a_host() {
    let (addr, seen) = server(|_, n| (ok(&format!("answer {n}")), false)).await;
    for n in 0..3 {
        assert_eq!(text(addr).await, format!("answer {n}"));
    }
    assert_eq!(conns(&seen), [0, 0, 0]);
    let seen = seen.lock().unwrap();
    let head = &seen[0].1;
    assert!(
        head.starts_with("post /v1/chat/completions http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
    assert!(head.contains("content-length: 13\r\n"), "{head}");
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    // The server closes after each answer without saying so: the pooled connection is found
    // closed when it is taken out, and the request goes out on a new one.
    let (addr, seen) = server(|c, _| (ok(&format!("conn {c}")), true)).await;
    assert_eq!(text(addr).await, "conn 0");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(text(addr).await, "conn 1");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_connection_the_response_ends_is_not_reused() {
    // `connection: close`, and a body that ends with the connection.
    for (answer, close) in [
        (
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
            false,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\nok", true),
    ] {
        let answer = answer.to_vec();
        let (addr, seen) = server(move |_, _| (answer.clone(), close)).await;
        assert_eq!(text(addr).await, "ok");
        assert_eq!(text(addr).await, "ok");
        assert_eq!(conns(&seen), [0, 1]);
    }
}

#[tokio::test]
async fn chunks_already_read_come_out_as_one_piece() {
    // Three chunks in one write, and the stream stays open: they come out together, and then
    // the body waits.
    let chunks = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        2\r\nc1\r\n2\r\nc2\r\n2\r\nc3\r\n"
        .to_vec();
    let (addr, _) = server(move |_, _| (chunks.clone(), false)).await;
    let (_, mut body) = send(post(addr)).await.unwrap();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "c1c2c3");
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_its_connection_is_not_reused() {
    let (addr, seen) = server(|c, _| {
        if c == 0 {
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf".to_vec(),
                true,
            )
        } else {
            (ok("whole"), false)
        }
    })
    .await;
    let (_, body) = send(post(addr)).await.unwrap();
    let err = body.collect().await.unwrap_err();
    assert!(
        matches!(err, SendError::Wire(WireError::Incomplete)),
        "{err}"
    );
    assert_eq!(text(addr).await, "whole");
    assert_eq!(conns(&seen), [0, 1]);
}

#[tokio::test]
async fn a_response_that_is_not_http_is_an_error() {
    let (addr, _) = server(|_, _| (b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(), true)).await;
    let err = send(post(addr)).await.err().unwrap();
    assert!(matches!(err, SendError::Wire(WireError::Head(_))), "{err}");
    let (addr, _) = server(|_, _| (Vec::new(), true)).await;
    let err = send(post(addr)).await.err().unwrap();
    assert!(
        matches!(err, SendError::Wire(WireError::Incomplete)),
        "{err}"
    );
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let (addr, seen) = server(|c, _| {
        if c == 0 {
            let open = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nc1\r\n";
            (open.to_vec(), false)
        } else {
            (ok("fresh"), false)
        }
    })
    .await;
    let (_, mut body) = send(post(addr)).await.unwrap();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "c1"
    );
    drop(body);
    assert_eq!(text(addr).await, "fresh");
    assert_eq!(conns(&seen), [0, 1]);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(matches!(send(post(addr)).await, Err(SendError::Connect(_))));
    let relative = Request::post("/v1/chat").body(Bytes::new()).unwrap();
    assert!(matches!(send(relative).await, Err(SendError::BadUri)));
}
