// SPDX-License-Identifier: BSD-2-Clause
//! One HTTP connection, independent of sockets and of the file system: bytes in
//! ([`Conn::receive_buffer`], [`Conn::received`]), bytes out ([`Conn::produce`]), files through
//! a [`FileSource`].
//!
//! States: **reading** a request head into the connection's buffer; **sending** a response (its
//! head, then its body: an error text or a byte range of an open file, read straight into the
//! caller's send buffer); then reading the next request (keep-alive, pipelined requests
//! included) or **done** (the caller closes the socket once its send buffer drained). A request
//! for a directory serves the directory's `index.html`. Each finished response is reported once
//! to the caller's log callback ([`LogEntry`]).

use crate::http::{self, Head, MAX_HEAD, Meta, Method, Parsed, Status};

/// Bytes of a normalised path (with `/index.html` appended).
pub const PATH_BYTES: usize = 1024;

/// What a [`FileSource`] says a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File(Meta),
    /// A directory.
    Dir,
    /// Nothing there.
    Missing,
}

/// A file source failed (an I/O error or a broken server); the request gets a 500, or the
/// connection ends if its head was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceError;

/// Files, as the server needs them (the FS client of the PD; a map in tests).
pub trait FileSource {
    /// What `path` is. `Err` is a failure of the source (answered 500).
    fn stat(&mut self, path: &str) -> Result<Kind, SourceError>;
    /// Open the file at `path` for reading; its descriptor.
    fn open(&mut self, path: &str) -> Result<u64, SourceError>;
    /// Read from `fd` at `offset` into `out`; bytes read (0: end of file).
    fn read(&mut self, fd: u64, offset: u64, out: &mut [u8]) -> Result<usize, SourceError>;
    /// Close `fd` (best effort).
    fn close(&mut self, fd: u64);
}

/// One finished response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// The method (`None` for a request that did not parse).
    pub method: Option<Method>,
    /// The normalised path (empty for a request that did not parse).
    pub path: &'a str,
    /// The status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Text(&'static str, usize),
    File { fd: u64, offset: u64, left: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Sending,
    Done,
}

/// One connection; see the module docs.
pub struct Conn {
    rx: [u8; MAX_HEAD],
    rx_len: usize,
    state: State,
    head: [u8; 512],
    head_len: usize,
    head_at: usize,
    body: Body,
    keep_alive: bool,
    path: [u8; PATH_BYTES],
    path_len: usize,
    method: Option<Method>,
    status: u16,
    sent: u64,
}

impl Default for Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl Conn {
    /// A connection waiting for its first request.
    pub const fn new() -> Self {
        Self {
            rx: [0; MAX_HEAD],
            rx_len: 0,
            state: State::Reading,
            head: [0; 512],
            head_len: 0,
            head_at: 0,
            body: Body::None,
            keep_alive: true,
            path: [0; PATH_BYTES],
            path_len: 0,
            method: None,
            status: 0,
            sent: 0,
        }
    }

    /// Forget everything (a new connection on the socket), closing an open file.
    pub fn reset(&mut self, files: &mut impl FileSource) {
        if let Body::File { fd, .. } = self.body {
            files.close(fd);
        }
        self.rx_len = 0;
        self.state = State::Reading;
        self.body = Body::None;
        self.head_len = 0;
        self.head_at = 0;
        self.keep_alive = true;
    }

