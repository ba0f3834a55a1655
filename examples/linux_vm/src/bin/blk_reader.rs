// SPDX-License-Identifier: BSD-2-Clause
//! `blk_reader`: a native blk client beside the guest that reads [`READ_BYTES`] of its partition
//! once at start, in the largest chunks its data region holds, and prints the time and rate
//! (`blk_reader: read 8 MiB in N us: X KiB/s`): the native peer of the guest's `dd` of its virtio
//! disk in the same run.
//!
//! Config sections: `.blk_client_config`, `.timer_client_config`, `.serial_client_config`.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Bytes read.
pub const READ_BYTES: u64 = 8 << 20;

#[cfg(target_os = "none")]
mod sel4 {
    use super::READ_BYTES;
    use lions_blk::{BlkClient, BlkClientConfig, BlockingBlk};
    use lions_os::NullHandler;
    use lions_serial::client::SerialClient;
    use lions_serial::{SerialClientConfig, serial_println};
    use lions_timer::{TimerClient, TimerClientConfig};

    lions_os::config!(static BLK: BlkClientConfig = ".blk_client_config");
    lions_os::config!(static TIMER: TimerClientConfig = ".timer_client_config");
    lions_os::config!(static SERIAL: SerialClientConfig = ".serial_client_config");

    use lions_os::startup_failed as fail;

    /// Transfer unit of the blk protocol.
    const UNIT: u64 = 4096;
    /// Bytes per request (the data region permitting).
    const CHUNK: usize = 64 << 10;
    static mut BUF: [u8; CHUNK] = [0; CHUNK];

    pub(crate) fn init() -> NullHandler {
        let blk = BLK.mapped().unwrap_or_else(|e| fail(e));
        let timer = TIMER.get().unwrap_or_else(|e| fail(e));
        let serial = SERIAL.mapped().unwrap_or_else(|e| fail(e));
        let mut out = SerialClient::new(serial).unwrap_or_else(|e| fail(e));
        let client = BlkClient::new(blk).unwrap_or_else(|e| fail(e));
        let timer = TimerClient::from_config(timer).unwrap_or_else(|| fail("timer channel"));
        let chunk = CHUNK.min(client.data_len());
        let mut disk = BlockingBlk::new(client);
        let info = disk.wait_ready().unwrap_or_else(|e| fail(e));
        let total = READ_BYTES.min(info.capacity * UNIT);
        // SAFETY: the only reference to BUF, taken once in `init` (which runs once).
        let buf = unsafe { &mut *core::ptr::addr_of_mut!(BUF) };
        let t0 = timer.time_now().unwrap_or_else(|e| fail(e));
        let mut done = 0u64;
        while done < total {
            let n = usize::try_from(total - done).map_or(chunk, |left| left.min(chunk));
            disk.read_blocks(done / UNIT, &mut buf[..n])
                .unwrap_or_else(|e| fail(e));
            done += n as u64; // n <= CHUNK
        }
        let t1 = timer.time_now().unwrap_or_else(|e| fail(e));
        let us = (t1.saturating_sub(t0) / 1000).max(1);
        let _ = serial_println!(
            out,
            "blk_reader: read {} MiB in {} us: {} KiB/s",
            done >> 20,
            us,
            (done >> 10) * 1_000_000 / us
        );
        NullHandler
    }
}

#[cfg(target_os = "none")]
lions_os::protection_domain!(sel4::init);

/// Not a host-board component here: say so.
#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    eprintln!("blk_reader is linux_vm's native disk reader on seL4 (qemu_virt_aarch64)");
    std::process::ExitCode::FAILURE
}
