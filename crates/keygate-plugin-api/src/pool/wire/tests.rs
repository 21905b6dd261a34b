use http::Request;

use super::*;

fn head_of_bytes(raw: &[u8]) -> Result<Option<Head>, WireError> {
    parse_head(&mut BytesMut::from(raw), false)
}

fn head(raw: &str) -> Head {
    match head_of_bytes(raw.as_bytes()) {
        Ok(Some(head)) => head,
        other => panic!("{raw:?}: {other:?}"),
    }
}

/// Feeds `raw` to `decoder` in pieces cut at `cuts`, as reads would bring it; returns the body
/// bytes decoded and what was left in the buffer after the body.
fn decode_in_pieces(
    mut decoder: Decoder,
    raw: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&raw.len()]) {
        buf.extend_from_slice(&raw[from..to]);
        from = to;
        body.extend_from_slice(&decoder.decode(&mut buf)?);
    }
    if !decoder.is_done() {
        decoder.eof()?;
    }
    Ok((body, buf.to_vec()))
}

#[test]
fn the_request_head_is_origin_form_with_the_body_length() {
    let request = Request::post("http://up.example/v1/chat?x=1")
        .header("host", "up.example")
        .header("content-type", "application/json")
        .header("content-length", "999")
        .header("transfer-encoding", "chunked")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    assert_eq!(
        String::from_utf8(request_head(&parts, None, 13)).unwrap(),
        "POST /v1/chat?x=1 HTTP/1.1\r\nhost: up.example\r\ncontent-type: application/json\r\n\
         content-length: 13\r\n\r\n"
    );
    let (get, ()) = Request::get("http://up.example")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(request_head(&get, None, 0), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        request_head(&get, Some("up.example:8080"), 0),
        b"GET / HTTP/1.1\r\nhost: up.example:8080\r\n\r\n"
    );
    let (post, ()) = Request::post("http://up.example/x")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        request_head(&post, None, 0),
        b"POST /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
    );
    for len in [7, 10, 1234567890, usize::MAX] {
        let head = String::from_utf8(request_head(&post, None, len)).unwrap();
        assert!(
            head.contains(&format!("content-length: {len}\r\n")),
            "{head}"
        );
    }
}

#[test]
fn a_head_is_read_only_once_complete_and_leaves_the_body() {
    let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-multi: a\r\nX-Multi: b\r\n\
        content-length: 5\r\n\r\nhello";
    let end = raw.len() - 5;
    for cut in 0..end {
        assert!(
            head_of_bytes(&raw[..cut]).unwrap().is_none(),
            "cut at {cut}"
        );
    }
    let mut buf = BytesMut::from(&raw[..]);
    let head = parse_head(&mut buf, false).unwrap().unwrap();
    assert_eq!(&buf[..], b"hello");
    assert_eq!(head.parts.status, 200);
    assert_eq!(head.parts.version, Version::HTTP_11);
    assert_eq!(head.parts.headers["content-type"], "text/plain");
    let multi: Vec<_> = head.parts.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["a", "b"]);
    assert_eq!(head.body, Decoder::Length(5));
    assert!(head.keep_alive);
}

#[test]
fn interim_responses_are_skipped() {
    let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
        HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
    let head = head(raw);
    assert_eq!(head.parts.status, 201);
    assert!(!head.parts.headers.contains_key("link"));
    assert_eq!(head.body, Decoder::Done);
}

#[test]
fn the_body_framing_follows_rfc_9112() {
    for (raw, body, keep_alive) in [
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n",
            Decoder::Length(7),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\n\r\n",
            Decoder::Length(7),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            Decoder::Done,
            true,
        ),
        ("HTTP/1.1 204 No Content\r\n\r\n", Decoder::Done, true),
        (
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
            Decoder::Done,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
            Decoder::Chunked(Chunk::Size),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Decoder::Chunked(Chunk::Size),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            Decoder::Chunked(Chunk::Size),
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            Decoder::Close,
            false,
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", Decoder::Close, false),
        (
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
            Decoder::Length(1),
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nconnection: te, Close\r\ncontent-length: 1\r\n\r\n",
            Decoder::Length(1),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
            Decoder::Length(1),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n",
            Decoder::Length(1),
            true,
        ),
    ] {
        let head = head(raw);
        assert_eq!((head.body, head.keep_alive), (body, keep_alive), "{raw:?}");
    }
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n"[..]);
    let head = parse_head(&mut buf, true).unwrap().unwrap();
    assert_eq!(head.body, Decoder::Done, "a response to HEAD has no body");
}

#[test]
fn broken_heads_are_errors() {
    for (raw, err) in [
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            WireError::ContentLength,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            WireError::ContentLength,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5x\r\n\r\n",
            WireError::ContentLength,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
            WireError::ContentLength,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\n",
            WireError::ContentLength,
        ),
        (
            "SSH-2.0-OpenSSH_9.6\r\n\r\n",
            WireError::Head("not an HTTP/1.x status line and headers"),
        ),
        (
            "HTTP/1.1 999999 OK\r\n\r\n",
            WireError::Head("not an HTTP/1.x status line and headers"),
        ),
        (
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            WireError::Head("not an HTTP/1.x status line and headers"),
        ),
    ] {
        assert_eq!(head_of_bytes(raw.as_bytes()).unwrap_err(), err, "{raw:?}");
    }
    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
    let raw = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert_eq!(
        head_of_bytes(raw.as_bytes()).unwrap_err(),
        WireError::Head("too many headers")
    );
    let endless = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD));
    assert_eq!(
        head_of_bytes(endless.as_bytes()).unwrap_err(),
        WireError::HeadTooLarge
    );
}

