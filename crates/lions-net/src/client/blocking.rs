// SPDX-License-Identifier: BSD-2-Clause
//! A blocking socket layer over [`NetStack`]: code written as a sequence of calls (connect, read,
//! write) instead of events, the role LionsOS gives its coroutine layer.
//!
//! ## How a call blocks
//!
//! A Microkit PD cannot wait for a notification in the middle of its handler, so a blocking call
//! **spins**: it polls the stack (processing received frames, sending, notifying peers at once
//! rather than through the deferred slot), checks whether it can complete, and otherwise pauses
//! with [`lions_os::relax`] and polls again. smoltcp's retransmission and other timers advance
//! with the timer's clock on every poll, so no timeout needs arming while blocked.
//!
//! The call completes only while the copier and the Tx virtualiser run concurrently with the
//! client: on seL4 when they have a higher priority (sDDF's order: driver > virtualisers >
//! copiers and clients) or another core, and on the host board, where every PD is a process. On
//! the single-threaded `sim` backend nothing else runs while a handler spins, so there the layer
//! works only with a backend whose `relax` advances the peers (as this crate's tests do).
//!
//! Every call takes an optional time limit ([`TcpStream::set_timeout`],
//! [`UdpSocket::set_timeout`]); without one it waits for as long as the condition needs.
//!
//! ## TCP: [`TcpStream`]
//!
//! [`TcpStream::connect`] and [`TcpStream::accept`] return once the connection is established.
//! The stream implements embedded-io [`Read`] (blocks until at least one byte arrived; `Ok(0)`
//! once the peer closed its side and everything was read) and [`Write`] (blocks until at least
//! one byte fits the socket's send buffer; `flush` blocks until the peer acknowledged
//! everything). [`TcpStream::close`] closes our side and waits until the connection is gone.
//!
//! ## UDP: [`UdpSocket`]
//!
//! [`UdpSocket::send_to`] blocks until the datagram fits the send buffer, [`UdpSocket::recv_from`]
//! until one arrived.

use super::stack::NetStack;
use crate::Error;
use embedded_io::{ErrorKind, ErrorType, Read, Write};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

/// Why a blocking socket call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpError {
    /// The stack failed (a peer component misbehaved or a kernel operation was refused).
    Net(Error),
    /// smoltcp refused to connect (socket already open, no address, port 0).
    Connect(tcp::ConnectError),
    /// smoltcp refused to listen (socket open, port 0).
    Listen(tcp::ListenError),
    /// smoltcp refused to bind a UDP socket.
    Bind(udp::BindError),
    /// The connection was refused, reset or closed before the call could complete.
    Closed,
    /// The datagram does not fit the socket's send buffer at all, or a received one did not fit
    /// the caller's buffer (it was dropped).
    Size,
    /// The time limit passed.
    TimedOut,
}

impl From<Error> for TcpError {
    fn from(e: Error) -> Self {
        Self::Net(e)
    }
}

impl core::fmt::Display for TcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Net(e) => e.fmt(f),
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Listen(e) => write!(f, "listen: {e}"),
            Self::Bind(e) => write!(f, "bind: {e}"),
            Self::Closed => write!(f, "connection closed"),
            Self::Size => write!(f, "datagram larger than the buffer"),
            Self::TimedOut => write!(f, "timed out"),
        }
    }
}

impl core::error::Error for TcpError {}

impl embedded_io::Error for TcpError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Net(_) => ErrorKind::Other,
            Self::Connect(_) | Self::Listen(_) | Self::Bind(_) => ErrorKind::InvalidInput,
            Self::Closed => ErrorKind::ConnectionReset,
            Self::Size => ErrorKind::InvalidData,
            Self::TimedOut => ErrorKind::TimedOut,
        }
    }
}

