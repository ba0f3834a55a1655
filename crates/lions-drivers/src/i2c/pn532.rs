// SPDX-License-Identifier: BSD-2-Clause
//! NXP PN532 NFC controller over I²C, generic over an embedded-hal [`I2c`] bus.
//!
//! ## Protocol (data sheet facts)
//!
//! 7-bit address 0x24. The host writes a normal information frame: `00 00 ff`, LEN (bytes of
//! TFI + command + data), LCS (LEN + LCS = 0 mod 256), TFI 0xd4, command, data, DCS (TFI +
//! command + data + DCS = 0 mod 256), `00`. Every read from the PN532 begins with a status byte
//! whose bit 0 says the PN532 is ready; the host polls it. Once ready, it reads the ACK frame
//! `00 00 ff 00 ff 00`; when ready again, the response frame, with TFI 0xd5 and command + 1.
//! Commands here: GetFirmwareVersion (0x02), SAMConfiguration (0x14, normal mode),
//! InListPassiveTarget (0x4a, one target, 106 kbps type A), whose response is NbTg, then per
//! target Tg, SENS_RES (2), SEL_RES (1), NFCIDLength and the UID.

use super::model::Uid;
use embedded_hal::i2c::I2c;

/// The PN532's bus address.
pub const ADDRESS: u8 = 0x24;
/// Host-to-PN532 frame identifier.
pub const TFI_HOST: u8 = 0xd4;
/// PN532-to-host frame identifier.
pub const TFI_PN532: u8 = 0xd5;
/// How many status polls before giving up.
pub const READY_POLLS: u32 = 1000;

/// A PN532 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The bus failed.
    Bus(E),
    /// Not ready after [`READY_POLLS`] status reads.
    Timeout,
    /// A frame with a bad ACK, start code, checksum, TFI or command code.
    BadFrame,
}

impl<E> From<E> for Error<E> {
    fn from(e: E) -> Self {
        Self::Bus(e)
    }
}

/// What GetFirmwareVersion reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware {
    /// IC (0x32 for the PN532).
    pub ic: u8,
    /// Version.
    pub version: u8,
    /// Revision.
    pub revision: u8,
    /// Supported protocols (bit 0 type A, 1 type B, 2 ISO18092).
    pub support: u8,
}

/// The PN532 on bus `I`.
pub struct Pn532<I> {
    i2c: I,
}

impl<I: I2c> Pn532<I> {
    /// The controller on `i2c`.
    pub fn new(i2c: I) -> Self {
        Self { i2c }
    }

    /// The bus back.
    pub fn release(self) -> I {
        self.i2c
    }

    /// The bus (for tests and diagnostics).
    pub fn bus(&mut self) -> &mut I {
        &mut self.i2c
    }

    /// Send `cmd` with `data` (at most 32 bytes) and wait for its ACK.
    fn send(&mut self, cmd: u8, data: &[u8]) -> Result<(), Error<I::Error>> {
        let mut f = [0u8; 41];
        let n = data.len().min(32);
        // `n + 2 <= 34`.
        #[allow(clippy::cast_possible_truncation)]
        let len = n as u8 + 2;
        f[..7].copy_from_slice(&[0, 0, 0xff, len, len.wrapping_neg(), TFI_HOST, cmd]);
        f[7..7 + n].copy_from_slice(&data[..n]);
        let sum = f[5..7 + n].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        (f[7 + n], f[8 + n]) = (sum.wrapping_neg(), 0);
        self.i2c.write(ADDRESS, &f[..9 + n])?;
        let mut ack = [0u8; 7];
        self.read_ready(&mut ack)?;
        if ack[1..] != super::model::PN532_ACK {
            return Err(Error::BadFrame);
        }
        Ok(())
    }

    /// Poll the status byte until ready, then read `buf` (status byte first).
    fn read_ready(&mut self, buf: &mut [u8]) -> Result<(), Error<I::Error>> {
        for _ in 0..READY_POLLS {
            let mut s = [0u8];
            self.i2c.read(ADDRESS, &mut s)?;
            if s[0] & 1 == 1 {
                self.i2c.read(ADDRESS, buf)?;
                return if buf[0] & 1 == 1 {
                    Ok(())
                } else {
                    Err(Error::BadFrame)
                };
            }
        }
        Err(Error::Timeout)
    }

