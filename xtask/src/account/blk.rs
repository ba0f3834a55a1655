// SPDX-License-Identifier: BSD-2-Clause
//! The block part of `cargo xtask account`: what the blk virt has lent out of its clients' data
//! regions, from the same snapshot.
//!
//! The blk virt lends the driver 4 KiB units of a client's data region (or of its own bounce
//! area, for partition-table reads): a READ or WRITE it passes on names them by I/O address and
//! count. A unit is **lent** while such a request is in the driver's request queue (between
//! `head` and `tail`, `u32` indices, slot `index % capacity`) or held by the driver (taken and
//! not answered: `req.head - resp.tail` of them, the last it took, exact for a driver that
//! answers in the order it takes requests, as the host board's file-backed driver does). Each
//! lent unit must be lent once (two requests at once on one buffer is [`Problem::Twice`]), and
//! every lent address must lie in a data region ([`Problem::Stray`]). Besides units, requests are
//! counted per client: waiting in its request queue, **owed** by the virt (taken, not yet
//! answered: `req.head - resp.tail`), and answers waiting in its response queue. A quiescent
//! system after a run has nothing lent, owed or waiting: every unit is home with its client.

use super::{Mapper, Place, Problem, Snapshot, blob};
use crate::Error;
use crate::assembly::Assembly;
use lions_blk::{BlkConnectionResource, BlkVirtConfig};
use lions_sdf::System;
use std::fmt;
use std::path::Path;

/// Bytes of one transfer unit (`BLK_TRANSFER_SIZE`).
const UNIT: u64 = 4096;

/// One blk queue as the snapshot holds it: `head` u32 at 0, `tail` u32 at 4, entries from
/// `header` on, `entry` bytes each.
#[derive(Debug, Clone)]
pub struct BlkRing {
    /// The memory region's name.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Entries it holds (the connection's `num_buffers`).
    pub capacity: u32,
    /// Offset of the first entry (16 for requests, 8 for responses).
    pub header: usize,
    /// Bytes per entry (32 for requests, 12 for responses).
    pub entry: usize,
}

impl BlkRing {
    fn u32_at(&self, at: usize) -> u32 {
        self.bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }

    /// The consumer's index.
    pub fn head(&self) -> u32 {
        self.u32_at(0)
    }

    /// The producer's index.
    pub fn tail(&self) -> u32 {
        self.u32_at(4)
    }

    /// Entries waiting: `tail - head`.
    pub fn live(&self) -> u32 {
        self.tail().wrapping_sub(self.head())
    }

    /// A request's (code, `io_or_offset`, count) in the slot of raw index `index`.
    fn request(&self, index: u32) -> Option<(u32, u64, u16)> {
        let slot = usize::try_from(index % self.capacity.max(1)).ok()?;
        let at = self.header + slot * self.entry;
        let b = self.bytes.get(at..at + 32)?;
        Some((
            u32::from_le_bytes(b[..4].try_into().ok()?),
            u64::from_le_bytes(b[8..16].try_into().ok()?),
            u16::from_le_bytes(b[24..26].try_into().ok()?),
        ))
    }
}

/// A data region units are lent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRegion {
    /// Whose it is (a client's PD name, or `blk_virt (bounce)`).
    pub label: String,
    /// Its I/O address.
    pub io_addr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// The block subsystem of a system: the driver's queues, the clients' queues, the data regions.
#[derive(Debug, Clone, Default)]
pub struct BlkLayout {
    /// The driver's request and response queues and the driver's name.
    pub driver: Option<(BlkRing, BlkRing, String)>,
    /// Each client's name, request and response queue.
    pub clients: Vec<(String, BlkRing, BlkRing)>,
    /// The regions units are lent from.
    pub regions: Vec<DataRegion>,
}

/// The units of one region lent out: (unit index, its places), in unit order.
pub type LentUnits = Vec<(u64, Vec<Place>)>;

/// The block account.
#[derive(Debug, Clone, Default)]
pub struct BlkAccount {
    /// Per region, each lent unit's places (unit index, places).
    pub lent: Vec<(DataRegion, LentUnits)>,
    /// Requests held by the driver (taken, not answered).
    pub driver_holds: u32,
    /// Per client: requests waiting in its queue, owed by the virt, answers waiting.
    pub clients: Vec<(String, u32, u32, u32)>,
    /// Requests waiting in the driver's queue, answers waiting in its response queue.
    pub driver_queues: (u32, u32),
    /// Violations.
    pub problems: Vec<Problem>,
}

impl BlkAccount {
    /// Units lent out in all.
    pub fn units_lent(&self) -> usize {
        self.lent.iter().map(|(_, u)| u.len()).sum()
    }

    /// Nothing lent, owed, held or waiting anywhere, and no violation.
    pub fn all_home(&self) -> bool {
        self.units_lent() == 0
            && self.driver_holds == 0
            && self.driver_queues == (0, 0)
            && self.clients.iter().all(|c| (c.1, c.2, c.3) == (0, 0, 0))
            && self.problems.is_empty()
    }
}

