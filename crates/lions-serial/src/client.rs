// SPDX-License-Identifier: BSD-2-Clause
//! The client library: a serial client's Tx queue (to the Tx virt) and optional Rx queue (from the
//! Rx virt) as a byte stream, with `core::fmt::Write`, embedded-io `Read`/`Write` and the
//! [`serial_print!`](crate::serial_print)/[`serial_println!`](crate::serial_println) macros.
//!
//! ## Output
//!
//! - `\n` goes out as `\r\n` (the pair is never split across a full queue).
//! - Bytes are staged behind a local tail and published with one tail store, then the Tx virt is
//!   notified (the producer always notifies), at every `\n`, when the queue is full, and at
//!   [`flush`](SerialClient::flush). So the virt sees whole lines, which keeps several clients'
//!   output readable.
//! - Three ways to write when the queue may be full:
//!   - **non-blocking**, [`try_write`](SerialClient::try_write): writes what fits and returns how
//!     many input bytes that was;
//!   - **event-driven, lossless**, [`write_or_park`](SerialClient::write_or_park): as `try_write`,
//!     and when not everything fit it asks the virt for a signal (re-checking for space, the
//!     signalling protocol's phase 2). The caller keeps the rest and retries when notified on
//!     [`tx_channel`](SerialClient::tx_channel). This is the form for a PD's event handler, and the
//!     only one that works on the `sim` backend;
//!   - **blocking**, [`write_all`](SerialClient::write_all) and the embedded-io `Write` impl: as
//!     the event-driven form, then waits by spinning on the queue's head until the space is there
//!     (each pause is [`lions_os::relax`]: a spin hint on seL4, a short sleep on the host board).
//!     A Microkit PD cannot wait for a notification inside its handler, so "blocking" means
//!     spinning; it finishes only while the virt runs concurrently: on seL4 when it has a higher
//!     priority than this client (sDDF's rule: driver > virts > clients) or another core, and on
//!     the host board where every PD is a process. On the single-threaded `sim` backend it would
//!     spin forever.
//! - `core::fmt::Write` follows [`OnFull`]: [`OnFull::Wait`] (the default) blocks as above,
//!   [`OnFull::Drop`] drops what does not fit and counts it, like sDDF's `sddf_printf`.
//!
//! ## Input
//!
//! - [`try_read`](SerialClient::try_read) takes what the Rx virt delivered, without waiting; the
//!   Rx virt notifies [`rx_channel`](SerialClient::rx_channel) whenever it delivers. Slots are
//!   handed back at once, with a notification only if the virt asked (the Rx virt never waits for
//!   a client: it drops input for a full queue).
//! - embedded-io `Read` blocks (spins) until at least one byte arrived, `ReadReady` says whether
//!   it would. Without an Rx queue, reading is at end of input (`Ok(0)`).

use crate::Error;
use crate::config::SerialClientConfig;
use crate::queue::{SerialConsumer, SerialProducer, SerialQueueError};
use lions_os::{Channel, Mapped};

/// What `core::fmt::Write` does when the Tx queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Wait (spin) for space: nothing is lost; see the module docs for when this finishes.
    #[default]
    Wait,
    /// Drop what does not fit and count it ([`SerialClient::dropped`]), like `sddf_printf`.
    Drop,
}

/// A serial client: its Tx queue to the Tx virt and, if the system has an Rx virt, its Rx queue.
pub struct SerialClient<'a> {
    tx: SerialProducer<'a>,
    tx_ch: Channel,
    rx: Option<(SerialConsumer<'a>, Channel)>,
    /// `\r\n`, or `\n` alone in a queue too small for the pair.
    line_end: &'static [u8],
    on_full: OnFull,
    dropped: u64,
}

impl<'a> SerialClient<'a> {
    /// The client over the queues in `config` (the Rx queue only if the config connects one).
    ///
    /// The token says the config's regions are mapped here for `'a` as claimed, and that this
    /// is the one client built from them.
    pub fn new(config: Mapped<'a, SerialClientConfig>) -> Result<Self, SerialQueueError> {
        let config = config.config();
        // SAFETY: the token: mapped here for `'a` as claimed, shared only with the virts, and
        // this client makes the only handles on them (here and below).
        let tx = unsafe { SerialProducer::from_connection(&config.tx) }?;
        let rx = if config.rx.is_connected() {
            // SAFETY: as above.
            let q = unsafe { SerialConsumer::from_connection(&config.rx) }?;
            Some((q, config.rx.channel()?))
        } else {
            None
        };
        Ok(Self::with_queues(tx, config.tx.channel()?, rx))
    }