/// Poll `stack` until `ready` gives a value, pausing with `relax` between polls; give up after
/// `timeout_ns` (measured on the timer's clock).
fn wait<'a, 's, R>(
    stack: &mut NetStack<'a, 's>,
    timeout_ns: Option<u64>,
    mut ready: impl FnMut(&mut NetStack<'a, 's>) -> Option<Result<R, TcpError>>,
) -> Result<R, TcpError> {
    let deferred = stack.deferred_notify();
    stack.set_deferred_notify(false);
    let r = (|| {
        let mut start = None;
        loop {
            stack.poll()?;
            if let Some(r) = ready(stack) {
                return r;
            }
            let now = stack.last_poll().total_micros();
            let start = *start.get_or_insert(now);
            if let Some(limit) = timeout_ns
                && u64::try_from(now - start).unwrap_or(0).saturating_mul(1000) >= limit
            {
                return Err(TcpError::TimedOut);
            }
            lions_os::relax();
        }
    })();
    stack.set_deferred_notify(deferred);
    r
}

/// A TCP connection on a socket of a [`NetStack`], with blocking embedded-io `Read` and `Write`;
/// see the [module docs](self).
pub struct TcpStream<'n, 'a, 's> {
    stack: &'n mut NetStack<'a, 's>,
    handle: SocketHandle,
    timeout_ns: Option<u64>,
}

impl<'n, 'a, 's> TcpStream<'n, 'a, 's> {
    /// Connect the TCP socket `handle` (closed) from `local_port` to `remote`, and wait until the
    /// connection is established (`Closed` if it is refused).
    pub fn connect(
        stack: &'n mut NetStack<'a, 's>,
        handle: SocketHandle,
        remote: IpEndpoint,
        local_port: u16,
        timeout_ns: Option<u64>,
    ) -> Result<Self, TcpError> {
        let (iface, sockets) = stack.parts();
        sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(iface.context(), remote, local_port)
            .map_err(TcpError::Connect)?;
        wait(stack, timeout_ns, |s| {
            let sock = s.socket::<tcp::Socket>(handle);
            match sock.state() {
                tcp::State::SynSent | tcp::State::SynReceived => None,
                _ if sock.may_send() => Some(Ok(())),
                _ => Some(Err(TcpError::Closed)),
            }
        })?;
        Ok(Self {
            stack,
            handle,
            timeout_ns,
        })
    }

    /// Listen on `port` with the TCP socket `handle` and wait until a peer connected. A socket
    /// still closing from an earlier connection is first waited for.
    pub fn accept(
        stack: &'n mut NetStack<'a, 's>,
        handle: SocketHandle,
        port: u16,
        timeout_ns: Option<u64>,
    ) -> Result<Self, TcpError> {
        wait(stack, timeout_ns, |s| {
            let sock = s.socket::<tcp::Socket>(handle);
            (!sock.is_open()).then_some(Ok(()))
        })?;
        stack
            .socket::<tcp::Socket>(handle)
            .listen(port)
            .map_err(TcpError::Listen)?;
        wait(stack, timeout_ns, |s| {
            let sock = s.socket::<tcp::Socket>(handle);
            match sock.state() {
                tcp::State::Listen | tcp::State::SynReceived => None,
                _ if sock.may_recv() || sock.may_send() => Some(Ok(())),
                // Reset before it was accepted: listen again.
                _ => {
                    let again = sock.listen(port).map_err(TcpError::Listen);
                    again.err().map(Err)
                }
            }
        })?;
        Ok(Self {
            stack,
            handle,
            timeout_ns,
        })
    }

    /// Limit each later blocking call to `timeout_ns` nanoseconds (`None`: no limit).
    pub fn set_timeout(&mut self, timeout_ns: Option<u64>) {
        self.timeout_ns = timeout_ns;
    }

    /// The peer's address and port.
    pub fn remote(&mut self) -> Option<IpEndpoint> {
        self.stack
            .socket::<tcp::Socket>(self.handle)
            .remote_endpoint()
    }

    /// The stack (to run other sockets between calls).
    pub fn stack(&mut self) -> &mut NetStack<'a, 's> {
        self.stack
    }

    /// Close our side (FIN after everything written) and wait until the peer acknowledged it
    /// all, or the connection is gone. The peer may still send until it closes its side; the
    /// socket can connect or listen again once the connection has ended ([`accept`] waits for
    /// that).
    ///
    /// [`accept`]: Self::accept
    pub fn close(self) -> Result<(), TcpError> {
        let handle = self.handle;
        self.stack.socket::<tcp::Socket>(handle).close();
        wait(self.stack, self.timeout_ns, |s| {
            let st = s.socket::<tcp::Socket>(handle).state();
            matches!(
                st,
                tcp::State::FinWait2 | tcp::State::TimeWait | tcp::State::Closed
            )
            .then_some(Ok(()))
        })
    }
}

