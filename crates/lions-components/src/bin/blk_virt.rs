// SPDX-License-Identifier: BSD-2-Clause
//! `blk_virt`: the block virtualiser ([`lions_blk::BlkVirt`]).
//!
//! Config section: `.blk_virt_config` (the driver's connection and data region, each client's
//! connection, data region and partition). At start it waits for the driver's `ready`, reads the
//! partition table (MBR or GPT) through the driver and publishes each client's partition; then it
//! checks, translates and passes on the clients' requests.
//!
//! Its state (about 29 KiB: 1024 driver-request slots, 64 client connections, the partition
//! table) lives on the PD's stack, so on seL4 the stack is 256 KiB rather than the default.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_blk::{BlkVirt, BlkVirtConfig};

lions_os::config!(static CONFIG: BlkVirtConfig = ".blk_virt_config");

use lions_os::startup_failed as fail;

fn init() -> BlkVirt<'static> {
    let config = CONFIG.get().unwrap_or_else(|e| fail(e));
    // SAFETY: the system description maps every region this config names at its vaddr (the
    // driver's storage info readable, the rest read-write) before `init` runs and for the PD's
    // whole life, each shared only with the peer at the other end; this PD makes one handle per
    // queue end and page.
    let mut virt = unsafe { BlkVirt::new(config) }.unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() == 0 {
        virt.init().unwrap_or_else(|e| fail(e));
    } else {
        // Restarted: rebuild what each driver id stands for from the queues, then serve.
        // SAFETY: as above, the same config.
        unsafe { virt.resume(config) }.unwrap_or_else(|e| fail(e));
    }
    virt
}

// 512 KiB: a debug build moves the 33 KB `BlkVirt` (its 1024 driver-id slots, 64 client entries)
// by value several times on the way out of `new` (256 KiB overflowed on seL4).
lions_os::protection_domain!(init, stack_size = 512 * 1024);