    /// Send `cmd`, then read its response's data into `out`; returns the data length.
    pub fn command(
        &mut self,
        cmd: u8,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error<I::Error>> {
        self.send(cmd, data)?;
        let mut r = [0u8; 48];
        self.read_ready(&mut r)?;
        let f = &r[1..];
        let len = usize::from(f[3]);
        if f[..3] != [0, 0, 0xff] || f[3].wrapping_add(f[4]) != 0 || len < 2 || 7 + len > f.len() {
            return Err(Error::BadFrame);
        }
        let body = &f[5..5 + len];
        let dcs = f[5 + len];
        let sum = body.iter().fold(dcs, |s, b| s.wrapping_add(*b));
        if sum != 0 || body[0] != TFI_PN532 || body[1] != cmd.wrapping_add(1) {
            return Err(Error::BadFrame);
        }
        let n = (len - 2).min(out.len());
        out[..n].copy_from_slice(&body[2..2 + n]);
        Ok(len - 2)
    }

    /// GetFirmwareVersion.
    pub fn firmware_version(&mut self) -> Result<Firmware, Error<I::Error>> {
        let mut d = [0u8; 4];
        if self.command(0x02, &[], &mut d)? != 4 {
            return Err(Error::BadFrame);
        }
        Ok(Firmware {
            ic: d[0],
            version: d[1],
            revision: d[2],
            support: d[3],
        })
    }

    /// SAMConfiguration: normal mode (no secure access module), timeout 1 s, IRQ pin used.
    pub fn sam_configuration(&mut self) -> Result<(), Error<I::Error>> {
        self.command(0x14, &[0x01, 0x14, 0x01], &mut [])?;
        Ok(())
    }

    /// InListPassiveTarget for one ISO14443A card: its UID, or `None` if none answered.
    pub fn read_passive_target(&mut self) -> Result<Option<Uid>, Error<I::Error>> {
        let mut d = [0u8; 32];
        let n = self.command(0x4a, &[0x01, 0x00], &mut d)?;
        if n == 0 || d[0] == 0 {
            return Ok(None);
        }
        let uid_len = usize::from(d[5]);
        if n < 6 + uid_len || uid_len > 10 {
            return Err(Error::BadFrame);
        }
        Ok(Some(Uid::new(&d[6..6 + uid_len])))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::i2c::model::{ModelBus, NoTarget, Pn532Model};
    use embedded_hal::i2c::{ErrorKind, Operation};

    fn nfc() -> Pn532<ModelBus<Pn532Model, NoTarget>> {
        Pn532::new(ModelBus::new(Pn532Model::new(), NoTarget))
    }

    #[test]
    fn firmware_sam_and_cards() {
        let mut p = nfc();
        let fw = p.firmware_version().unwrap();
        assert_eq!(
            (fw.ic, fw.version, fw.revision, fw.support),
            (0x32, 1, 6, 7)
        );
        p.sam_configuration().unwrap();
        assert_eq!(p.read_passive_target().unwrap(), None);
        let uid = Uid::new(&[0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6]);
        p.bus().first().set_card(Some(uid));
        assert_eq!(p.read_passive_target().unwrap(), Some(uid));
        p.bus()
            .first()
            .set_card(Some(Uid::new(&[0xde, 0xad, 0xbe, 0xef])));
        let got = p.read_passive_target().unwrap().unwrap();
        assert_eq!(got.as_slice(), [0xde, 0xad, 0xbe, 0xef]);
        p.bus().first().set_card(None);
        assert_eq!(p.read_passive_target().unwrap(), None);
        assert_eq!(p.bus().first().commands, 6);
    }

    #[test]
    fn the_model_ignores_bad_checksums_and_the_driver_times_out() {
        let mut bus = ModelBus::new(Pn532Model::new(), NoTarget);
        // GetFirmwareVersion with a wrong DCS: no ACK, the status stays "not ready".
        bus.write(ADDRESS, &[0, 0, 0xff, 2, 0xfe, 0xd4, 0x02, 0x2b, 0])
            .unwrap();
        let mut s = [0u8];
        bus.read(ADDRESS, &mut s).unwrap();
        assert_eq!(s, [0]);
        // Wrong LCS.
        bus.write(ADDRESS, &[0, 0, 0xff, 2, 0xff, 0xd4, 0x02, 0x2a, 0])
            .unwrap();
        bus.read(ADDRESS, &mut s).unwrap();
        assert_eq!(s, [0]);
        // The right frame is ACKed.
        bus.write(ADDRESS, &[0, 0, 0xff, 2, 0xfe, 0xd4, 0x02, 0x2a, 0])
            .unwrap();
        let mut ack = [0u8; 7];
        bus.read(ADDRESS, &mut ack).unwrap();
        assert_eq!(ack, [1, 0, 0, 0xff, 0, 0xff, 0]);
        // A command the model does not know gets an ACK-less silence: the driver times out.
        let mut p = Pn532::new(bus);
        p.bus().first().set_card(None);
        let mut junk = [0u8; 1];
        // Drain the pending firmware response first.
        let mut r = [0u8; 20];
        p.bus().read(ADDRESS, &mut r).unwrap();
        assert_eq!(r[6..8], [0xd5, 0x03]);
        assert_eq!(p.command(0x60, &[], &mut junk), Err(Error::Timeout));
        // Nobody at another address: a NACK from the bus.
        let mut bus = p.release();
        assert_eq!(
            bus.transaction(0x25, &mut [Operation::Write(&[0])]),
            Err(ErrorKind::NoAcknowledge(
                embedded_hal::i2c::NoAcknowledgeSource::Address
            ))
        );
    }
}