impl fmt::Display for BlkAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "blk units: {} lent to the driver; driver holds {} requests, {} waiting for it, {} \
             answers waiting",
            self.units_lent(),
            self.driver_holds,
            self.driver_queues.0,
            self.driver_queues.1
        )?;
        for (client, waiting, owed, answers) in &self.clients {
            writeln!(
                f,
                "  {client}: {waiting} requests waiting, {owed} owed by the virt, {answers} \
                 answers waiting"
            )?;
        }
        for (region, units) in &self.lent {
            for (unit, places) in units {
                let p: Vec<String> = places.iter().map(ToString::to_string).collect();
                writeln!(f, "  {} unit {unit}: {}", region.label, p.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Account for every unit `layout`'s virt has lent out (see the [module docs](self)).
pub fn account(layout: &BlkLayout) -> BlkAccount {
    let mut a = BlkAccount::default();
    let mut lent: Vec<std::collections::BTreeMap<u64, Vec<Place>>> =
        vec![Default::default(); layout.regions.len()];
    for (client, req, resp) in &layout.clients {
        let owed = req.head().wrapping_sub(resp.tail());
        for (ring, n) in [(req, req.live()), (resp, resp.live()), (req, owed)] {
            if n > ring.capacity {
                a.problems.push(Problem::Indices {
                    ring: ring.name.clone(),
                    detail: format!("{n} entries beyond its {} slots", ring.capacity),
                });
            }
        }
        a.clients
            .push((client.clone(), req.live(), owed, resp.live()));
    }
    if let Some((req, resp, driver)) = &layout.driver {
        let holds = req.head().wrapping_sub(resp.tail());
        a.driver_holds = holds;
        a.driver_queues = (req.live(), resp.live());
        let mut lend = |index: u32, place: Place, a: &mut BlkAccount| {
            let Some((code, io, count)) = req.request(index) else {
                return;
            };
            if code > 1 {
                return; // FLUSH and BARRIER carry no buffer.
            }
            let found = layout.regions.iter().position(|r| {
                io.checked_sub(r.io_addr)
                    .is_some_and(|off| off % UNIT == 0 && off + u64::from(count) * UNIT <= r.size)
            });
            match found {
                Some(k) => {
                    let first = (io - layout.regions[k].io_addr) / UNIT;
                    for u in first..first + u64::from(count) {
                        lent[k].entry(u).or_default().push(place.clone());
                    }
                }
                None => a.problems.push(Problem::Stray {
                    place,
                    io_or_offset: io,
                }),
            }
        };
        if req.live() <= req.capacity {
            for k in 0..req.live() {
                lend(
                    req.head().wrapping_add(k),
                    Place::Queue(req.name.clone()),
                    &mut a,
                );
            }
        } else {
            a.problems.push(Problem::Indices {
                ring: req.name.clone(),
                detail: format!("tail - head beyond its {} slots", req.capacity),
            });
        }
        if u64::from(holds) + u64::from(req.live()) <= u64::from(req.capacity) {
            for k in 0..holds {
                lend(
                    req.head().wrapping_sub(holds).wrapping_add(k),
                    Place::Held(driver.clone()),
                    &mut a,
                );
            }
        } else {
            a.problems.push(Problem::Indices {
                ring: req.name.clone(),
                detail: format!("{driver} would hold {holds} requests, more than the ring keeps"),
            });
        }
    }
    for (region, units) in layout.regions.iter().zip(lent) {
        for (unit, places) in &units {
            if places.len() > 1 {
                a.problems.push(Problem::Twice {
                    pool: region.label.clone(),
                    index: *unit,
                    places: places.clone(),
                });
            }
        }
        if !units.is_empty() {
            a.lent.push((region.clone(), units.into_iter().collect()));
        }
    }
    a
}

impl BlkLayout {
    /// The block subsystem of the build in `out`, with the queue contents of `snap` (empty when
    /// the system has no blk virt).
    pub fn from_build(
        out: &Path,
        asm: &Assembly,
        sys: &System,
        snap: &Snapshot,
    ) -> Result<Self, Error> {
        let m = Mapper { sys, snap };
        let mut layout = Self::default();
        let Some((virt, cfg)) = blob::<BlkVirtConfig>(out, asm, ".blk_virt_config")?
            .into_iter()
            .next()
        else {
            return Ok(layout);
        };
        let rings = |conn: &BlkConnectionResource| -> Result<(BlkRing, BlkRing), Error> {
            let cap = u32::from(conn.num_buffers);
            let req = m.ring(&virt, &conn.req_queue, 0)?;
            let resp = m.ring(&virt, &conn.resp_queue, 0)?;
            Ok((
                BlkRing {
                    name: req.name,
                    bytes: req.bytes,
                    capacity: cap,
                    header: 16,
                    entry: 32,
                },
                BlkRing {
                    name: resp.name,
                    bytes: resp.bytes,
                    capacity: cap,
                    header: 8,
                    entry: 12,
                },
            ))
        };
        let (req, resp) = rings(&cfg.driver.conn)?;
        let driver = m.peer(&req.name, &virt);
        layout.driver = Some((req, resp, driver));
        layout.regions.push(DataRegion {
            label: format!("{virt} (bounce)"),
            io_addr: cfg.driver.data.io_addr,
            size: cfg.driver.data.region.size,
        });
        for c in cfg.clients() {
            let (req, resp) = rings(&c.conn)?;
            let client = m.peer(&req.name, &virt);
            layout.regions.push(DataRegion {
                label: client.clone(),
                io_addr: c.data.io_addr,
                size: c.data.region.size,
            });
            layout.clients.push((client, req, resp));
        }
        Ok(layout)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const IO: u64 = 0x4000_0000;

    /// A request ring of 8 with `reqs` (code, io, count) from raw index `from`, and indices.
    fn req_ring(tail: u32, head: u32, from: u32, reqs: &[(u32, u64, u16)]) -> BlkRing {
        let mut bytes = vec![0u8; 16 + 8 * 32];
        bytes[0..4].copy_from_slice(&head.to_le_bytes());
        bytes[4..8].copy_from_slice(&tail.to_le_bytes());
        for (k, (code, io, count)) in reqs.iter().enumerate() {
            let at = 16 + ((from as usize + k) % 8) * 32;
            bytes[at..at + 4].copy_from_slice(&code.to_le_bytes());
            bytes[at + 8..at + 16].copy_from_slice(&io.to_le_bytes());
            bytes[at + 24..at + 26].copy_from_slice(&count.to_le_bytes());
        }
        BlkRing {
            name: "drv/req".into(),
            bytes,
            capacity: 8,
            header: 16,
            entry: 32,
        }
    }

    fn resp_ring(name: &str, tail: u32, head: u32) -> BlkRing {
        let mut bytes = vec![0u8; 8 + 8 * 12];
        bytes[0..4].copy_from_slice(&head.to_le_bytes());
        bytes[4..8].copy_from_slice(&tail.to_le_bytes());
        BlkRing {
            name: name.into(),
            bytes,
            capacity: 8,
            header: 8,
            entry: 12,
        }
    }

    fn layout(driver_req: BlkRing, driver_resp_tail: u32) -> BlkLayout {
        BlkLayout {
            driver: Some((
                driver_req,
                resp_ring("drv/resp", driver_resp_tail, driver_resp_tail),
                "blk_driver".into(),
            )),
            clients: vec![(
                "fatfs".into(),
                req_ring(5, 5, 0, &[]),
                resp_ring("cli/resp", 5, 5),
            )],
            regions: vec![DataRegion {
                label: "fatfs".into(),
                io_addr: IO,
                size: 16 * UNIT,
            }],
        }
    }

    #[test]
    fn a_quiescent_system_has_everything_home() {
        let a = account(&layout(req_ring(7, 7, 0, &[]), 7));
        assert!(a.all_home(), "{a}");
        assert!(a.to_string().contains("blk units: 0 lent"), "{a}");
    }

    #[test]
    fn units_lent_are_placed_and_a_unit_lent_twice_is_caught() {
        // One WRITE of units 2..4 held by the driver, one READ of unit 3 waiting for it, and
        // a FLUSH (no buffer).
        let reqs = [(1, IO + 2 * UNIT, 2), (2, 0, 0), (0, IO + 3 * UNIT, 1)];
        let a = account(&layout(req_ring(3, 2, 0, &reqs), 0));
        assert!(!a.all_home());
        assert_eq!(a.driver_holds, 2);
        assert_eq!(a.units_lent(), 2, "{a}");
        assert!(
            a.problems
                .iter()
                .any(|p| matches!(p, Problem::Twice { index: 3, places, .. } if places.len() == 2)),
            "{a:?}"
        );
        // An address outside every region is stray.
        let a = account(&layout(req_ring(1, 1, 0, &[(0, IO + 64 * UNIT, 1)]), 0));
        assert!(
            a.problems
                .iter()
                .any(|p| matches!(p, Problem::Stray { .. })),
            "{a:?}"
        );
    }

    #[test]
    fn a_request_owed_by_the_virt_is_not_home() {
        let mut l = layout(req_ring(7, 7, 0, &[]), 7);
        // The virt took 6 of the client's requests and answered 5.
        l.clients[0].1 = req_ring(6, 6, 0, &[]);
        let a = account(&l);
        assert!(!a.all_home());
        assert_eq!(a.clients[0], ("fatfs".into(), 0, 1, 0));
        assert!(a.to_string().contains("1 owed by the virt"), "{a}");
    }
}