    /// The client over queue handles made by the caller (tests, custom wiring).
    pub fn with_queues(
        tx: SerialProducer<'a>,
        tx_ch: Channel,
        rx: Option<(SerialConsumer<'a>, Channel)>,
    ) -> Self {
        let pair = tx.capacity() >= 2;
        Self {
            line_end: if pair { b"\r\n" } else { b"\n" },
            tx,
            tx_ch,
            rx,
            on_full: OnFull::Wait,
            dropped: 0,
        }
    }

    /// The channel to the Tx virt: it notifies here when space we asked for is free.
    pub fn tx_channel(&self) -> Channel {
        self.tx_ch
    }

    /// The channel to the Rx virt, if there is one: it notifies here when it delivered input.
    pub fn rx_channel(&self) -> Option<Channel> {
        self.rx.as_ref().map(|(_, ch)| *ch)
    }

    /// Choose what `core::fmt::Write` does on a full queue.
    pub fn set_on_full(&mut self, on_full: OnFull) {
        self.on_full = on_full;
    }

    /// Bytes `core::fmt::Write` dropped under [`OnFull::Drop`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Publish staged bytes and notify the Tx virt if there were any.
    pub fn flush(&mut self) -> Result<(), Error> {
        let n = self.tx.publish();
        if self.tx.should_notify(n) {
            self.tx_ch.notify()?;
        }
        Ok(())
    }

    /// Non-blocking write: stage as much of `bytes` as fits (`\n` as `\r\n`), publishing and
    /// notifying at each `\n` and when the queue fills; returns how many bytes of `bytes` were
    /// taken. Bytes after the last `\n` stay staged until the next line end or [`flush`].
    ///
    /// [`flush`]: Self::flush
    pub fn try_write(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            let line = rest.iter().position(|&b| b == b'\n');
            let text = &rest[..line.unwrap_or(rest.len())];
            let n = self.tx.write(text)?;
            done += n;
            let end = self.line_end();
            if n < text.len() || (line.is_some() && self.tx.free()? < end.len() as u64) {
                // Full: let the virt see what we have, so it can make room.
                self.flush()?;
                break;
            }
            if line.is_some() {
                self.tx.write(end)?;
                done += 1;
                self.flush()?;
            }
        }
        Ok(done)
    }

    /// Event-driven lossless write: [`try_write`](Self::try_write), and if not all of `bytes`
    /// fit, publish and ask the Tx virt for a signal (re-checking for space, and writing on if
    /// some appeared). Returns how many bytes were taken; when fewer than `bytes.len()`, a
    /// notification on [`tx_channel`](Self::tx_channel) will follow once there is space, and the
    /// caller writes the rest then.
    pub fn write_or_park(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let mut done = 0;
        loop {
            done += self.try_write(&bytes[done..])?;
            let Some(&next) = bytes.get(done) else {
                return Ok(done);
            };
            if !self.tx.park_for(self.needed(next))? {
                return Ok(done);
            }
        }
    }

    /// Free bytes needed to write `next`.
    fn needed(&self, next: u8) -> u64 {
        if next == b'\n' {
            self.line_end().len() as u64
        } else {
            1
        }
    }

    /// Blocking write of all of `bytes`: [`write_or_park`](Self::write_or_park), spinning for
    /// space while some is missing (see the module docs for when this finishes).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let mut done = 0;
        loop {
            done += self.write_or_park(&bytes[done..])?;
            let Some(&next) = bytes.get(done) else {
                return Ok(());
            };
            let needed = self.needed(next);
            while self.tx.free()? < needed {
                lions_os::relax();
            }
        }
    }

    /// Formatted output (what `write!` and [`serial_print!`](crate::serial_print) call): as
    /// `core::fmt::Write`, without needing that trait in scope.
    pub fn write_fmt(&mut self, args: core::fmt::Arguments<'_>) -> core::fmt::Result {
        core::fmt::Write::write_fmt(self, args)
    }

    /// Whether a write would take at least one byte (even a `\n`) now.
    pub fn write_ready(&mut self) -> Result<bool, Error> {
        Ok(self.tx.free()? >= self.line_end().len() as u64)
    }

    /// What `\n` becomes.
    fn line_end(&self) -> &'static [u8] {
        self.line_end
    }

    /// Non-blocking read of what the Rx virt delivered; returns how many bytes (0 when nothing
    /// is waiting, or without an Rx queue).
    pub fn try_read(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let Some((q, ch)) = &mut self.rx else {
            return Ok(0);
        };
        let n = q.read(out)?;
        let freed = q.release() > 0;
        if q.should_notify(freed) {
            ch.notify()?;
        }
        Ok(n)
    }

    /// Whether input is waiting (always `false` without an Rx queue).
    pub fn read_ready(&mut self) -> Result<bool, Error> {
        match &mut self.rx {
            Some((q, _)) => Ok(!q.is_empty()?),
            None => Ok(false),
        }
    }

    /// Blocking read: spin until at least one byte arrived (see the module docs), then read what
    /// is there. `Ok(0)` only for an empty `out` or without an Rx queue (end of input).
    pub fn read_blocking(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if self.rx.is_none() || out.is_empty() {
            return Ok(0);
        }
        while !self.read_ready()? {
            lions_os::relax();
        }
        self.try_read(out)
    }
}