const CHUNKED: &[u8] = b"5\r\nhello\r\n1;name=value\r\n \r\n000b\r\nworld, and!\r\n0\r\n\r\nNEXT";

#[test]
fn a_chunked_body_decodes_the_same_however_it_arrives() {
    let want = (b"hello world, and!".to_vec(), b"NEXT".to_vec());
    let chunked = Decoder::Chunked(Chunk::Size);
    assert_eq!(decode_in_pieces(chunked, CHUNKED, &[]).unwrap(), want);
    for cut in 0..CHUNKED.len() {
        assert_eq!(
            decode_in_pieces(chunked, CHUNKED, &[cut]).unwrap(),
            want,
            "cut at {cut}"
        );
    }
    let every_byte: Vec<usize> = (1..CHUNKED.len()).collect();
    assert_eq!(
        decode_in_pieces(chunked, CHUNKED, &every_byte).unwrap(),
        want
    );
}

#[test]
fn all_the_chunks_read_come_out_as_one_piece() {
    let mut decoder = Decoder::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&b"2\r\nc1\r\n2\r\nc2\r\n2\r\nc3\r\n1"[..]);
    assert_eq!(&decoder.decode(&mut buf).unwrap()[..], b"c1c2c3");
    assert_eq!(&buf[..], b"1");
    assert_eq!(decoder, Decoder::Chunked(Chunk::Size));
}

#[test]
fn trailers_are_read_and_dropped() {
    let raw = b"3\r\nabc\r\n0\r\nx-checksum: 1\r\nx-other: 2\r\n\r\n";
    for cut in 0..raw.len() {
        let decoded = decode_in_pieces(Decoder::Chunked(Chunk::Size), raw, &[cut]).unwrap();
        assert_eq!(decoded, (b"abc".to_vec(), Vec::new()), "cut at {cut}");
    }
}

#[test]
fn broken_chunked_bodies_are_errors() {
    for (raw, err) in [
        (&b"zz\r\n"[..], WireError::Chunked("invalid chunk size")),
        (
            b"3\r\nabcX\r\n",
            WireError::Chunked("chunk data not followed by CRLF"),
        ),
        (
            b"fffffffffffffffff\r\n",
            WireError::Chunked("invalid chunk size"),
        ),
        (b"3\r\nab", WireError::Incomplete),
        (b"3\r\nabc\r\n0\r\n", WireError::Incomplete),
    ] {
        assert_eq!(
            decode_in_pieces(Decoder::Chunked(Chunk::Size), raw, &[]).unwrap_err(),
            err,
            "{raw:?}"
        );
    }
    let endless = [b"1;".as_slice(), &[b'x'; MAX_CHUNK_LINE]].concat();
    assert_eq!(
        decode_in_pieces(Decoder::Chunked(Chunk::Size), &endless, &[]).unwrap_err(),
        WireError::Chunked("chunk-size line too long")
    );
    let trailers = [b"0\r\n".as_slice(), &[b'x'; MAX_TRAILERS]].concat();
    assert_eq!(
        decode_in_pieces(Decoder::Chunked(Chunk::Size), &trailers, &[]).unwrap_err(),
        WireError::Chunked("trailers too long")
    );
}

#[test]
fn a_length_body_stops_at_its_length_and_a_close_body_at_the_end() {
    let raw = b"0123456789NEXT";
    for cut in 0..raw.len() {
        let decoded = decode_in_pieces(Decoder::Length(10), raw, &[cut]).unwrap();
        assert_eq!(
            decoded,
            (b"0123456789".to_vec(), b"NEXT".to_vec()),
            "cut at {cut}"
        );
    }
    assert_eq!(
        decode_in_pieces(Decoder::Length(10), b"01234", &[]).unwrap_err(),
        WireError::Incomplete
    );
    let decoded = decode_in_pieces(Decoder::Close, raw, &[3, 7]).unwrap();
    assert_eq!(decoded, (raw.to_vec(), Vec::new()));
    assert_eq!(Decoder::Length(4).remaining(), Some(4));
    assert_eq!(Decoder::Close.remaining(), None);
}

#[test]
fn a_whole_response_reads_the_same_in_reads_of_any_size() {
    let chunked = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".as_slice(),
        CHUNKED,
    ]
    .concat();
    for raw in [
        chunked.as_slice(),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcdef",
        b"HTTP/1.0 200 OK\r\n\r\nto the end",
        b"HTTP/1.1 200 OK\r\ncontent-length: 30\r\n\r\ntoo short",
    ] {
        let read = |step| {
            read_response_in_pieces(raw, step)
                .map(|(parts, body)| (parts.status, parts.headers, body))
        };
        let whole = read(raw.len());
        for step in 1..raw.len() {
            assert_eq!(read(step), whole, "{step}-byte reads of {raw:?}");
        }
    }
    let (parts, body) = read_response_in_pieces(&chunked, 7).unwrap();
    assert_eq!(
        (parts.status, &body[..]),
        (StatusCode::OK, &b"hello world, and!"[..])
    );
}
