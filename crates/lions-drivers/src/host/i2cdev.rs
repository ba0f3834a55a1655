// SPDX-License-Identifier: BSD-2-Clause
//! A Linux I²C adapter (`/dev/i2c-N`, the `i2c-dev` interface) as an [`I2cDevice`], for hosts with
//! a real bus (a USB–I²C bridge, a single-board computer's pins) under the generic driver loop.
//!
//! ## The kernel interface
//!
//! `ioctl(fd, I2C_RDWR, &i2c_rdwr_ioctl_data { msgs, nmsgs })` runs up to
//! [`I2C_RDWR_MAX_MSGS`] messages (`struct i2c_msg { u16 addr; u16 flags; u16 len; u8 *buf; }`,
//! [`I2cMsg`]) as one combined transfer: a START, each message's address and data, a repeated
//! START between messages (none before a message flagged `I2C_M_NOSTART`), one STOP at the end.
//! `I2C_M_RD` makes a message a read. A missing acknowledge fails with `ENXIO` or `EREMOTEIO`, a
//! timeout with `ETIMEDOUT` (Linux's `Documentation/i2c/fault-codes`).
//!
//! ## Mapping the device calls onto messages
//!
//! The kernel can neither return read data before the transfer ends nor keep the bus between two
//! ioctls, so [`HostI2c`] collects messages and runs them when it must:
//!
//! - `start`/`repeated_start` are noted; `address` opens a message for the address and direction;
//! - `write` appends its bytes to the open write message (a continuation without a new START
//!   stays in the same message) and moves on at once;
//! - `read` adds a read message and **runs the transfer** (the data are needed now): a register
//!   read (write, repeated START, read) is one combined transfer, exactly as on the wire;
//! - `stop` runs what is still collected.
//!
//! Limits (the kernel's, not the bus's): a read ends its transfer with a STOP, so whatever follows
//! a read in the same sDDF transaction (a write, or the continuation of a read split at 255 bytes)
//! starts a new transfer, with a fresh START and address; an address NACK is only seen when the
//! transfer runs, so `err_cmd` names the command whose call ran it.
//!
//! The transfer runs synchronously in the driver PD: calls never stay pending and the driver's IRQ
//! channel stays silent.

use super::sys;
use lions_i2c::{BusError, I2cDevice, Progress, Step};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `I2C_RDWR`: run combined messages.
pub const I2C_RDWR: libc::c_ulong = 0x0707;
/// `I2C_M_RD`: a read message.
pub const I2C_M_RD: u16 = 0x0001;
/// `I2C_M_NOSTART`: no (repeated) START and address before this message.
pub const I2C_M_NOSTART: u16 = 0x4000;
/// Most messages one `I2C_RDWR` takes (`I2C_RDWR_IOCTL_MAX_MSGS`).
pub const I2C_RDWR_MAX_MSGS: usize = 42;

/// `struct i2c_msg` (16 bytes on LP64).
#[derive(Debug)]
#[repr(C)]
pub struct I2cMsg {
    /// 7-bit address.
    pub addr: u16,
    /// `I2C_M_*` flags.
    pub flags: u16,
    /// Bytes in `buf`.
    pub len: u16,
    /// The data.
    pub buf: *mut u8,
}

/// `struct i2c_rdwr_ioctl_data`.
#[derive(Debug)]
#[repr(C)]
pub struct I2cRdwrData {
    /// The messages.
    pub msgs: *mut I2cMsg,
    /// How many.
    pub nmsgs: u32,
}

/// One message of a combined transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// 7-bit address.
    pub addr: u8,
    /// A read (`data` is filled) or a write (`data` is sent).
    pub read: bool,
    /// Continue the previous message: no repeated START, no address.
    pub nostart: bool,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What runs a combined transfer: the kernel ([`I2cDevFile`]) or, in tests, a model.
pub trait Adapter {
    /// Run `msgs` as one transfer (START … STOP), filling the read messages' data.
    fn transfer(&mut self, msgs: &mut [Msg]) -> Result<(), BusError>;
}

/// A Linux fault code as a bus error.
pub fn bus_error(errno: i32) -> BusError {
    match errno {
        libc::ENXIO | libc::EREMOTEIO => BusError::Nack,
        libc::ETIMEDOUT => BusError::Timeout,
        _ => BusError::Other,
    }
}

/// An open `/dev/i2c-N`.
#[derive(Debug)]
pub struct I2cDevFile {
    fd: OwnedFd,
}