impl core::fmt::Write for SerialClient<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let bytes = s.as_bytes();
        match self.on_full {
            OnFull::Wait => self.write_all(bytes).map_err(|_| core::fmt::Error),
            OnFull::Drop => {
                let n = self.try_write(bytes).map_err(|_| core::fmt::Error)?;
                self.dropped += (bytes.len() - n) as u64;
                Ok(())
            }
        }
    }
}

impl embedded_io::Error for Error {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

impl embedded_io::ErrorType for SerialClient<'_> {
    type Error = Error;
}

impl embedded_io::Write for SerialClient<'_> {
    /// Blocks (spins) until at least one byte fits, then writes what fits.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        loop {
            let n = self.write_or_park(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            while !self.write_ready()? {
                lions_os::relax();
            }
        }
    }

    /// Publishes staged bytes to the Tx virt (they then are its to deliver).
    fn flush(&mut self) -> Result<(), Error> {
        SerialClient::flush(self)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        SerialClient::write_all(self, buf)
    }
}

impl embedded_io::WriteReady for SerialClient<'_> {
    fn write_ready(&mut self) -> Result<bool, Error> {
        SerialClient::write_ready(self)
    }
}

impl embedded_io::Read for SerialClient<'_> {
    /// Blocks (spins) until input arrived; `Ok(0)` without an Rx queue.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.read_blocking(buf)
    }
}

impl embedded_io::ReadReady for SerialClient<'_> {
    fn read_ready(&mut self) -> Result<bool, Error> {
        SerialClient::read_ready(self)
    }
}

/// Print to a [`SerialClient`] with `format!` syntax: `serial_print!(client, "x = {}", x)`, where
/// `client` is a `SerialClient` or a `&mut SerialClient`. Evaluates to a `core::fmt::Result`; on a
/// full queue it does what the client's [`OnFull`] says. Output is published at each `\n` (or use
/// [`SerialClient::flush`]).
#[macro_export]
macro_rules! serial_print {
    ($client:expr, $($arg:tt)*) => {
        $client.write_fmt(::core::format_args!($($arg)*))
    };
}

