// SPDX-License-Identifier: BSD-2-Clause
//! `faulty`: maps the region `shared` read-only. When `pong` says it has written it, `faulty`
//! reads the value, prints it, then tries to write: the host board enforces the read-only map, so
//! the process dies with SIGSEGV and the launcher reports it, while `ping` and `pong` go on. On
//! seL4 the write is a VM fault that the Microkit monitor reports.
#![cfg_attr(target_os = "none", no_std, no_main)]

use hello::{Error, config, required};
use lions_os::{Channel, ChannelSet, Handler};

struct Faulty {
    go: Channel,
    shared: *mut u64,
}

fn init() -> Faulty {
    let cfg = config();
    let go = match required(cfg.go, "go") {
        Ok(go) => go,
        Err(e) => panic!("faulty: {e}"),
    };
    assert!(cfg.shared.size >= 8, "faulty: `shared` is not mapped");
    lions_os::debug_println!(
        "faulty: `shared` is mapped read-only at {:#x}; waiting for pong",
        cfg.shared.vaddr
    );
    Faulty {
        go,
        shared: cfg.shared.vaddr as *mut u64,
    }
}

impl Handler for Faulty {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        if let Some(other) = channels.iter().find(|&c| c != self.go) {
            return Err(Error::Unexpected(other));
        }
        // SAFETY: the host board mapped `shared` (at least 8 bytes, 8-aligned: checked in `init`
        // and by the config) readable at this address before `init`; volatile, because `pong`
        // writes it from another process.
        let value = unsafe { self.shared.read_volatile() };
        lions_os::debug_println!("faulty: read {value:#x} from `shared`");
        lions_os::debug_println!("faulty: now writing to `shared`, which this PD may only read");
        // SAFETY: not sound by design: the mapping is read-only, so this store faults (SIGSEGV)
        // and the process dies before any Rust code could observe the write. That is the point of
        // this PD: the MMU, not the code, enforces the SDF's perms.
        unsafe { self.shared.write_volatile(value.wrapping_add(1)) };
        lions_os::debug_println!(
            "faulty: the write went through: the read-only map was NOT enforced"
        );
        Ok(())
    }
}

lions_os::protection_domain!(init);
