// SPDX-License-Identifier: BSD-2-Clause
//! HTTP/1.1 for a static-file server: a request parser and a response-head writer, no_std, no
//! allocation, total over any input (every byte sequence gives a request, "incomplete" or an
//! error status; nothing panics).
//!
//! ## Requests ([`parse`])
//!
//! - Request line `METHOD SP TARGET SP HTTP/1.x CRLF` (a bare LF ends a line too), then header
//!   lines up to an empty line. `GET` and `HEAD` are served; any other method token is `405`
//!   (with `Allow: GET, HEAD`), a malformed line `400`, a version other than `HTTP/1.x` `505`.
//! - The target is an origin-form path (`/a/b?query#frag`: query and fragment are dropped). It
//!   is percent-decoded and normalised ([`normalise`]): `.` segments and empty segments vanish,
//!   `..` removes the previous segment, and a `..` at the root, a NUL, a backslash or a bad
//!   escape is `400`: a normalised path never leaves the served root. A target longer than the
//!   path buffer is `414`.
//! - Headers used: `Host` (required by HTTP/1.1: missing is `400`), `Connection` (`close`,
//!   `keep-alive`; HTTP/1.1 defaults to keep-alive, HTTP/1.0 to close), `Range` (one range of
//!   `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else is ignored, as RFC 9110 allows),
//!   `If-Modified-Since` (IMF-fixdate; an unparsable date is ignored), `Content-Length` (a
//!   request body is skipped), `Transfer-Encoding` (`501`: no chunked request bodies).
//! - A request head larger than [`MAX_HEAD`] is `431` (`414` if its request line alone is).
//!
//! ## Responses ([`Head::write`])
//!
//! Status line, `Server`, `Content-Length`, `Content-Type`, `Last-Modified`, `Accept-Ranges:
//! bytes`, `Content-Range` (206 and 416), `Allow` (405), `Connection: close` or `keep-alive`.
//! [`decide`] turns a request and the file's metadata into the head and the body's byte range
//! (200, 206, 304, 404, 416).

use core::fmt::Write as _;

/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8192;

/// The methods served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: head and body.
    Get,
    /// `HEAD`: the head `GET` would send, no body.
    Head,
}

impl Method {
    /// The method's token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
        }
    }
}

/// The response statuses this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200 OK.
    Ok,
    /// 206 Partial Content.
    PartialContent,
    /// 304 Not Modified.
    NotModified,
    /// 400 Bad Request.
    BadRequest,
    /// 404 Not Found.
    NotFound,
    /// 405 Method Not Allowed.
    MethodNotAllowed,
    /// 413 Content Too Large (a request body larger than we skip).
    ContentTooLarge,
    /// 414 URI Too Long.
    UriTooLong,
    /// 416 Range Not Satisfiable.
    RangeNotSatisfiable,
    /// 431 Request Header Fields Too Large.
    HeaderTooLarge,
    /// 500 Internal Server Error (the file source failed).
    InternalError,
    /// 501 Not Implemented (a chunked request body).
    NotImplemented,
    /// 505 HTTP Version Not Supported.
    VersionNotSupported,
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::PartialContent => 206,
            Self::NotModified => 304,
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::ContentTooLarge => 413,
            Self::UriTooLong => 414,
            Self::RangeNotSatisfiable => 416,
            Self::HeaderTooLarge => 431,
            Self::InternalError => 500,
            Self::NotImplemented => 501,
            Self::VersionNotSupported => 505,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::PartialContent => "Partial Content",
            Self::NotModified => "Not Modified",
            Self::BadRequest => "Bad Request",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::ContentTooLarge => "Content Too Large",
            Self::UriTooLong => "URI Too Long",
            Self::RangeNotSatisfiable => "Range Not Satisfiable",
            Self::HeaderTooLarge => "Request Header Fields Too Large",
            Self::InternalError => "Internal Server Error",
            Self::NotImplemented => "Not Implemented",
            Self::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// One byte range as the client wrote it (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `bytes=a-b` (both inclusive; `b` may lie past the end).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Last(u64),
}

impl Range {
    /// The range in a file of `size` bytes as `(first, length)`, or `None` if unsatisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            Self::FromTo(a, b) if a < size => Some((a, b.min(size - 1) - a + 1)),
            Self::From(a) if a < size => Some((a, size - a)),
            Self::Last(n) if n > 0 && size > 0 => {
                let n = n.min(size);
                Some((size - n, n))
            }
            _ => None,
        }
    }
}

/// A parsed request; its path is the normalised one in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'p> {
    /// The method.
    pub method: Method,
    /// The normalised path: starts with `/`, no `.`/`..`/empty segments, no trailing `/` (except
    /// the root itself).
    pub path: &'p str,
    /// The client keeps the connection open after this response.
    pub keep_alive: bool,
    /// A single byte range asked for.
    pub range: Option<Range>,
    /// `If-Modified-Since`, in seconds since the Unix epoch.
    pub if_modified_since: Option<u64>,
}