/// [`serial_print!`] plus a line end (sent as `\r\n`; the line is published to the virt).
#[macro_export]
macro_rules! serial_println {
    ($client:expr $(,)?) => {
        $client.write_fmt(::core::format_args!("\n"))
    };
    ($client:expr, $($arg:tt)*) => {
        $client.write_fmt(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::queue::SerialQueue;
    use core::ptr::NonNull;
    use core::sync::atomic::Ordering;
    use lions_os::runtime::{Backend, with_backend};
    use lions_os::{MessageInfo, Op, OsError, OsErrorKind};
    use std::cell::RefCell;

    const TX: Channel = Channel::new(3);
    const RX: Channel = Channel::new(4);

    /// A backend that records notifications.
    #[derive(Default)]
    struct Fake {
        notes: RefCell<Vec<u8>>,
    }

    impl Backend for Fake {
        fn pd_name(&self) -> &str {
            "client"
        }
        fn notify(&self, ch: Channel) -> Result<(), OsError> {
            self.notes.borrow_mut().push(ch.index());
            Ok(())
        }
        fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
            Err(OsError::new(
                "client",
                Op::IrqAck,
                Some(ch),
                OsErrorKind::NotPermitted,
            ))
        }
        fn ppcall(&self, ch: Channel, _: MessageInfo) -> Result<MessageInfo, OsError> {
            Err(OsError::new(
                "client",
                Op::PpCall,
                Some(ch),
                OsErrorKind::NotPermitted,
            ))
        }
        fn mr(&self, _: usize) -> u64 {
            0
        }
        fn set_mr(&self, _: usize, _: u64) {}
    }

    /// One queue's memory: header and data, 8-aligned.
    struct Mem {
        header: Vec<u64>,
        data: Vec<u64>,
        cap: usize,
    }

    impl Mem {
        fn new(cap: usize) -> Self {
            Self {
                header: vec![0; 2],
                data: vec![0; cap.div_ceil(8)],
                cap,
            }
        }
        fn parts(&mut self) -> (NonNull<u8>, NonNull<u8>) {
            (
                NonNull::new(self.header.as_mut_ptr().cast()).unwrap(),
                NonNull::new(self.data.as_mut_ptr().cast()).unwrap(),
            )
        }
        fn producer(&mut self) -> SerialProducer<'static> {
            let (q, d) = self.parts();
            // SAFETY: the buffers outlive the handle in each test; one handle per role.
            unsafe { SerialProducer::new(q, 16, d, self.cap) }.unwrap()
        }
        fn consumer(&mut self) -> SerialConsumer<'static> {
            let (q, d) = self.parts();
            // SAFETY: as above.
            unsafe { SerialConsumer::new(q, 16, d, self.cap) }.unwrap()
        }
        fn flag(&self) -> u32 {
            // SAFETY: the header buffer is 8-aligned and holds a `SerialQueue`.
            let h = unsafe { &*self.header.as_ptr().cast::<SerialQueue>() };
            h.producer_signalled.load(Ordering::Relaxed)
        }
    }

    fn drain(rx: &mut SerialConsumer<'_>) -> Vec<u8> {
        let mut out = vec![0; 4096];
        let n = rx.read(&mut out).unwrap();
        rx.release();
        out.truncate(n);
        out
    }

    #[test]
    fn crlf_and_one_publish_per_line() {
        let mut m = Mem::new(64);
        let mut virt = m.consumer();
        let mut c = SerialClient::with_queues(m.producer(), TX, None);
        let fake = Fake::default();
        with_backend(&fake, || {
            assert_eq!(c.try_write(b"ab\ncd").unwrap(), 5);
            assert_eq!(drain(&mut virt), b"ab\r\n", "the partial line stays staged");
            assert_eq!(*fake.notes.borrow(), [3]);
            c.flush().unwrap();
            assert_eq!(drain(&mut virt), b"cd");
            c.flush().unwrap();
            assert_eq!(
                *fake.notes.borrow(),
                [3, 3],
                "nothing staged, no notification"
            );
            assert_eq!(c.try_write(b"\n\n").unwrap(), 2);
            assert_eq!(drain(&mut virt), b"\r\n\r\n");
            assert_eq!(fake.notes.borrow().len(), 4);
        });
    }

    #[test]
    fn non_blocking_write_takes_what_fits() {
        let mut m = Mem::new(8);
        let mut virt = m.consumer();
        let mut c = SerialClient::with_queues(m.producer(), TX, None);
        let fake = Fake::default();
        with_backend(&fake, || {
            assert!(c.write_ready().unwrap());
            assert_eq!(c.try_write(b"0123456789").unwrap(), 8);
            assert!(!c.write_ready().unwrap());
            assert_eq!(c.try_write(b"x").unwrap(), 0);
            assert_eq!(drain(&mut virt), b"01234567", "a full queue is published");
            // "\r\n" is never split: with one byte free the '\n' waits.
            assert_eq!(c.try_write(b"abcdefg\n").unwrap(), 7);
            assert_eq!(drain(&mut virt), b"abcdefg");
            assert_eq!(c.try_write(b"\n").unwrap(), 1);
            assert_eq!(drain(&mut virt), b"\r\n");
            assert_eq!(c.try_write(b"abcdef\n").unwrap(), 7, "exactly fits");
            assert_eq!(drain(&mut virt), b"abcdef\r\n");
        });
    }

    #[test]
    fn write_or_park_asks_for_a_signal() {
        let mut m = Mem::new(8);
        let mut virt = m.consumer();
        let mut c = SerialClient::with_queues(m.producer(), TX, None);
        let fake = Fake::default();
        with_backend(&fake, || {
            assert_eq!(m.flag(), 1, "nobody waits at start");
            assert_eq!(c.write_or_park(b"hello world\n").unwrap(), 8);
            assert_eq!(m.flag(), 0, "the client waits for space");
            assert_eq!(drain(&mut virt), b"hello wo");
            assert!(
                virt.should_notify(true),
                "the virt notifies once it made room"
            );
            assert_eq!(c.write_or_park(b"rld\n").unwrap(), 4);
            assert_eq!(m.flag(), 1, "everything fit: no request");
            assert_eq!(drain(&mut virt), b"rld\r\n");
            assert_eq!(c.write_or_park(b"").unwrap(), 0);
        });
    }

    #[test]
    fn fmt_drop_mode_counts_and_macros_format() {
        let mut m = Mem::new(16);
        let mut virt = m.consumer();
        let mut c = SerialClient::with_queues(m.producer(), TX, None);
        let fake = Fake::default();
        with_backend(&fake, || {
            serial_println!(c, "x = {}", 42).unwrap();
            serial_print!(&mut c, "{}-{}", 'a', 7).unwrap();
            serial_println!(&mut c).unwrap();
            assert_eq!(drain(&mut virt), b"x = 42\r\na-7\r\n");
            let r = &mut c;
            write!(r, "{:>4}", 5).unwrap();
            c.flush().unwrap();
            assert_eq!(drain(&mut virt), b"   5");
            c.set_on_full(OnFull::Drop);
            serial_println!(c, "{}", "0123456789abcdefXYZ").unwrap();
            assert_eq!(c.dropped(), 4, "16 fit, `XYZ` and the line end did not");
            assert_eq!(drain(&mut virt), b"0123456789abcdef");
        });
    }

    #[test]
    fn reading() {
        let mut rx_mem = Mem::new(8);
        let mut tx_mem = Mem::new(8);
        let mut virt = rx_mem.producer();
        let mut c = SerialClient::with_queues(tx_mem.producer(), TX, Some((rx_mem.consumer(), RX)));
        let mut no_rx = SerialClient::with_queues(Mem::new(8).producer(), TX, None);
        let fake = Fake::default();
        with_backend(&fake, || {
            assert_eq!(c.rx_channel(), Some(RX));
            assert_eq!(no_rx.rx_channel(), None);
            let mut buf = [0u8; 4];
            assert!(!embedded_io::ReadReady::read_ready(&mut no_rx).unwrap());
            assert_eq!(
                embedded_io::Read::read(&mut no_rx, &mut buf).unwrap(),
                0,
                "end of input"
            );
            assert!(!embedded_io::ReadReady::read_ready(&mut c).unwrap());
            assert_eq!(c.try_read(&mut buf).unwrap(), 0);
            virt.write(b"hello").unwrap();
            virt.publish();
            assert!(embedded_io::ReadReady::read_ready(&mut c).unwrap());
            assert_eq!(embedded_io::Read::read(&mut c, &mut buf).unwrap(), 4);
            assert_eq!(&buf, b"hell");
            assert_eq!(c.try_read(&mut buf).unwrap(), 1);
            assert_eq!(buf[0], b'o');
            assert_eq!(virt.free().unwrap(), 8, "slots handed back at once");
            assert!(fake.notes.borrow().is_empty(), "the Rx virt never asked");
            // A virt that waits for space (not sDDF's, but the protocol allows it) is notified.
            virt.write(b"12345678").unwrap();
            virt.publish();
            assert!(!virt.park().unwrap());
            assert_eq!(c.try_read(&mut buf).unwrap(), 4);
            assert_eq!(*fake.notes.borrow(), [4]);
        });
    }

    /// Blocking writes through a 16-byte queue while another thread consumes: everything arrives
    /// in order (the spin ends because the consumer runs concurrently).
    #[test]
    fn blocking_write_with_a_concurrent_consumer() {
        let mut m = Mem::new(16);
        let mut text = Vec::new();
        for i in 0..300 {
            text.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let expected: Vec<u8> = text
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        let producer = m.producer();
        let (q, d) = m.parts();
        let (q, d, cap) = (
            q.as_ptr().expose_provenance(),
            d.as_ptr().expose_provenance(),
            m.cap,
        );
        let got = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let ptr = |a| NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(a)).unwrap();
                // SAFETY: `m` outlives the scope; this is the only consumer.
                let mut virt = unsafe { SerialConsumer::new(ptr(q), 16, ptr(d), cap) }.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 7];
                while got.len() < expected.len() {
                    let n = virt.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    virt.release();
                    std::hint::spin_loop();
                }
                (got, expected)
            });
            let fake = Fake::default();
            with_backend(&fake, || {
                let mut c = SerialClient::with_queues(producer, TX, None);
                embedded_io::Write::write_all(&mut c, &text[..1000]).unwrap();
                let n = embedded_io::Write::write(&mut c, &text[1000..1010]).unwrap();
                assert!(n > 0);
                c.write_all(&text[1000 + n..2000]).unwrap();
                core::fmt::Write::write_str(&mut c, core::str::from_utf8(&text[2000..]).unwrap())
                    .unwrap();
                embedded_io::Write::flush(&mut c).unwrap();
            });
            reader.join().unwrap()
        });
        assert_eq!(got.0, got.1);
    }
}