    /// Where received bytes go (empty while the buffer is full).
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        &mut self.rx[self.rx_len..]
    }

    /// `n` bytes were written into [`receive_buffer`](Self::receive_buffer).
    pub fn received(&mut self, n: usize) {
        self.rx_len = (self.rx_len + n).min(self.rx.len());
    }

    /// The response is sent and the connection should close (after the send buffer drains).
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Nothing is being answered and no bytes of a next request wait.
    pub fn idle(&self) -> bool {
        self.state == State::Reading && self.rx_len == 0
    }

    /// Fill `out` with response bytes: parse waiting requests, answer them; bytes written.
    /// `log` hears of every response finished.
    pub fn produce(
        &mut self,
        out: &mut [u8],
        files: &mut impl FileSource,
        log: &mut impl FnMut(&LogEntry<'_>),
    ) -> usize {
        let mut n = 0;
        loop {
            match self.state {
                State::Done => return n,
                State::Reading => {
                    if !self.start(files) {
                        return n;
                    }
                }
                State::Sending => {
                    if self.head_at < self.head_len {
                        let k = (self.head_len - self.head_at).min(out.len() - n);
                        out[n..n + k].copy_from_slice(&self.head[self.head_at..self.head_at + k]);
                        self.head_at += k;
                        n += k;
                        if self.head_at < self.head_len {
                            return n;
                        }
                    }
                    match self.body {
                        Body::None => {}
                        Body::Text(text, at) => {
                            let k = (text.len() - at).min(out.len() - n);
                            out[n..n + k].copy_from_slice(&text.as_bytes()[at..at + k]);
                            n += k;
                            self.sent += k as u64;
                            if at + k < text.len() {
                                self.body = Body::Text(text, at + k);
                                return n;
                            }
                        }
                        Body::File { fd, offset, left } => {
                            let room =
                                (out.len() - n).min(usize::try_from(left).unwrap_or(usize::MAX));
                            if room == 0 {
                                return n;
                            }
                            match files.read(fd, offset, &mut out[n..n + room]) {
                                Ok(k) if k > 0 => {
                                    // A source claiming more than asked is cut to what was asked.
                                    let k = k.min(room);
                                    n += k;
                                    self.sent += k as u64;
                                    let left = left - k as u64;
                                    self.body = Body::File {
                                        fd,
                                        offset: offset + k as u64,
                                        left,
                                    };
                                    if left > 0 {
                                        return n;
                                    }
                                }
                                // The file shrank or the source failed mid-body: the head
                                // promised more bytes, so the only honest end is to close.
                                _ => self.keep_alive = false,
                            }
                            files.close(fd);
                        }
                    }
                    self.body = Body::None;
                    log(&LogEntry {
                        method: self.method,
                        path: core::str::from_utf8(&self.path[..self.path_len]).unwrap_or(""),
                        status: self.status,
                        bytes: self.sent,
                    });
                    self.state = if self.keep_alive {
                        State::Reading
                    } else {
                        State::Done
                    };
                }
            }
        }
    }

    /// Parse the next request and set up its response; false if none is complete yet.
    fn start(&mut self, files: &mut impl FileSource) -> bool {
        let mut path = [0u8; PATH_BYTES];
        let (head, body, consumed) = match http::parse(&self.rx[..self.rx_len], &mut path) {
            Parsed::Incomplete => return false,
            Parsed::Error {
                status,
                consumed,
                keep_alive,
            } => {
                self.method = None;
                self.path_len = 0;
                (
                    Head::error(status, keep_alive),
                    Body::Text(http::error_body(status), 0),
                    if keep_alive { consumed } else { self.rx_len },
                )
            }
            Parsed::Request(req, consumed) => {
                let len = req.path.len();
                self.path[..len].copy_from_slice(req.path.as_bytes());
                self.path_len = len;
                self.method = Some(req.method);
                let (head, body) = self.answer(&req, files);
                (head, body, consumed)
            }
        };
        self.rx.copy_within(consumed..self.rx_len, 0);
        self.rx_len -= consumed;
        self.status = head.status.code();
        self.keep_alive = head.keep_alive;
        self.sent = 0;
        // 512 bytes always suffice (Head::write).
        self.head_len = head.write(&mut self.head).unwrap_or(0);
        self.head_at = 0;
        self.body = if self.method == Some(Method::Head) {
            if let Body::File { fd, .. } = body {
                files.close(fd);
            }
            Body::None
        } else {
            body
        };
        self.state = State::Sending;
        true
    }

    /// The head and body for a parsed request (the path is in `self.path`).
    fn answer(&mut self, req: &http::Request<'_>, files: &mut impl FileSource) -> (Head, Body) {
        let err = |s| {
            (
                Head::error(s, req.keep_alive),
                Body::Text(http::error_body(s), 0),
            )
        };
        let mut kind = match files.stat(req.path) {
            Ok(k) => k,
            Err(SourceError) => return err(Status::InternalError),
        };
        if kind == Kind::Dir {
            const INDEX: &[u8] = b"/index.html";
            let base = if self.path_len == 1 { 0 } else { self.path_len };
            if base + INDEX.len() > PATH_BYTES {
                return err(Status::UriTooLong);
            }
            self.path[base..base + INDEX.len()].copy_from_slice(INDEX);
            self.path_len = base + INDEX.len();
            let path = core::str::from_utf8(&self.path[..self.path_len]).unwrap_or("/");
            kind = match files.stat(path) {
                Ok(Kind::File(m)) => Kind::File(m),
                Ok(_) => Kind::Missing,
                Err(SourceError) => return err(Status::InternalError),
            };
        }
        let path = core::str::from_utf8(&self.path[..self.path_len]).unwrap_or("/");
        let meta = match kind {
            Kind::File(m) => Some(m),
            _ => None,
        };
        let req = http::Request { path, ..*req };
        let (head, range) = http::decide(&req, meta);
        let body = match range {
            Some((offset, left)) => match files.open(path) {
                Ok(fd) => Body::File { fd, offset, left },
                Err(SourceError) => return err(Status::InternalError),
            },
            None => Body::Text(http::error_body(head.status), 0),
        };
        (head, body)
    }
}

#[cfg(test)]
mod tests;