impl ErrorType for TcpStream<'_, '_, '_> {
    type Error = TcpError;
}

impl Read for TcpStream<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TcpError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let handle = self.handle;
        wait(self.stack, self.timeout_ns, |s| {
            let sock = s.socket::<tcp::Socket>(handle);
            if sock.can_recv() {
                Some(sock.recv_slice(buf).map_err(|_| TcpError::Closed))
            } else if !sock.may_recv() {
                // The peer closed its side (or the connection is gone): end of stream.
                Some(Ok(0))
            } else {
                None
            }
        })
    }
}

impl Write for TcpStream<'_, '_, '_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, TcpError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let handle = self.handle;
        let n = wait(self.stack, self.timeout_ns, |s| {
            let sock = s.socket::<tcp::Socket>(handle);
            if !sock.may_send() {
                Some(Err(TcpError::Closed))
            } else if sock.can_send() {
                Some(sock.send_slice(buf).map_err(|_| TcpError::Closed))
            } else {
                None
            }
        })?;
        // Hand the data to smoltcp's output now rather than at the next call.
        self.stack.poll()?;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), TcpError> {
        let handle = self.handle;
        wait(self.stack, self.timeout_ns, |s| {
            let sock = s.socket::<tcp::Socket>(handle);
            if sock.send_queue() == 0 {
                Some(Ok(()))
            } else if !sock.may_send() && !sock.is_open() {
                Some(Err(TcpError::Closed))
            } else {
                None
            }
        })
    }
}

/// A UDP socket of a [`NetStack`] with blocking send and receive; see the [module docs](self).
pub struct UdpSocket<'n, 'a, 's> {
    stack: &'n mut NetStack<'a, 's>,
    handle: SocketHandle,
    timeout_ns: Option<u64>,
}

impl<'n, 'a, 's> UdpSocket<'n, 'a, 's> {
    /// Bind the UDP socket `handle` to `local` (a port, or an address and port).
    pub fn bind(
        stack: &'n mut NetStack<'a, 's>,
        handle: SocketHandle,
        local: impl Into<IpListenEndpoint>,
    ) -> Result<Self, TcpError> {
        stack
            .socket::<udp::Socket>(handle)
            .bind(local)
            .map_err(TcpError::Bind)?;
        Ok(Self {
            stack,
            handle,
            timeout_ns: None,
        })
    }

    /// Limit each later blocking call to `timeout_ns` nanoseconds (`None`: no limit).
    pub fn set_timeout(&mut self, timeout_ns: Option<u64>) {
        self.timeout_ns = timeout_ns;
    }

    /// The stack (to run other sockets between calls).
    pub fn stack(&mut self) -> &mut NetStack<'a, 's> {
        self.stack
    }

    /// Send `data` as one datagram to `remote`, waiting for room in the send buffer; it is handed
    /// to the stack's output before returning.
    pub fn send_to(&mut self, data: &[u8], remote: IpEndpoint) -> Result<(), TcpError> {
        let handle = self.handle;
        wait(self.stack, self.timeout_ns, |s| {
            let sock = s.socket::<udp::Socket>(handle);
            match sock.send_slice(data, remote) {
                Ok(()) => Some(Ok(())),
                Err(udp::SendError::BufferFull) if sock.payload_send_capacity() < data.len() => {
                    Some(Err(TcpError::Size))
                }
                Err(udp::SendError::BufferFull) => None,
                Err(udp::SendError::Unaddressable) => Some(Err(TcpError::Closed)),
            }
        })?;
        self.stack.poll()?;
        Ok(())
    }

    /// Wait for a datagram; copy it into `buf` and return its length and sender. One larger than
    /// `buf` is dropped ([`TcpError::Size`]).
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, IpEndpoint), TcpError> {
        let handle = self.handle;
        wait(self.stack, self.timeout_ns, |s| {
            let sock = s.socket::<udp::Socket>(handle);
            if !sock.can_recv() {
                return None;
            }
            Some(match sock.recv_slice(buf) {
                Ok((n, meta)) => Ok((n, meta.endpoint)),
                Err(_) => Err(TcpError::Size),
            })
        })
    }
}