/// What [`parse`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'p> {
    /// More bytes are needed (the head is not complete yet, or its body not all here).
    Incomplete,
    /// A request, and how many bytes of the buffer it took (head and any body).
    Request(Request<'p>, usize),
    /// A request that gets this error status; the connection closes after the answer unless
    /// `keep_alive` (then `consumed` bytes are dropped and the next request follows).
    Error {
        /// The status to answer with.
        status: Status,
        /// Bytes the failed request took, when the connection can go on.
        consumed: usize,
        /// The connection can go on after the answer.
        keep_alive: bool,
    },
}

/// An error status that ends the connection after it is answered.
const fn fatal(status: Status) -> Parsed<'static> {
    Parsed::Error {
        status,
        consumed: 0,
        keep_alive: false,
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The end of the line starting at `from` (index of its LF) and the line without CR/LF.
fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(from..)?;
    let lf = rest.iter().position(|&b| b == b'\n')?;
    let l = &rest[..lf];
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    Some((l, from + lf + 1))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`; `None` for anything else (ignored, RFC 9110 §14.2).
pub fn parse_range(v: &[u8]) -> Option<Range> {
    let spec = v.strip_prefix(b"bytes=")?;
    let spec = trim(spec);
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (a, b) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
    match (a.is_empty(), b.is_empty()) {
        (true, false) => Some(Range::Last(parse_u64(b)?)),
        (false, true) => Some(Range::From(parse_u64(a)?)),
        (false, false) => {
            let (a, b) = (parse_u64(a)?, parse_u64(b)?);
            (a <= b).then_some(Range::FromTo(a, b))
        }
        (true, true) => None,
    }
}

/// Percent-decode and normalise a request target into `out` (see the module docs); `Err` is
/// the status to answer.
pub fn normalise<'o>(target: &[u8], out: &'o mut [u8]) -> Result<&'o str, Status> {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let target = &target[..end];
    if target.first() != Some(&b'/') {
        return Err(Status::BadRequest);
    }
    if out.is_empty() {
        return Err(Status::UriTooLong);
    }
    out[0] = b'/';
    let mut len = 1;
    // Decoded segment by segment: `%2f` is a byte of a name, not a separator, so it is refused
    // like a raw `/` inside a name would be impossible.
    for seg in target.split(|&b| b == b'/') {
        let start = len;
        let mut i = 0;
        while i < seg.len() {
            let b = match seg[i] {
                b'%' => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    let (Some(h), Some(l)) = (
                        seg.get(i + 1).and_then(|&c| hex(c)),
                        seg.get(i + 2).and_then(|&c| hex(c)),
                    ) else {
                        return Err(Status::BadRequest);
                    };
                    i += 3;
                    // Both digits are below 16: the value fits.
                    u8::try_from(h * 16 + l).map_err(|_| Status::BadRequest)?
                }
                c => {
                    i += 1;
                    c
                }
            };
            if matches!(b, 0 | b'/' | b'\\') || b < 0x20 || b == 0x7f {
                return Err(Status::BadRequest);
            }
            *out.get_mut(len).ok_or(Status::UriTooLong)? = b;
            len += 1;
        }
        match &out[start..len] {
            b"" | b"." => len = start,
            b".." => {
                // Drop `..` and the segment before it (with its slash); at the root it would
                // escape.
                if start <= 1 {
                    return Err(Status::BadRequest);
                }
                let prev = out[..start - 1]
                    .iter()
                    .rposition(|&b| b == b'/')
                    .unwrap_or(0);
                len = prev + 1;
            }
            _ => {
                *out.get_mut(len).ok_or(Status::UriTooLong)? = b'/';
                len += 1;
            }
        }
    }
    if len > 1 {
        len -= 1; // the trailing separator
    }
    core::str::from_utf8(&out[..len]).map_err(|_| Status::BadRequest)
}

/// Parse the request at the start of `buf` (see the module docs); its path is written to
/// `path`.
pub fn parse<'p>(buf: &[u8], path: &'p mut [u8]) -> Parsed<'p> {
    // Tolerate empty lines before a request (RFC 9112 §2.2).
    let mut start = 0;
    while let Some((b"", next)) = line(buf, start) {
        start = next;
    }
    let Some((request_line, mut at)) = line(buf, start) else {
        return if buf.len() - start >= MAX_HEAD {
            fatal(Status::UriTooLong)
        } else {
            Parsed::Incomplete
        };
    };
    // The whole head must be here first.
    let mut end = None;
    let mut scan = at;
    while let Some((l, next)) = line(buf, scan) {
        if l.is_empty() {
            end = Some(next);
            break;
        }
        scan = next;
    }
    let Some(head_end) = end else {
        return if buf.len() - start >= MAX_HEAD {
            fatal(Status::HeaderTooLarge)
        } else {
            Parsed::Incomplete
        };
    };
    if head_end - start > MAX_HEAD {
        return fatal(Status::HeaderTooLarge);
    }
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return fatal(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return fatal(Status::BadRequest);
    }
    let minor = match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => *d - b'0',
        [b'H', b'T', b'T', b'P', b'/', d, b'.', e] if d.is_ascii_digit() && e.is_ascii_digit() => {
            return fatal(Status::VersionNotSupported);
        }
        _ => return fatal(Status::BadRequest),
    };
    let mut keep_alive = minor >= 1;
    let mut host = false;
    let mut range = None;
    let mut ims = None;
    let mut body = 0u64;
    while let Some((l, next)) = line(buf, at) {
        at = next;
        if l.is_empty() {
            break;
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return fatal(Status::BadRequest);
        };
        let (name, value) = (&l[..colon], trim(&l[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return fatal(Status::BadRequest);
        }
        if name.eq_ignore_ascii_case(b"host") {
            if host {
                return fatal(Status::BadRequest);
            }
            host = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for opt in value.split(|&b| b == b',') {
                let opt = trim(opt);
                if opt.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"range") {
            range = parse_range(value);
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            ims = parse_http_date(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match parse_u64(value) {
                Some(n) if body == 0 || body == n => body = n,
                _ => return fatal(Status::BadRequest),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return fatal(Status::NotImplemented);
        }
    }
    if minor >= 1 && !host {
        return fatal(Status::BadRequest);
    }
    // Any request body is skipped: it must fit in a head buffer.
    if body > MAX_HEAD as u64 {
        return fatal(Status::ContentTooLarge);
    }
    // `body <= MAX_HEAD`: it fits.
    let consumed = head_end + usize::try_from(body).unwrap_or(MAX_HEAD);
    if consumed > buf.len() {
        return Parsed::Incomplete;
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => {
            return Parsed::Error {
                status: Status::MethodNotAllowed,
                consumed,
                keep_alive,
            };
        }
    };
    match normalise(target, path) {
        Ok(path) => Parsed::Request(
            Request {
                method,
                path,
                keep_alive,
                range,
                if_modified_since: ims,
            },
            consumed,
        ),
        Err(status) => fatal(status),
    }
}

// --- dates -------------------------------------------------------------------------------------

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1..=12, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // In range by construction: 1..=31 and 1..=12.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A Unix time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDate(pub u64);

impl core::fmt::Display for HttpDate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Seconds beyond year 9999 are shown as that year's end: IMF-fixdate has four digits.
        let t = self.0.min(253_402_300_799);
        let days = (t / 86_400) as i64;
        let secs = t % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
            DAYS[(days % 7) as usize],
            MONTHS[(m - 1) as usize],
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// An IMF-fixdate as a Unix time; `None` if it is not one (or before 1970).
pub fn parse_http_date(v: &[u8]) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    if v.len() != 29 || &v[3..5] != b", " || &v[25..] != b" GMT" {
        return None;
    }
    let num = |r: core::ops::Range<usize>| parse_u64(&v[r]);
    let d = num(5..7)?;
    let m = MONTHS.iter().position(|n| n.as_bytes() == &v[8..11])?;
    let m = u32::try_from(m).ok()? + 1;
    let y = num(12..16)?;
    let (hh, mm, ss) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if v[7] != b' ' || v[11] != b' ' || v[16] != b' ' || v[19] != b':' || v[22] != b':' {
        return None;
    }
    if !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(i64::try_from(y).ok()?, m, u32::try_from(d).ok()?);
    let secs = days * 86_400 + (hh * 3600 + mm * 60 + ss) as i64;
    u64::try_from(secs).ok()
}

// --- content types -----------------------------------------------------------------------------

/// The `Content-Type` of a path, from its extension (case-insensitive).
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((_, ext)) = name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    const TYPES: [(&str, &str); 22] = [
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("txt", "text/plain; charset=utf-8"),
        ("css", "text/css"),
        ("js", "text/javascript"),
        ("mjs", "text/javascript"),
        ("json", "application/json"),
        ("xml", "application/xml"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("ico", "image/x-icon"),
        ("pdf", "application/pdf"),
        ("wasm", "application/wasm"),
        ("woff", "font/woff"),
        ("woff2", "font/woff2"),
        ("md", "text/markdown; charset=utf-8"),
        ("gz", "application/gzip"),
        ("tar", "application/x-tar"),
    ];
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |(_, t)| t)
}

// --- responses ---------------------------------------------------------------------------------

/// A response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status.
    pub status: Status,
    /// `Content-Length` (also sent for HEAD and 304, as the GET would have it... except 304,
    /// which sends none).
    pub content_length: u64,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Last-Modified`, Unix seconds.
    pub last_modified: Option<u64>,
    /// `Content-Range` of a 206: first byte, length, file size.
    pub content_range: Option<(u64, u64, u64)>,
    /// `Content-Range: bytes */size` of a 416.
    pub unsatisfied_size: Option<u64>,
    /// The connection stays open.
    pub keep_alive: bool,
}