impl I2cDevFile {
    /// Open the adapter at `path` (e.g. `/dev/i2c-1`) read-write.
    pub fn open(path: &str) -> io::Result<Self> {
        let path = std::ffi::CString::new(path)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
        Ok(Self {
            fd: sys::open(&path, libc::O_RDWR)?,
        })
    }

    /// An adapter on an already open descriptor.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }
}

impl Adapter for I2cDevFile {
    fn transfer(&mut self, msgs: &mut [Msg]) -> Result<(), BusError> {
        if msgs.is_empty() {
            return Ok(());
        }
        if msgs.len() > I2C_RDWR_MAX_MSGS {
            return Err(BusError::Other);
        }
        let mut raw = Vec::with_capacity(msgs.len());
        for m in msgs.iter_mut() {
            let len = u16::try_from(m.data.len()).map_err(|_| BusError::Other)?;
            let read = if m.read { I2C_M_RD } else { 0 };
            let nostart = if m.nostart { I2C_M_NOSTART } else { 0 };
            raw.push(I2cMsg {
                addr: u16::from(m.addr),
                flags: read | nostart,
                len,
                buf: m.data.as_mut_ptr(),
            });
        }
        let mut data = I2cRdwrData {
            msgs: raw.as_mut_ptr(),
            nmsgs: u32::try_from(raw.len()).map_err(|_| BusError::Other)?,
        };
        // SAFETY: `data` points at `raw`, whose messages point at the `data` vectors of `msgs`,
        // each `len` bytes, all alive and not otherwise borrowed for the call; the kernel reads
        // the write buffers and writes at most `len` bytes into each read buffer.
        let ret = unsafe { libc::ioctl(self.fd.as_raw_fd(), I2C_RDWR, &mut data) };
        match sys::check(ret) {
            Ok(_) => Ok(()),
            Err(e) => Err(bus_error(e.raw_os_error().unwrap_or(0))),
        }
    }
}

/// The adapter behind `A` as an [`I2cDevice`]; see the module docs.
#[derive(Debug)]
pub struct HostI2c<A> {
    adapter: A,
    msgs: Vec<Msg>,
    /// The address and direction of the current segment.
    addressed: Option<(u8, bool)>,
    /// A (repeated) START came since the last address.
    started: bool,
}

impl<A: Adapter> HostI2c<A> {
    /// The device over `adapter`.
    pub fn new(adapter: A) -> Self {
        Self {
            adapter,
            msgs: Vec::new(),
            addressed: None,
            started: false,
        }
    }

    /// The adapter (for inspection).
    pub fn adapter(&mut self) -> &mut A {
        &mut self.adapter
    }

    /// A message for the current segment: new after an address, continuing (`nostart`) after a
    /// transfer ran within the segment.
    fn open(&mut self, read: bool) -> Result<&mut Msg, BusError> {
        let (addr, dir) = self.addressed.ok_or(BusError::Other)?;
        if dir != read {
            return Err(BusError::Other);
        }
        let fresh = core::mem::take(&mut self.started);
        let continues = self.msgs.last().is_some_and(|m| !m.read && !read && !fresh);
        if !continues {
            self.msgs.push(Msg {
                addr,
                read,
                nostart: false,
                data: Vec::new(),
            });
        }
        self.msgs.last_mut().ok_or(BusError::Other)
    }

    /// Run what is collected (nothing: no transfer).
    fn flush(&mut self) -> Result<(), BusError> {
        if self.msgs.is_empty() {
            return Ok(());
        }
        let r = self.adapter.transfer(&mut self.msgs);
        if r.is_err() {
            self.msgs.clear();
        }
        r
    }
}

impl<A: Adapter> I2cDevice for HostI2c<A> {
    fn start(&mut self) -> Step {
        self.started = true;
        Ok(Progress::Done(0))
    }

    fn repeated_start(&mut self) -> Step {
        self.started = true;
        Ok(Progress::Done(0))
    }

    fn address(&mut self, address: u8, read: bool) -> Step {
        self.addressed = Some((address, read));
        self.started = true;
        Ok(Progress::Done(0))
    }

    fn write(&mut self, data: &[u8]) -> Step {
        let m = self.open(false)?;
        if m.data.len() + data.len() > usize::from(u16::MAX) {
            return Err(BusError::Other);
        }
        m.data.extend_from_slice(data);
        Ok(Progress::Done(data.len()))
    }

