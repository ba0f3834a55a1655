// SPDX-License-Identifier: BSD-2-Clause
//! Tests of the HTTP parser and writer, including property tests that no input panics.

use super::*;
use proptest::prelude::*;

fn req(raw: &str) -> Parsed<'static> {
    let path = Box::leak(Box::new([0u8; 256]));
    parse(raw.as_bytes(), path)
}

fn ok(raw: &str) -> (Request<'static>, usize) {
    match req(raw) {
        Parsed::Request(r, n) => (r, n),
        other => panic!("{raw:?}: {other:?}"),
    }
}

fn status_of(raw: &str) -> Status {
    match req(raw) {
        Parsed::Error { status, .. } => status,
        other => panic!("{raw:?}: {other:?}"),
    }
}

#[test]
fn get_and_head_with_defaults() {
    let raw = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    let (r, n) = ok(raw);
    assert_eq!(n, raw.len());
    assert_eq!(r.method, Method::Get);
    assert_eq!(r.path, "/index.html");
    assert!(r.keep_alive, "HTTP/1.1 keeps the connection by default");
    assert_eq!(r.range, None);
    let (r, _) = ok("HEAD /a/b.txt?x=1#f HTTP/1.1\r\nhost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.method, Method::Head);
    assert_eq!(r.path, "/a/b.txt");
    assert!(!r.keep_alive);
    let (r, _) = ok("GET / HTTP/1.0\r\n\r\n");
    assert!(!r.keep_alive, "HTTP/1.0 closes by default");
    assert_eq!(r.path, "/");
    let (r, _) = ok("GET / HTTP/1.0\nConnection: Keep-Alive\n\n");
    assert!(r.keep_alive, "bare LF lines and HTTP/1.0 keep-alive");
}

#[test]
fn incomplete_then_complete_and_pipelined() {
    let raw = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    for cut in 0..28 {
        assert_eq!(req(&raw[..cut]), Parsed::Incomplete, "cut at {cut}");
    }
    let (r, n) = ok(raw);
    assert_eq!((r.path, n), ("/a", 28));
    let (r, _) = ok(&raw[n..]);
    assert_eq!(r.path, "/b");
}

#[test]
fn errors() {
    assert_eq!(
        status_of("POST / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Status::MethodNotAllowed
    );
    assert_eq!(
        status_of("GET / HTTP/1.1\r\n\r\n"),
        Status::BadRequest,
        "no Host"
    );
    assert_eq!(
        status_of("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Status::BadRequest
    );
    assert_eq!(status_of("GET /\r\n\r\n"), Status::BadRequest, "HTTP/0.9");
    assert_eq!(
        status_of("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Status::BadRequest
    );
    assert_eq!(
        status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
        Status::VersionNotSupported
    );
    assert_eq!(
        status_of("GET / HTTP/1.1\r\nHost x\r\n\r\n"),
        Status::BadRequest
    );
    assert_eq!(
        status_of("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        Status::BadRequest
    );
    assert_eq!(
        status_of("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n"),
        Status::BadRequest
    );
    assert_eq!(
        status_of("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Status::NotImplemented
    );
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(300));
    assert_eq!(
        status_of(&long),
        Status::UriTooLong,
        "longer than the path buffer"
    );
    let endless = format!("GET /{}", "a".repeat(MAX_HEAD));
    assert_eq!(status_of(&endless), Status::UriTooLong);
    let fat = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n",
        "a".repeat(MAX_HEAD)
    );
    assert_eq!(status_of(&fat), Status::HeaderTooLarge);
    // 405 keeps the connection and skips exactly the request.
    let raw = "DELETE /x HTTP/1.1\r\nHost: x\r\n\r\nGET /";
    assert_eq!(
        req(raw),
        Parsed::Error {
            status: Status::MethodNotAllowed,
            consumed: raw.len() - 5,
            keep_alive: true
        }
    );
}

#[test]
fn request_bodies_are_skipped() {
    let raw = "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(req(&raw[..raw.len() - 1]), Parsed::Incomplete);
    assert_eq!(ok(raw).1, raw.len());
    let big = "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n";
    assert_eq!(status_of(big), Status::ContentTooLarge);
    let bad = "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n";
    assert_eq!(status_of(bad), Status::BadRequest);
}

#[test]
fn normalisation_never_escapes_the_root() {
    let mut b = [0u8; 64];
    let mut n = |t: &str| normalise(t.as_bytes(), &mut b).map(String::from);
    assert_eq!(n("/"), Ok("/".into()));
    assert_eq!(n("//a//b/"), Ok("/a/b".into()));
    assert_eq!(n("/a/./b/../c"), Ok("/a/c".into()));
    assert_eq!(n("/a/b/../.."), Ok("/".into()));
    assert_eq!(n("/a/%62%2E%74xt"), Ok("/a/b.txt".into()));
    assert_eq!(n("/hello%20world.txt"), Ok("/hello world.txt".into()));
    assert_eq!(n("/a/%2e%2e/%2E%2e/etc/passwd"), Err(Status::BadRequest));
    assert_eq!(n("/.."), Err(Status::BadRequest));
    assert_eq!(n("/../etc/passwd"), Err(Status::BadRequest));
    assert_eq!(n("/a/../../x"), Err(Status::BadRequest));
    assert_eq!(n("/a%00.txt"), Err(Status::BadRequest));
    assert_eq!(n("/a%2fb"), Err(Status::BadRequest), "an encoded separator");
    assert_eq!(n("/a\\..\\b"), Err(Status::BadRequest));
    assert_eq!(n("/a%5c..%5cb"), Err(Status::BadRequest));
    assert_eq!(n("/%zz"), Err(Status::BadRequest));
    assert_eq!(n("/%4"), Err(Status::BadRequest));
    assert_eq!(n("/%ff"), Err(Status::BadRequest), "not UTF-8");
    assert_eq!(n("a"), Err(Status::BadRequest));
    assert_eq!(n(&format!("/{}", "x".repeat(64))), Err(Status::UriTooLong));
}

#[test]
fn ranges() {
    assert_eq!(parse_range(b"bytes=0-99"), Some(Range::FromTo(0, 99)));
    assert_eq!(parse_range(b"bytes=100-"), Some(Range::From(100)));
    assert_eq!(parse_range(b"bytes=-5"), Some(Range::Last(5)));
    assert_eq!(parse_range(b"bytes=5-4"), None);
    assert_eq!(
        parse_range(b"bytes=0-1,4-5"),
        None,
        "multiple ranges are ignored"
    );
    assert_eq!(parse_range(b"items=0-1"), None);
    assert_eq!(parse_range(b"bytes=-"), None);
    assert_eq!(parse_range(b"bytes=99999999999999999999-"), None);
    assert_eq!(Range::FromTo(0, 99).resolve(50), Some((0, 50)));
    assert_eq!(Range::FromTo(10, 19).resolve(50), Some((10, 10)));
    assert_eq!(Range::From(49).resolve(50), Some((49, 1)));
    assert_eq!(Range::From(50).resolve(50), None);
    assert_eq!(Range::Last(80).resolve(50), Some((0, 50)));
    assert_eq!(Range::Last(0).resolve(50), None);
    assert_eq!(Range::Last(1).resolve(0), None);
}

#[test]
fn dates_round_trip() {
    assert_eq!(
        HttpDate(784_111_777).to_string(),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(HttpDate(0).to_string(), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        HttpDate(951_782_400).to_string(),
        "Tue, 29 Feb 2000 00:00:00 GMT"
    );
    assert_eq!(
        parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), None);
    assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 UTC"), None);
    assert_eq!(parse_http_date(b"Sun, 06 Xyz 1994 08:49:37 GMT"), None);
    for t in [
        0u64,
        1,
        86_399,
        86_400,
        951_868_799,
        1_700_000_000,
        4_102_444_800,
    ] {
        let s = HttpDate(t).to_string();
        assert_eq!(parse_http_date(s.as_bytes()), Some(t), "{s}");
    }
}

#[test]
fn content_types() {
    assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
    assert_eq!(content_type("/A.PNG"), "image/png");
    assert_eq!(content_type("/x.tar.gz"), "application/gzip");
    assert_eq!(content_type("/dir.d/noext"), "application/octet-stream");
    assert_eq!(content_type("/x.unknown"), "application/octet-stream");
}

fn head_text(h: &Head) -> String {
    let mut out = [0u8; 256];
    let n = h.write(&mut out).expect("fits in 256 bytes");
    String::from_utf8(out[..n].to_vec()).unwrap()
}

#[test]
fn decisions_and_heads() {
    let meta = Some(Meta {
        size: 1000,
        mtime: 784_111_777,
    });
    let (r, _) = ok("GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let (h, body) = decide(&r, meta);
    assert_eq!(body, Some((0, 1000)));
    assert_eq!(
        head_text(&h),
        "HTTP/1.1 200 OK\r\nServer: lions\r\nContent-Length: 1000\r\n\
         Content-Type: text/plain; charset=utf-8\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
         Accept-Ranges: bytes\r\nConnection: keep-alive\r\n\r\n"
    );
    let (r, _) = ok("HEAD /f.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let (h, body) = decide(&r, meta);
    assert_eq!((h.status, h.content_length, body), (Status::Ok, 1000, None));
    let (r, _) = ok("GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=-10\r\n\r\n");
    let (h, body) = decide(&r, meta);
    assert_eq!(body, Some((990, 10)));
    assert!(head_text(&h).contains("206 Partial Content\r\n"));
    assert!(head_text(&h).contains("Content-Range: bytes 990-999/1000\r\n"));
    assert!(head_text(&h).contains("Content-Length: 10\r\n"));
    let (r, _) = ok("GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\n\r\n");
    let (h, body) = decide(&r, meta);
    assert_eq!((h.status, body), (Status::RangeNotSatisfiable, None));
    assert!(head_text(&h).contains("Content-Range: bytes */1000\r\n"));
    let (r, _) = ok(
        "GET /f HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    );
    let (h, body) = decide(&r, meta);
    assert_eq!((h.status, body), (Status::NotModified, None));
    assert!(!head_text(&h).contains("Content-Length"));
    let (r, _) = ok(
        "GET /f HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n\r\n",
    );
    assert_eq!(
        decide(&r, meta).0.status,
        Status::Ok,
        "modified a second later"
    );
    let (h, body) = decide(&r, None);
    assert_eq!((h.status, body), (Status::NotFound, None));
    assert_eq!(h.content_length, error_body(Status::NotFound).len() as u64);
    let h = Head::error(Status::MethodNotAllowed, false);
    assert!(head_text(&h).contains("Allow: GET, HEAD\r\nConnection: close\r\n\r\n"));
    // The longest head fits in 512 bytes.
    let h = Head {
        status: Status::RangeNotSatisfiable,
        content_length: u64::MAX,
        content_type: "text/markdown; charset=utf-8",
        last_modified: Some(u64::MAX),
        content_range: Some((u64::MAX - 1, 1, u64::MAX)),
        unsatisfied_size: Some(u64::MAX),
        keep_alive: true,
    };
    assert!(h.write(&mut [0; 512]).is_some());
    assert_eq!(h.write(&mut [0; 40]), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Any bytes: no panic, and a request's `consumed` lies within the input and its path is
    /// normalised.
    #[test]
    fn parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut path = [0u8; 128];
        match parse(&bytes, &mut path) {
            Parsed::Request(r, n) => {
                prop_assert!(n <= bytes.len());
                prop_assert!(r.path.starts_with('/'));
                prop_assert!(!r.path.split('/').any(|s| s == ".." || s == "."));
            }
            Parsed::Error { consumed, .. } => prop_assert!(consumed <= bytes.len()),
            Parsed::Incomplete => {}
        }
    }

    /// Request-shaped inputs with hostile targets and headers.
    #[test]
    fn structured_requests_are_total(
        method in "(GET|HEAD|POST|[A-Z]{1,6})",
        target in "/([a-z.%0-9/]|%2e|%2E|\\.\\.|%00){0,40}",
        headers in proptest::collection::vec(
            "(Host: x|Range: bytes=[0-9-]{0,8}|If-Modified-Since: [A-Za-z0-9 ,:]{0,30}|Connection: (close|keep-alive)|Content-Length: [0-9]{0,3})",
            0..5),
    ) {
        let raw = format!("{method} {target} HTTP/1.1\r\n{}\r\n", headers.iter().map(|h| format!("{h}\r\n")).collect::<String>());
        let mut path = [0u8; 128];
        if let Parsed::Request(r, n) = parse(raw.as_bytes(), &mut path) {
            prop_assert!(n <= raw.len());
            prop_assert!(!r.path.split('/').any(|s| s == ".."));
            prop_assert!(!r.path.contains('\0'));
            let (h, body) = decide(&r, Some(Meta { size: 100, mtime: 1 }));
            if let Some((first, len)) = body {
                prop_assert!(first + len <= 100);
                prop_assert_eq!(h.content_length, len);
            }
            prop_assert!(h.write(&mut [0; 256]).is_some());
        }
    }

    /// Normalisation agrees with a plain model: decode, split, fold `..`.
    #[test]
    fn normalise_matches_a_model(segs in proptest::collection::vec("(a|b|\\.|\\.\\.|%2e%2e|%2E|)", 0..8)) {
        let target = format!("/{}", segs.join("/"));
        let mut out = [0u8; 128];
        let mut stack: Vec<String> = Vec::new();
        let mut escaped = false;
        for s in &segs {
            let s = s.replace("%2e", ".").replace("%2E", ".");
            match s.as_str() {
                "" | "." => {}
                ".." => escaped |= stack.pop().is_none(),
                other => stack.push(other.into()),
            }
        }
        let got = normalise(target.as_bytes(), &mut out);
        if escaped {
            prop_assert_eq!(got, Err(Status::BadRequest));
        } else {
            let want = format!("/{}", stack.join("/"));
            prop_assert_eq!(got, Ok(want.as_str()));
        }
    }
}