/// The body of an error response.
pub fn error_body(status: Status) -> &'static str {
    match status {
        Status::BadRequest => "400 Bad Request\n",
        Status::NotFound => "404 Not Found\n",
        Status::MethodNotAllowed => "405 Method Not Allowed\n",
        Status::ContentTooLarge => "413 Content Too Large\n",
        Status::UriTooLong => "414 URI Too Long\n",
        Status::RangeNotSatisfiable => "416 Range Not Satisfiable\n",
        Status::HeaderTooLarge => "431 Request Header Fields Too Large\n",
        Status::InternalError => "500 Internal Server Error\n",
        Status::NotImplemented => "501 Not Implemented\n",
        Status::VersionNotSupported => "505 HTTP Version Not Supported\n",
        Status::Ok | Status::PartialContent | Status::NotModified => "",
    }
}

impl Head {
    /// The head of an error response with its text body ([`error_body`]).
    pub fn error(status: Status, keep_alive: bool) -> Self {
        Self {
            status,
            content_length: error_body(status).len() as u64,
            content_type: "text/plain; charset=utf-8",
            last_modified: None,
            content_range: None,
            unsatisfied_size: None,
            keep_alive,
        }
    }

    /// Write the head into `out`; its length, or `None` if `out` is too small (512 bytes always
    /// suffice).
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = SliceWriter { buf: out, len: 0 };
        let s = self.status;
        write!(
            w,
            "HTTP/1.1 {} {}\r\nServer: lions\r\n",
            s.code(),
            s.reason()
        )
        .ok()?;
        if s != Status::NotModified {
            write!(
                w,
                "Content-Length: {}\r\nContent-Type: {}\r\n",
                self.content_length, self.content_type
            )
            .ok()?;
        }
        if let Some(t) = self.last_modified {
            write!(w, "Last-Modified: {}\r\n", HttpDate(t)).ok()?;
        }
        if matches!(s, Status::Ok | Status::PartialContent) {
            w.write_str("Accept-Ranges: bytes\r\n").ok()?;
        }
        if let Some((first, len, size)) = self.content_range {
            // A 206 range is never empty.
            let last = first + len.max(1) - 1;
            write!(w, "Content-Range: bytes {first}-{last}/{size}\r\n").ok()?;
        }
        if let Some(size) = self.unsatisfied_size {
            write!(w, "Content-Range: bytes */{size}\r\n").ok()?;
        }
        if s == Status::MethodNotAllowed {
            w.write_str("Allow: GET, HEAD\r\n").ok()?;
        }
        let conn = if self.keep_alive {
            "keep-alive"
        } else {
            "close"
        };
        write!(w, "Connection: {conn}\r\n\r\n").ok()?;
        Some(w.len)
    }
}

struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl core::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let dst = self
            .buf
            .get_mut(self.len..self.len + s.len())
            .ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// A file's metadata, as the server needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: u64,
}

/// The head for `req` on a file with `meta` (`None`: not found), and the body's byte range
/// `(first, length)` in the file (none for HEAD, 304 and errors: those bodies are
/// [`error_body`]).
pub fn decide(req: &Request<'_>, meta: Option<Meta>) -> (Head, Option<(u64, u64)>) {
    let Some(meta) = meta else {
        return (Head::error(Status::NotFound, req.keep_alive), None);
    };
    let mut head = Head {
        status: Status::Ok,
        content_length: meta.size,
        content_type: content_type(req.path),
        last_modified: Some(meta.mtime),
        content_range: None,
        unsatisfied_size: None,
        keep_alive: req.keep_alive,
    };
    // RFC 9110 §13.2.2: If-Modified-Since before Range.
    if req.if_modified_since.is_some_and(|t| meta.mtime <= t) {
        head.status = Status::NotModified;
        head.content_length = 0;
        return (head, None);
    }
    let mut body = (0, meta.size);
    if let Some(range) = req.range {
        match range.resolve(meta.size) {
            Some((first, len)) => {
                head.status = Status::PartialContent;
                head.content_length = len;
                head.content_range = Some((first, len, meta.size));
                body = (first, len);
            }
            None => {
                let mut h = Head::error(Status::RangeNotSatisfiable, req.keep_alive);
                h.unsatisfied_size = Some(meta.size);
                return (h, None);
            }
        }
    }
    let body = (req.method == Method::Get && body.1 > 0).then_some(body);
    (head, body)
}

#[cfg(test)]
mod tests;