    fn read(&mut self, buf: &mut [u8], _last: bool) -> Step {
        self.open(true)?.data = vec![0; buf.len()];
        self.flush()?;
        let m = self.msgs.pop().ok_or(BusError::Other)?;
        buf.copy_from_slice(&m.data);
        self.msgs.clear();
        // Anything more in this segment is a new transfer: START and address again.
        self.started = true;
        Ok(Progress::Done(buf.len()))
    }

    fn stop(&mut self) -> Step {
        self.flush()?;
        self.msgs.clear();
        self.addressed = None;
        Ok(Progress::Done(0))
    }

    fn irq(&mut self, _: &mut [u8]) -> Step {
        Err(BusError::Other) // never pending
    }

    fn halt(&mut self) {
        self.msgs.clear();
        (self.addressed, self.started) = (None, false);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::i2c::model::{Ds3231Model, ModelBus, NoTarget};
    use core::mem::{offset_of, size_of};

    #[test]
    fn kernel_structs_have_the_c_layout() {
        assert_eq!(size_of::<I2cMsg>(), 16);
        assert_eq!(
            (
                offset_of!(I2cMsg, addr),
                offset_of!(I2cMsg, flags),
                offset_of!(I2cMsg, len),
                offset_of!(I2cMsg, buf)
            ),
            (0, 2, 4, 8)
        );
        assert_eq!(size_of::<I2cRdwrData>(), 16);
        assert_eq!(
            (
                offset_of!(I2cRdwrData, msgs),
                offset_of!(I2cRdwrData, nmsgs)
            ),
            (0, 8)
        );
    }

    /// Runs transfers on a model bus as the kernel would, and records them.
    struct ModelAdapter {
        bus: ModelBus<Ds3231Model, NoTarget>,
        transfers: Vec<Vec<Msg>>,
    }

    impl Adapter for ModelAdapter {
        fn transfer(&mut self, msgs: &mut [Msg]) -> Result<(), BusError> {
            let mut r = Ok(());
            for (i, m) in msgs.iter_mut().enumerate() {
                if !m.nostart {
                    let _ = if i == 0 {
                        self.bus.start()
                    } else {
                        self.bus.repeated_start()
                    };
                    if let Err(e) = self.bus.address(m.addr, m.read) {
                        r = Err(e);
                        break;
                    }
                }
                let s = if m.read {
                    self.bus.read(&mut m.data, true)
                } else {
                    self.bus.write(&m.data)
                };
                if let Err(e) = s {
                    r = Err(e);
                    break;
                }
            }
            let _ = self.bus.stop();
            self.transfers.push(msgs.to_vec());
            r
        }
    }

    fn dev() -> HostI2c<ModelAdapter> {
        HostI2c::new(ModelAdapter {
            bus: ModelBus::new(Ds3231Model::new(), NoTarget),
            transfers: Vec::new(),
        })
    }

    fn msg(addr: u8, read: bool, data: &[u8]) -> Msg {
        Msg {
            addr,
            read,
            nostart: false,
            data: data.to_vec(),
        }
    }

    #[test]
    fn a_register_read_is_one_combined_transfer() {
        let mut d = dev();
        d.adapter().bus.first().registers_mut()[0x0e] = 0x5a;
        let mut buf = [0u8; 2];
        assert_eq!(d.start(), Ok(Progress::Done(0)));
        assert_eq!(d.address(0x68, false), Ok(Progress::Done(0)));
        assert_eq!(d.write(&[0x0e]), Ok(Progress::Done(1)));
        assert_eq!(d.repeated_start(), Ok(Progress::Done(0)));
        assert_eq!(d.address(0x68, true), Ok(Progress::Done(0)));
        assert_eq!(d.read(&mut buf, true), Ok(Progress::Done(2)));
        assert_eq!(d.stop(), Ok(Progress::Done(0)));
        let status = d.adapter().bus.first().registers()[0x0f];
        assert_eq!(buf, [0x5a, status]);
        assert_eq!(
            d.adapter().transfers,
            [vec![
                msg(0x68, false, &[0x0e]),
                msg(0x68, true, &[0x5a, status])
            ]],
            "one transfer; nothing left for the STOP"
        );
    }

    #[test]
    fn writes_continue_one_message_and_run_at_stop() {
        let mut d = dev();
        d.start().unwrap();
        d.address(0x68, false).unwrap();
        d.write(&[0x07, 0x11]).unwrap();
        d.write(&[0x22]).unwrap(); // a continuation (RSTART body): same message
        assert!(
            d.adapter().transfers.is_empty(),
            "nothing runs before the STOP"
        );
        d.stop().unwrap();
        assert_eq!(
            d.adapter().transfers,
            [vec![msg(0x68, false, &[0x07, 0x11, 0x22])]]
        );
        assert_eq!(d.adapter().bus.first().registers()[7..9], [0x11, 0x22]);
    }

    #[test]
    fn a_nack_fails_the_call_that_runs_the_transfer_and_nothing_is_left() {
        let mut d = dev();
        d.start().unwrap();
        d.address(0x50, false).unwrap();
        d.write(&[1]).unwrap();
        assert_eq!(d.stop(), Err(BusError::Nack));
        d.halt();
        // The next transaction starts clean.
        let mut b = [0u8; 1];
        d.start().unwrap();
        d.address(0x68, true).unwrap();
        d.read(&mut b, true).unwrap();
        d.stop().unwrap();
        assert_eq!(
            d.adapter().transfers.last().unwrap(),
            &[msg(0x68, true, &b)]
        );
    }

    #[test]
    fn after_a_read_the_segment_goes_on_in_a_new_transfer() {
        let mut d = dev();
        let (mut a, mut b) = ([0u8; 2], [0u8; 3]);
        d.start().unwrap();
        d.address(0x68, true).unwrap();
        d.read(&mut a, false).unwrap();
        d.read(&mut b, true).unwrap(); // the RSTART continuation
        d.stop().unwrap();
        let t = &d.adapter().transfers;
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|x| x.len() == 1 && x[0].read && !x[0].nostart));
        // The DS3231 model's pointer moved on: 2 bytes, then the next 3.
        let regs = *d.adapter().bus.first().registers();
        assert_eq!((a, b), ([regs[0], regs[1]], [regs[2], regs[3], regs[4]]));
    }

    #[test]
    fn calls_out_of_order_are_refused() {
        let mut d = dev();
        assert_eq!(d.write(&[1]), Err(BusError::Other), "no address");
        d.start().unwrap();
        d.address(0x68, false).unwrap();
        assert_eq!(
            d.read(&mut [0u8; 1], true),
            Err(BusError::Other),
            "wrong direction"
        );
        assert_eq!(d.irq(&mut []), Err(BusError::Other));
    }

    #[test]
    fn linux_fault_codes_map_onto_bus_errors() {
        assert_eq!(bus_error(libc::ENXIO), BusError::Nack);
        assert_eq!(bus_error(libc::EREMOTEIO), BusError::Nack);
        assert_eq!(bus_error(libc::ETIMEDOUT), BusError::Timeout);
        assert_eq!(bus_error(libc::EAGAIN), BusError::Other);
    }

    #[test]
    fn the_kernel_refuses_i2c_rdwr_on_a_file_that_is_not_an_adapter() {
        assert_eq!(
            I2cDevFile::open("/dev/i2c-does-not-exist")
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        // /dev/null takes the real ioctl and answers ENOTTY: an error other than NACK/timeout.
        let mut null = I2cDevFile::open("/dev/null").unwrap();
        let mut msgs = [msg(0x68, false, &[0])];
        assert_eq!(null.transfer(&mut msgs), Err(BusError::Other));
        let mut many = vec![msg(0x68, false, &[0]); I2C_RDWR_MAX_MSGS + 1];
        assert_eq!(null.transfer(&mut many), Err(BusError::Other));
        assert_eq!(null.transfer(&mut []), Ok(()));
    }

    /// With a real adapter: `LIONS_I2C_TEST_DEV=/dev/i2c-N` and a DS3231 at 0x68 on that bus.
    #[test]
    #[ignore = "not run: needs a real I2C adapter with a DS3231 (LIONS_I2C_TEST_DEV=/dev/i2c-N)"]
    fn a_real_adapter_reads_a_ds3231() {
        let path = std::env::var("LIONS_I2C_TEST_DEV").expect("LIONS_I2C_TEST_DEV");
        let mut d = HostI2c::new(I2cDevFile::open(&path).unwrap());
        let mut t = [0u8; 7];
        d.start().unwrap();
        d.address(0x68, false).unwrap();
        d.write(&[0]).unwrap();
        d.repeated_start().unwrap();
        d.address(0x68, true).unwrap();
        d.read(&mut t, true).unwrap();
        d.stop().unwrap();
        assert!(
            t[0] & 0x7f < 0x60 && t[1] < 0x60,
            "seconds and minutes in BCD: {t:?}"
        );
    }
}
