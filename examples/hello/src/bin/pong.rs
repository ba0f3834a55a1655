// SPDX-License-Identifier: BSD-2-Clause
//! `pong` (highest priority): answers each notification from `ping` with one back, serves `ping`'s
//! PPC (sum of the message registers), and at start writes a value into the region `shared` for
//! `faulty` to read.
#![cfg_attr(target_os = "none", no_std, no_main)]

use hello::{Error, LABEL_SUM, LABEL_SUM_REPLY, SHARED_VALUE, config, required};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, debug_println, get_mr, set_mr};

struct Pong {
    notify: Channel,
    ppc: Channel,
    count: u32,
}

fn init() -> Pong {
    let cfg = config();
    let (notify, ppc, go) = match (
        required(cfg.notify, "notify"),
        required(cfg.ppc, "ppc"),
        required(cfg.go, "go"),
    ) {
        (Ok(n), Ok(p), Ok(g)) => (n, p, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => panic!("pong: {e}"),
    };
    assert!(cfg.shared.size >= 8, "pong: `shared` is not mapped");
    let shared = cfg.shared.vaddr as *mut u64;
    // SAFETY: the host board mapped `shared` read-write at this address before `init` (the SDF
    // says so and the config carries the SDF's vaddr, 8-aligned, size checked above); no Rust
    // object lives there, so a volatile store is the only access.
    unsafe { shared.write_volatile(SHARED_VALUE) };
    debug_println!(
        "pong: wrote {SHARED_VALUE:#x} into `shared` at {:#x}; telling faulty",
        cfg.shared.vaddr
    );
    if let Err(e) = go.notify() {
        panic!("pong: {e}");
    }
    Pong {
        notify,
        ppc,
        count: 0,
    }
}

impl Handler for Pong {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        for ch in channels.iter() {
            if ch != self.notify {
                return Err(Error::Unexpected(ch));
            }
            self.count += 1;
            debug_println!(
                "pong: notification {} from ping; notifying back",
                self.count
            );
            self.notify.deferred_notify()?;
        }
        Ok(())
    }

    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Error> {
        if ch != self.ppc || msg.label() != LABEL_SUM {
            return Err(Error::Unexpected(ch));
        }
        let mut regs = [0u64; 8];
        let args = &mut regs[..msg.count().min(8)];
        for (i, a) in args.iter_mut().enumerate() {
            *a = get_mr(i);
        }
        let sum: u64 = args.iter().sum();
        debug_println!("pong: PPC from ping: sum of {args:?} = {sum}");
        set_mr(0, sum);
        Ok(MessageInfo::new(LABEL_SUM_REPLY, 1))
    }
}

lions_os::protection_domain!(init);
