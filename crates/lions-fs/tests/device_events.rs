// SPDX-License-Identifier: BSD-2-Clause
//! A notification from the block device is an event for the FAT server: `FsServer` hands any
//! channel but its client's to the backend, and the FAT backend lets its device take what it
//! finished (`BlockDevice::poll`) without a command waiting for it.
#![allow(clippy::unwrap_used)]

mod common;

use common::{CLIENT_CH, Conn};
use lions_fs::{BlockDevice, BlockError, FatFs, RamDisk};
use lions_os::{Channel, ChannelSet, Handler};
use std::cell::Cell;
use std::rc::Rc;

/// A RAM disk that counts `poll` calls.
struct Counting(RamDisk, Rc<Cell<u32>>);

impl BlockDevice for Counting {
    fn block_size(&self) -> usize {
        self.0.block_size()
    }
    fn block_count(&self) -> u64 {
        self.0.block_count()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.0.read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.0.write_blocks(lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.0.flush()
    }
    fn poll(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}

#[test]
fn device_notifications_reach_the_device() {
    let polls = Rc::new(Cell::new(0));
    let conn = Conn::new(4096);
    let disk = Counting(common::formatted_disk(1), polls.clone());
    let mut server = conn.server(FatFs::new(disk));
    let blk = Channel::new(7);
    server.notified(ChannelSet::default().with(blk)).unwrap();
    assert_eq!(polls.get(), 1, "the blk channel");
    server
        .notified(ChannelSet::default().with(Channel::new(CLIENT_CH)))
        .unwrap();
    assert_eq!(
        polls.get(),
        1,
        "the client's channel alone is not the device's"
    );
    server
        .notified(
            ChannelSet::default()
                .with(blk)
                .with(Channel::new(CLIENT_CH)),
        )
        .unwrap();
    assert_eq!(polls.get(), 2, "both");
}
