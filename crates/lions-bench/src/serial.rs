// SPDX-License-Identifier: BSD-2-Clause
//! Serial workloads: the Tx virt (one client, or two with colour) and the Rx virt (one client),
//! each alone, with the bench playing the driver and the clients.
//!
//! Every queue holds [`QUEUE`] bytes. Tx: a unit is a 64-byte line (63 characters and `\n`); a
//! client writes `lines` lines, publishes and notifies; the virt runs one event; the driver drains
//! and checks its queue byte for byte (with the colour codes around each client's transfer). With
//! two clients they take turns, one line each. Rx: a unit is a character; the driver writes
//! `chars` of them (never the switch character), the virt runs one event, the client drains and
//! checks. No peer ever fills a queue, so no peer asks for a signal.

use crate::os::{Mem, Ring, Shim, Width, event_fns, set, start};
use lions_os::{ConfigClass, Mapped, sddf_magic};
use lions_serial::config::{SerialConnectionResource, SerialVirtRxConfig, SerialVirtTxConfig};
use lions_serial::virt_tx::colour_code;
use lions_serial::{VirtRx, VirtTx};
use zerocopy::FromZeros;

/// Bytes per serial queue.
const QUEUE: usize = 4096;
/// Bytes per line.
const LINE: usize = 64;

event_fns!(
    /// One measured event of the serial Tx virtualiser.
    insns_serial_virt_tx,
    warm_serial_virt_tx,
    VirtTx<'_>
);
event_fns!(
    /// One measured event of the serial Rx virtualiser.
    insns_serial_virt_rx,
    warm_serial_virt_rx,
    VirtRx<'_>
);

/// One serial queue: the 12-byte header and the data.
struct Queue {
    header: Mem,
    data: Mem,
}

impl Queue {
    fn new() -> Self {
        Self {
            header: Mem::new(64),
            data: Mem::new(QUEUE),
        }
    }

    fn conn(&self, id: u8) -> SerialConnectionResource {
        SerialConnectionResource {
            queue: self.header.res(),
            data: self.data.res(),
            id,
            _pad: [0; 7],
        }
    }

    fn ring(&self) -> Ring<'_, u8> {
        Ring::new(
            &self.header,
            (4, 0),
            &self.data,
            0,
            QUEUE as u32,
            Width::U32,
        )
    }

    /// The producer (a bench peer) is not waiting for room.
    fn not_waiting(&self) {
        self.header.store32(8, 1);
    }

    fn drain(&self) -> Vec<u8> {
        let r = self.ring();
        core::iter::from_fn(|| r.pop()).collect()
    }
}

/// Line `seq`: its number in decimal, then letters, then `\n`: 64 bytes.
fn line(seq: u64) -> [u8; LINE] {
    let mut l = [0u8; LINE];
    let digits = format!("{seq:020}");
    l[..20].copy_from_slice(digits.as_bytes());
    for (i, b) in l[20..LINE - 1].iter_mut().enumerate() {
        *b = b'a' + ((seq as usize + i) % 26) as u8;
    }
    l[LINE - 1] = b'\n';
    l
}

/// The Tx virt: `clients` clients (colour on with two), `lines` lines per notification.
pub fn virt_tx(shim: &Shim, units: u64, warmup: u64, clients: usize, lines: u64) -> u64 {
    let driver = Queue::new();
    let queues: Vec<Queue> = (0..clients).map(|_| Queue::new()).collect();
    let colour = clients > 1;
    let mut cfg = Box::new(SerialVirtTxConfig::new_zeroed());
    cfg.magic = sddf_magic(ConfigClass::Serial);
    cfg.driver = driver.conn(0);
    cfg.num_clients = u8::try_from(clients).expect("clients");
    cfg.enable_colour = u8::from(colour);
    for (c, q) in queues.iter().enumerate() {
        cfg.clients[c].conn = q.conn(c as u8 + 1);
        let name = format!("client{c}");
        cfg.clients[c].name[..name.len()].copy_from_slice(name.as_bytes());
        q.not_waiting();
    }
    // SAFETY: every region named in `cfg` is a live `Mem` of this frame, outliving `virt`; the
    // bench touches them only between events, as the peers.
    // (These are the bench's own memories, which no mapping table knows: `assume`.)
    let mut virt = VirtTx::new(unsafe { Mapped::assume(&cfg) }).expect("serial VirtTx::new");
    start(|| virt.init());
    let legend = driver.drain();
    assert_eq!(!legend.is_empty(), colour, "legend only with colour");
    let per_round = lines * clients as u64;
    let (warm, measured) = (warmup.div_ceil(per_round), units.div_ceil(per_round));
    let mut seq = 0u64;
    for round in 0..warm + measured {
        if round == warm {
            shim.reset();
        }
        for (c, q) in queues.iter().enumerate() {
            let ring = q.ring();
            let mut expected = Vec::new();
            if colour {
                expected.extend_from_slice(&colour_code(c));
            }
            for _ in 0..lines {
                line(seq).iter().for_each(|&b| ring.push(b));
                expected.extend_from_slice(&line(seq));
                seq += 1;
            }
            if colour {
                expected.extend_from_slice(b"\x1b[0m");
            }
            let ch = set(&[c as u8 + 1]);
            if round < warm {
                warm_serial_virt_tx(&mut virt, ch);
            } else {
                insns_serial_virt_tx(&mut virt, ch);
            }
            assert!(ring.is_empty(), "client {c}: virt left bytes behind");
            let out = driver.drain();
            assert!(out == expected, "client {c}: driver got other bytes");
        }
    }
    assert_eq!((virt.faulty(), virt.waiting()), (0, 0));
    measured * per_round
}

/// The Rx virt: one client, `chars` characters per notification.
pub fn virt_rx(shim: &Shim, units: u64, warmup: u64, chars: u64) -> u64 {
    let (driver, client) = (Queue::new(), Queue::new());
    let mut cfg = Box::new(SerialVirtRxConfig::new_zeroed());
    cfg.magic = sddf_magic(ConfigClass::Serial);
    cfg.driver = driver.conn(0);
    cfg.clients[0] = client.conn(1);
    cfg.num_clients = 1;
    cfg.switch_char = 0x1c;
    cfg.terminate_num_char = b'\r';
    driver.not_waiting();
    // SAFETY: as in `virt_tx`.
    let mut virt = VirtRx::new(unsafe { Mapped::assume(&cfg) }).expect("serial VirtRx::new");
    let (warm, measured) = (warmup.div_ceil(chars), units.div_ceil(chars));
    let mut seq = 0u64;
    let ring = driver.ring();
    for round in 0..warm + measured {
        if round == warm {
            shim.reset();
        }
        let first = seq;
        for _ in 0..chars {
            ring.push(b'a' + (seq % 26) as u8);
            seq += 1;
        }
        if round < warm {
            warm_serial_virt_rx(&mut virt, set(&[0]));
        } else {
            insns_serial_virt_rx(&mut virt, set(&[0]));
        }
        assert!(ring.is_empty(), "virt left input behind");
        let got = client.drain();
        assert!(
            got.len() as u64 == chars
                && got
                    .iter()
                    .zip(first..)
                    .all(|(&b, s)| b == b'a' + (s % 26) as u8),
            "client got other bytes"
        );
    }
    assert_eq!((virt.drops(), virt.faulty()), (0, 0));
    measured * chars
}
