// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask account <example>`: every DMA buffer of a running host-board system, found in
//! shared memory and accounted for (the network's here, the block units the blk virt lent out
//! in [`blk`]).
//!
//! ## Protocol
//!
//! 1. xtask asks the launcher (its control FIFO) for `snapshot <dir>`: the launcher stops every
//!    PD (SIGSTOP), copies every memory region into `<dir>` (`lions_host::SNAPSHOT_INDEX` lists
//!    them) and continues the PDs. The copy is consistent: no PD runs while it is taken.
//! 2. [`NetLayout::from_build`] reads which queue regions and data regions make up the network
//!    subsystem from the system's own description: the `.system` file (which PD maps which
//!    region where) and the config blobs of the Rx virt, the Tx virt and the copiers (which of
//!    their mappings are which queues, their capacities, the data regions' IO addresses).
//! 3. [`account`] places every buffer of every pool (the Rx DMA region; each client's Rx and Tx
//!    data regions; 2048 bytes a buffer) where the snapshot shows it:
//!    - **in a queue**: a descriptor between the consumer's `head` and the producer's `tail` of
//!      an sDDF `net_queue_t` (the raw `u16` indices, slot `index % capacity`);
//!    - **held by a component** that has taken it from one queue of a pair and not yet given it
//!      back on the other. The shared indices say how many: for a pair where buffers go out to
//!      component Y on ring A and come back on ring B, Y holds `A.head - B.tail` (wrapping). Y's
//!      buffers are the last ones it took from A (slots `A.head - n .. A.head`, which the
//!      producer cannot have overwritten while the pool fits the ring), exactly so for a
//!      component that gives buffers back in the order it takes them, as every driver, copier
//!      and client here does. The holders counted are the driver (both directions), the
//!      copiers and the clients; a virtualiser only passes buffers on, so one it still holds
//!      shows as missing.
//!    - **its own word**: indices cannot tell a buffer a component still holds from one it
//!      took and dropped. A driver that keeps buffers in a private ring (the host board's
//!      user-mode network and TAP drivers) therefore also says how many it holds, through
//!      `lions_os::host::report_held` (slot `held::RX` for posted receive buffers, `held::TX`
//!      for frames not yet given back), which the launcher's snapshot records. The account
//!      checks that word against the indices ([`Problem::Claim`] when they differ) and places
//!      only that many (the last taken) with it, so a dropped buffer shows as lost.
//! 4. Each buffer must be in exactly one place: none **lost** (in no queue, held by nobody),
//!    none **twice** (in two places at once), and no descriptor that names no buffer of the
//!    pool (**stray**). [`Account::problems`] lists every violation; `account` exits non-zero
//!    when there is one. Take it when the system is quiescent (no traffic): a broadcast frame
//!    the Rx virt is fanning out, or a frame between two components, is legitimately in flight.

pub mod blk;

use crate::Error;
use crate::assembly::Assembly;
use lions_net::{NetConnectionResource, NetCopyConfig, NetVirtRxConfig, NetVirtTxConfig};
use lions_os::RegionResource;
use lions_sdf::System;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zerocopy::FromBytes;

/// Bytes of one net buffer (sDDF's `NET_BUFFER_SIZE`).
const BUF: u64 = 2048;
/// Bytes of a `net_queue_t` header: `tail` u16, `head` u16, `consumer_signalled` u32.
const HEADER: usize = 8;
/// Bytes of a `net_buff_desc_t`.
const DESC: usize = 16;

/// One sDDF net queue as the snapshot holds it.
#[derive(Debug, Clone)]
pub struct Ring {
    /// The memory region's name.
    pub name: String,
    /// The region's bytes.
    pub bytes: Vec<u8>,
    /// Entries the ring holds (a power of two; the connection's `num_buffers`).
    pub capacity: u16,
}

impl Ring {
    fn u16_at(&self, at: usize) -> u16 {
        self.bytes
            .get(at..at + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// The producer's index.
    pub fn tail(&self) -> u16 {
        self.u16_at(0)
    }

    /// The consumer's index.
    pub fn head(&self) -> u16 {
        self.u16_at(2)
    }

    /// The descriptor in the slot of raw index `index`: (`io_or_offset`, `oid`).
    fn entry(&self, index: u16) -> Option<(u64, u8)> {
        let slot = usize::from(index) % usize::from(self.capacity.max(1));
        let at = HEADER + slot * DESC;
        let b = self.bytes.get(at..at + DESC)?;
        let io = u64::from_le_bytes(b[..8].try_into().ok()?);
        Some((io, b[10] & 0x3f))
    }

    /// Entries published and not yet consumed: `tail - head`.
    pub fn live(&self) -> u16 {
        self.tail().wrapping_sub(self.head())
    }

    /// The descriptors between head and tail, or `None` when the indices are impossible.
    fn live_entries(&self) -> Option<Vec<(u64, u8)>> {
        let n = self.live();
        if n > self.capacity {
            return None;
        }
        (0..n)
            .map(|k| self.entry(self.head().wrapping_add(k)))
            .collect()
    }

    /// The last `n` descriptors consumed (before head), or `None` when they may have been
    /// overwritten already (`n` beyond the slots the producer has not reused).
    fn consumed(&self, n: u16) -> Option<Vec<(u64, u8)>> {
        if u32::from(n) + u32::from(self.live()) > u32::from(self.capacity) {
            return None;
        }
        (0..n)
            .map(|k| self.entry(self.head().wrapping_sub(n).wrapping_add(k)))
            .collect()
    }
}

/// A pool of buffers: one data region, `count` buffers of 2048 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// What it is (`Rx DMA`, `client0 Tx`, ...).
    pub label: String,
    /// The data region's name.
    pub region: String,
    /// Its IO address (where descriptors carry IO addresses).
    pub io_addr: u64,
    /// Buffers in it.
    pub count: u64,
}

/// How a ring's descriptors name buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// Offsets into a pool, chosen by the descriptor's `oid` among these pools (index 0 when
    /// there is one).
    Offset(Vec<usize>),
    /// IO addresses: the pool whose IO range holds it.
    Io,
}

/// A queue pair between two components, buffers going out to `holder` on `out` and coming back
/// on `back`.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Ring on which buffers reach `holder`.
    pub out: Ring,
    /// Ring on which `holder` gives them back.
    pub back: Ring,
    /// How both rings name buffers.
    pub names: Names,
    /// The component that holds what it took from `out` and has not given back on `back`
    /// (`None`: a virtualiser, which holds nothing of its own when quiescent).
    pub holder: Option<String>,
    /// Whether the entries of both rings are placed here (false for the second look at the same
    /// two rings, from the other side: there only the holdings count).
    pub list: bool,
    /// Buffers `holder` owns and first gave out on `back` without taking them from `out` (a
    /// client priming its Rx free queue with its whole data region): its holdings are then
    /// `out.head - back.tail + primed`.
    pub primed: u16,
    /// What `holder` itself says it holds (its `lions_os::host::report_held` slot, from the
    /// snapshot), when it reports: checked against the indices, and only that many (the last
    /// taken) are placed with it.
    pub claim: Option<u64>,
}

/// The network subsystem of a system: its pools and queue pairs.
#[derive(Debug, Clone, Default)]
pub struct NetLayout {
    /// Every pool.
    pub pools: Vec<Pool>,
    /// Every queue pair.
    pub pairs: Vec<Pair>,
}

/// Where a buffer was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// In a queue (its region's name).
    Queue(String),
    /// Held by a component (its name).
    Held(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue(q) => write!(f, "in {q}"),
            Self::Held(pd) => write!(f, "held by {pd}"),
        }
    }
}

/// What is wrong with an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Buffer `index` of pool `pool` is nowhere.
    Lost {
        /// The pool's label.
        pool: String,
        /// The buffer.
        index: u64,
    },
    /// Buffer `index` of pool `pool` is in more than one place.
    Twice {
        /// The pool's label.
        pool: String,
        /// The buffer.
        index: u64,
        /// Where.
        places: Vec<Place>,
    },
    /// A descriptor that names no buffer of any pool it could belong to.
    Stray {
        /// Where it was.
        place: Place,
        /// Its `io_or_offset`.
        io_or_offset: u64,
    },
    /// A component says it holds another number of buffers than the queue indices show it took
    /// and did not give back (fewer: it dropped some, which are then lost).
    Claim {
        /// The component.
        holder: String,
        /// The ring it takes them from.
        ring: String,
        /// What it says.
        says: u64,
        /// What the indices say.
        indices: u64,
    },
    /// A ring whose indices are impossible (more entries than slots), or holdings that do not
    /// fit the ring (so they cannot be read back from it).
    Indices {
        /// The ring.
        ring: String,
        /// What is impossible.
        detail: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost { pool, index } => {
                write!(
                    f,
                    "{pool} buffer {index} is lost (in no queue, held by nobody)"
                )
            }
            Self::Twice {
                pool,
                index,
                places,
            } => {
                let p: Vec<String> = places.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{pool} buffer {index} is in {} places: {}",
                    places.len(),
                    p.join(", ")
                )
            }
            Self::Stray {
                place,
                io_or_offset,
            } => write!(
                f,
                "a descriptor {place} names no buffer ({io_or_offset:#x})"
            ),
            Self::Claim {
                holder,
                ring,
                says,
                indices,
            } => write!(
                f,
                "{holder} says it holds {says} buffers taken from {ring}; its queue indices say \
                 {indices}"
            ),
            Self::Indices { ring, detail } => write!(f, "{ring}: {detail}"),
        }
    }
}

/// The account: per pool, every buffer's places.
#[derive(Debug, Clone)]
pub struct Account {
    /// Pools in layout order, each with its buffers' places.
    pub pools: Vec<(Pool, Vec<Vec<Place>>)>,
    /// Violations not tied to one buffer (stray descriptors, impossible indices, claims that
    /// disagree with the indices).
    pub other: Vec<Problem>,
    /// Every holder's own word that was checked: (holder, ring taken from, what it says, what
    /// the indices say).
    pub claims: Vec<(String, String, u64, u64)>,
}

impl Account {
    /// Every violation: lost and doubled buffers, then the others.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (pool, places) in &self.pools {
            for (i, p) in places.iter().enumerate() {
                let index = i as u64;
                match p.len() {
                    0 => out.push(Problem::Lost {
                        pool: pool.label.clone(),
                        index,
                    }),
                    1 => {}
                    _ => out.push(Problem::Twice {
                        pool: pool.label.clone(),
                        index,
                        places: p.clone(),
                    }),
                }
            }
        }
        out.extend(self.other.iter().cloned());
        out
    }

    /// Buffers accounted for exactly once, of all buffers.
    pub fn home(&self) -> (u64, u64) {
        let mut home = 0;
        let mut all = 0;
        for (_, places) in &self.pools {
            all += places.len() as u64;
            home += places.iter().filter(|p| p.len() == 1).count() as u64;
        }
        (home, all)
    }

    /// Per pool, how many buffers each place has.
    pub fn by_place(&self) -> Vec<(&Pool, BTreeMap<&Place, u64>)> {
        self.pools
            .iter()
            .map(|(pool, places)| {
                let mut m = BTreeMap::new();
                for p in places.iter().flatten() {
                    *m.entry(p).or_insert(0) += 1;
                }
                (pool, m)
            })
            .collect()
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (home, all) = self.home();
        if self.pools.is_empty() && self.other.is_empty() {
            return writeln!(f, "net buffers: none (no network subsystem)");
        }
        writeln!(f, "net buffers: {home} of {all} accounted for exactly once")?;
        for (pool, places) in self.by_place() {
            writeln!(
                f,
                "  {} ({}, {} buffers):",
                pool.label, pool.region, pool.count
            )?;
            for (place, n) in places {
                writeln!(f, "    {n:5} {place}")?;
            }
        }
        for (holder, ring, says, indices) in &self.claims {
            let verdict = if says == indices {
                "agrees with the queue indices"
            } else {
                "DISAGREES with the queue indices"
            };
            writeln!(
                f,
                "  {holder} says it holds {says} taken from {ring}: {verdict} ({indices})"
            )?;
        }
        let problems = self.problems();
        if problems.is_empty() {
            writeln!(f, "no buffer lost, none in two places, no stray descriptor")
        } else {
            writeln!(f, "{} problems:", problems.len())?;
            for p in problems.iter().take(50) {
                writeln!(f, "  {p}")?;
            }
            if problems.len() > 50 {
                writeln!(f, "  ... and {} more", problems.len() - 50)?;
            }
            Ok(())
        }
    }
}

/// Place every buffer of `layout`'s pools (see the [module docs](self)).
pub fn account(layout: &NetLayout) -> Account {
    let mut places: Vec<Vec<Vec<Place>>> = layout
        .pools
        .iter()
        .map(|p| vec![Vec::new(); usize::try_from(p.count).unwrap_or(0)])
        .collect();
    let mut other = Vec::new();
    let mut claims = Vec::new();
    let mut put = |names: &Names, (io, oid): (u64, u8), place: Place, other: &mut Vec<Problem>| {
        let found = match names {
            Names::Io => layout.pools.iter().enumerate().find_map(|(k, p)| {
                let off = io.checked_sub(p.io_addr)?;
                (off < p.count * BUF).then_some((k, off))
            }),
            Names::Offset(pools) => pools
                .get(if pools.len() == 1 {
                    0
                } else {
                    usize::from(oid)
                })
                .map(|&k| (k, io)),
        };
        match found {
            Some((k, off)) if off % BUF == 0 && off / BUF < layout.pools[k].count => {
                places[k][usize::try_from(off / BUF).unwrap_or(usize::MAX)].push(place);
            }
            _ => other.push(Problem::Stray {
                place,
                io_or_offset: io,
            }),
        }
    };
    for pair in &layout.pairs {
        let rings = if pair.list {
            [Some(&pair.out), Some(&pair.back)]
        } else {
            [None, None]
        };
        for ring in rings.into_iter().flatten() {
            match ring.live_entries() {
                Some(es) => {
                    for e in es {
                        put(&pair.names, e, Place::Queue(ring.name.clone()), &mut other);
                    }
                }
                None => other.push(Problem::Indices {
                    ring: ring.name.clone(),
                    detail: format!(
                        "tail {} - head {} is more than its {} slots",
                        ring.tail(),
                        ring.head(),
                        ring.capacity
                    ),
                }),
            }
        }
        let Some(holder) = &pair.holder else { continue };
        let held = pair
            .out
            .head()
            .wrapping_sub(pair.back.tail())
            .wrapping_add(pair.primed);
        if let Some(says) = pair.claim {
            claims.push((holder.clone(), pair.out.name.clone(), says, u64::from(held)));
        }
        let held = match pair.claim {
            Some(says) if says != u64::from(held) => {
                other.push(Problem::Claim {
                    holder: holder.clone(),
                    ring: pair.out.name.clone(),
                    says,
                    indices: u64::from(held),
                });
                // Only what it says it has is with it (the last it took); the rest is lost.
                u16::try_from(says).unwrap_or(u16::MAX).min(held)
            }
            _ => held,
        };
        match pair.out.consumed(held) {
            Some(es) => {
                for e in es {
                    put(&pair.names, e, Place::Held(holder.clone()), &mut other);
                }
            }
            None => other.push(Problem::Indices {
                ring: pair.out.name.clone(),
                detail: format!(
                    "{holder} would hold {held} (head {} - {} tail {}), more than the ring \
                     keeps",
                    pair.out.head(),
                    pair.back.name,
                    pair.back.tail()
                ),
            }),
        }
    }
    Account {
        pools: layout.pools.iter().cloned().zip(places).collect(),
        other,
        claims,
    }
}

/// A snapshot as `lions-host` writes it: region name to bytes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Whether every PD was stopped while it was taken.
    pub consistent: bool,
    /// Each region's bytes.
    pub regions: BTreeMap<String, Vec<u8>>,
    /// What PDs report holding privately: per PD, per `lions_os::host::control::held` slot,
    /// the count where reported.
    pub held: BTreeMap<String, [Option<u64>; 4]>,
}

impl Snapshot {
    /// Read the snapshot directory `dir` (its `index` file and region files).
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let index_path = dir.join("index");
        let index = std::fs::read_to_string(&index_path)
            .map_err(|e| Error::io("reading", &index_path, e))?;
        let mut s = Self::default();
        for line in index.lines() {
            if let Some(rest) = line.strip_prefix("# lions-host snapshot: ") {
                s.consistent = rest.contains("consistent=true");
                continue;
            }
            if let Some(rest) = line.strip_prefix("held ") {
                let w: Vec<&str> = rest.split_whitespace().collect();
                let bad = || Error::invalid(index_path.display().to_string(), line);
                let [pd, mask, counts @ ..] = w.as_slice() else {
                    return Err(bad());
                };
                let mask =
                    u64::from_str_radix(mask.trim_start_matches("0x"), 16).map_err(|_| bad())?;
                let mut slots = [None; 4];
                for (i, (slot, n)) in slots.iter_mut().zip(counts).enumerate() {
                    if mask & (1 << i) != 0 {
                        *slot = Some(n.parse().map_err(|_| bad())?);
                    }
                }
                s.held.insert((*pd).to_owned(), slots);
                continue;
            }
            let mut w = line.splitn(3, ' ');
            let (Some(file), Some(_size), Some(name)) = (w.next(), w.next(), w.next()) else {
                return Err(Error::invalid(index_path.display().to_string(), line));
            };
            let path = dir.join(file);
            let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
            s.regions.insert(name.to_owned(), bytes);
        }
        Ok(s)
    }
}

/// The system description and the snapshot: resolves addresses in a PD's config to regions.
struct Mapper<'a> {
    sys: &'a System,
    snap: &'a Snapshot,
}

impl Mapper<'_> {
    /// The region `pd` maps at `r.vaddr` (the whole of it).
    fn region(&self, pd: &str, r: &RegionResource) -> Result<String, Error> {
        let p = self
            .sys
            .pd(pd)
            .ok_or_else(|| Error::missing(format!("no PD {pd} in the system description")))?;
        p.maps
            .iter()
            .find(|m| m.vaddr == r.vaddr)
            .map(|m| m.mr.clone())
            .ok_or_else(|| {
                Error::missing(format!(
                    "{pd} maps nothing at {:#x} (its config says it does)",
                    r.vaddr
                ))
            })
    }

    fn ring(&self, pd: &str, r: &RegionResource, capacity: u16) -> Result<Ring, Error> {
        let name = self.region(pd, r)?;
        let bytes = self
            .snap
            .regions
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::missing(format!("region {name} is not in the snapshot")))?;
        Ok(Ring {
            name,
            bytes,
            capacity,
        })
    }

    /// (free, active) rings of `conn` as `pd` maps them.
    fn rings(&self, pd: &str, conn: &NetConnectionResource) -> Result<(Ring, Ring), Error> {
        Ok((
            self.ring(pd, &conn.free_queue, conn.num_buffers)?,
            self.ring(pd, &conn.active_queue, conn.num_buffers)?,
        ))
    }

    /// The other PD mapping region `mr`.
    fn peer(&self, mr: &str, not: &str) -> String {
        self.sys
            .pds
            .iter()
            .find(|p| p.name != not && p.maps.iter().any(|m| m.mr == mr))
            .map_or_else(|| "?".to_owned(), |p| p.name.clone())
    }
}

/// A PD's config blob of `section` from the build folder `out`.
fn blob<T: FromBytes>(
    out: &Path,
    asm: &Assembly,
    section: &str,
) -> Result<Vec<(String, T)>, Error> {
    let mut found = Vec::new();
    for pd in &asm.pds {
        for p in pd.patches.iter().filter(|p| p.section == section) {
            let path = out.join(&p.blob);
            let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
            let cfg = T::read_from_prefix(&bytes)
                .map_err(|_| Error::invalid(path.display().to_string(), "config blob too short"))?
                .0;
            found.push((pd.name.clone(), cfg));
        }
    }
    Ok(found)
}

impl NetLayout {
    /// The network subsystem of the build in `out` (its `assembly.json`, `.system` and blobs),
    /// with the queue contents of `snap`.
    pub fn from_build(out: &Path, snap: &Snapshot) -> Result<Self, Error> {
        let asm = Assembly::load(out)?;
        let system_file = out.join(asm.system.clone().unwrap_or_default());
        let sys = System::load(&system_file)
            .map_err(|e| Error::invalid(system_file.display().to_string(), e))?;
        let m = Mapper { sys: &sys, snap };
        let mut layout = Self::default();
        let rx = blob::<NetVirtRxConfig>(out, &asm, ".net_virt_rx_config")?;
        let Some((vrx, rxc)) = rx.first() else {
            return Ok(layout);
        };
        let dev = m.region(vrx, &rxc.data.region)?;
        layout.pools.push(Pool {
            label: "Rx DMA".into(),
            region: dev.clone(),
            io_addr: rxc.data.io_addr,
            count: rxc.data.region.size / BUF,
        });
        let (free, active) = m.rings(vrx, &rxc.driver)?;
        let driver = m.peer(&free.name, vrx);
        let says = |pd: &str, slot: usize| snap.held.get(pd).and_then(|h| h[slot]);
        layout.pairs.push(Pair {
            out: free,
            back: active,
            names: Names::Io,
            claim: says(&driver, lions_os::host::control::held::RX),
            holder: Some(driver),
            list: true,
            primed: 0,
        });
        for c in rxc.clients() {
            let (free, active) = m.rings(vrx, &c.conn)?;
            let copier = m.peer(&active.name, vrx);
            layout.pairs.push(Pair {
                out: active,
                back: free,
                names: Names::Offset(vec![0]),
                holder: Some(copier),
                list: true,
                primed: 0,
                claim: None,
            });
        }
        for (copier, cc) in blob::<NetCopyConfig>(out, &asm, ".net_copy_config")? {
            let (free, active) = m.rings(&copier, &cc.client)?;
            let client = m.peer(&active.name, &copier);
            let k = layout.pools.len();
            let count = cc.client_data.size / BUF;
            layout.pools.push(Pool {
                label: format!("{client} Rx"),
                region: m.region(&copier, &cc.client_data)?,
                io_addr: 0,
                count,
            });
            layout.pairs.push(Pair {
                out: active.clone(),
                back: free.clone(),
                names: Names::Offset(vec![k]),
                holder: Some(client),
                list: true,
                // The client put its whole region on the free queue first (the indices wrap
                // mod 2^16, so the count does too).
                primed: u16::try_from(count % 0x1_0000).unwrap_or_default(),
                claim: None,
            });
            layout.pairs.push(Pair {
                out: free,
                back: active,
                names: Names::Offset(vec![k]),
                holder: Some(copier),
                list: false,
                primed: 0,
                claim: None,
            });
        }
        for (vtx, tc) in blob::<NetVirtTxConfig>(out, &asm, ".net_virt_tx_config")? {
            for c in tc.clients() {
                let (free, active) = m.rings(&vtx, &c.conn)?;
                let client = m.peer(&active.name, &vtx);
                let mut pools = Vec::new();
                for r in c.regions() {
                    let region = m.region(&vtx, &r.data.region)?;
                    let k = match layout.pools.iter().position(|p| p.region == region) {
                        Some(k) => k,
                        None => {
                            layout.pools.push(Pool {
                                label: format!("{client} Tx"),
                                region,
                                io_addr: r.data.io_addr,
                                count: u64::from(r.num_buffers),
                            });
                            layout.pools.len() - 1
                        }
                    };
                    pools.push(k);
                }
                layout.pairs.push(Pair {
                    out: free,
                    back: active,
                    names: Names::Offset(pools),
                    holder: Some(client),
                    list: true,
                    primed: 0,
                    claim: None,
                });
            }
            let (free, active) = m.rings(&vtx, &tc.driver)?;
            let driver = m.peer(&active.name, &vtx);
            layout.pairs.push(Pair {
                out: active,
                back: free,
                names: Names::Io,
                claim: says(&driver, lions_os::host::control::held::TX),
                holder: Some(driver),
                list: true,
                primed: 0,
            });
        }
        Ok(layout)
    }
}

/// Ask the launcher of the running `out` build for a snapshot (via `fifo`) into a new folder of
/// `out`, and wait for it (5 s at most); its folder.
pub fn request_snapshot(out: &Path, fifo: &Path) -> Result<PathBuf, Error> {
    let started = Instant::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = out.join(format!("snapshot-{}-{nanos}", std::process::id()));
    crate::tasks::send_control(fifo, &format!("snapshot {}\n", dir.display()))?;
    while !dir.join("index").exists() {
        if started.elapsed() > Duration::from_secs(5) {
            return Err(Error::missing(format!(
                "{}: no snapshot within 5 s (see the launcher's messages)",
                dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(dir)
}

/// Account for every net buffer and every blk unit lent out in the snapshot folder `dir` of the
/// `out` build.
pub fn of_snapshot(out: &Path, dir: &Path) -> Result<(Account, blk::BlkAccount), Error> {
    let snap = Snapshot::load(dir)?;
    if !snap.consistent {
        eprintln!(
            "xtask: account: some PD did not stop while the snapshot was taken: it may be torn"
        );
    }
    let layout = NetLayout::from_build(out, &snap)?;
    let asm = Assembly::load(out)?;
    let system_file = out.join(asm.system.clone().unwrap_or_default());
    let sys = System::load(&system_file)
        .map_err(|e| Error::invalid(system_file.display().to_string(), e))?;
    let blk_layout = blk::BlkLayout::from_build(out, &asm, &sys, &snap)?;
    Ok((account(&layout), blk::account(&blk_layout)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A ring of `cap` slots with raw indices `tail`, `head` and `slots` written from index
    /// `from` on.
    fn ring(name: &str, cap: u16, tail: u16, head: u16, from: u16, slots: &[u64]) -> Ring {
        let mut bytes = vec![0u8; HEADER + usize::from(cap) * DESC];
        bytes[0..2].copy_from_slice(&tail.to_le_bytes());
        bytes[2..4].copy_from_slice(&head.to_le_bytes());
        for (k, io) in slots.iter().enumerate() {
            let slot = usize::from(from.wrapping_add(u16::try_from(k).unwrap()) % cap);
            let at = HEADER + slot * DESC;
            bytes[at..at + 8].copy_from_slice(&io.to_le_bytes());
        }
        Ring {
            name: name.into(),
            bytes,
            capacity: cap,
        }
    }

    const IO: u64 = 0xfff0_0000;

    /// An Rx DMA pool of 8 buffers between a driver and a virt (ring of 8): the virt has put
    /// all 8 on the free ring over time (tail 8 + 65530 wraps), the driver took 6 (holds 4
    /// of them, returned 2 on active, which the virt has not taken yet).
    fn rx_layout(free_slots: &[u64]) -> NetLayout {
        let base = 65530u16;
        let free = ring(
            "free",
            8,
            base.wrapping_add(8),
            base.wrapping_add(6),
            base,
            free_slots,
        );
        // The driver returned the first 2 it took (buffers 0 and 1) on active.
        let active = ring(
            "active",
            8,
            base.wrapping_add(2),
            base,
            base,
            &[IO, IO + BUF],
        );
        NetLayout {
            pools: vec![Pool {
                label: "Rx DMA".into(),
                region: "device".into(),
                io_addr: IO,
                count: 8,
            }],
            pairs: vec![Pair {
                out: free,
                back: active,
                names: Names::Io,
                holder: Some("net_driver".into()),
                list: true,
                primed: 0,
                claim: None,
            }],
        }
    }

    fn all(n: u64) -> Vec<u64> {
        (0..n).map(|i| IO + i * BUF).collect()
    }

    #[test]
    fn every_buffer_home_across_an_index_wrap() {
        let a = account(&rx_layout(&all(8)));
        assert_eq!(a.problems(), []);
        assert_eq!(a.home(), (8, 8));
        let places = &a.by_place()[0].1;
        let get = |p: Place| places.get(&p).copied().unwrap_or(0);
        assert_eq!(get(Place::Queue("free".into())), 2, "6 taken of 8");
        assert_eq!(get(Place::Queue("active".into())), 2);
        assert_eq!(get(Place::Held("net_driver".into())), 4, "head 6 - tail 2");
        assert!(a.to_string().contains("8 of 8 accounted"), "{a}");
    }

    #[test]
    fn a_dropped_buffer_is_reported_lost() {
        // The virt took buffer 0 off the active ring (head 1) and dropped it: it gave it
        // neither back to the driver nor to any client.
        let mut l = rx_layout(&all(8));
        l.pairs[0].back = ring("active", 8, 65532, 65531, 65530, &[IO, IO + BUF]);
        let a = account(&l);
        assert_eq!(
            a.problems(),
            [Problem::Lost {
                pool: "Rx DMA".into(),
                index: 0
            }]
        );
        assert_eq!(a.home(), (7, 8));
        assert!(a.to_string().contains("Rx DMA buffer 0 is lost"), "{a}");
        // A driver that writes a wrong descriptor when it gives buffer 1 back: buffer 1 is lost
        // and the descriptor is stray.
        l.pairs[0].back = ring("active", 8, 65532, 65530, 65530, &[IO, IO + 100 * BUF]);
        let p = account(&l).problems();
        assert!(p.contains(&Problem::Lost {
            pool: "Rx DMA".into(),
            index: 1
        }));
        assert!(p.iter().any(
            |x| matches!(x, Problem::Stray { io_or_offset, .. } if *io_or_offset == IO + 100 * BUF)
        ));
    }

    #[test]
    fn a_driver_that_dropped_a_buffer_it_took_is_caught_by_its_own_word() {
        // The driver holds 4 by its indices; by the indices alone all 8 are home.
        let mut l = rx_layout(&all(8));
        l.pairs[0].claim = Some(4);
        let a = account(&l);
        assert_eq!(a.problems(), [], "its word agrees");
        assert!(
            a.to_string()
                .contains("net_driver says it holds 4 taken from free: agrees"),
            "{a}"
        );
        // It says 3: it dropped the oldest it held (buffer 2), which is lost.
        l.pairs[0].claim = Some(3);
        let a = account(&l);
        let p = a.problems();
        assert!(
            p.contains(&Problem::Lost {
                pool: "Rx DMA".into(),
                index: 2
            }),
            "{p:?}"
        );
        assert!(p.contains(&Problem::Claim {
            holder: "net_driver".into(),
            ring: "free".into(),
            says: 3,
            indices: 4
        }));
        assert_eq!(a.home(), (7, 8));
        assert!(
            a.to_string().contains("net_driver says it holds 3 buffers"),
            "{a}"
        );
    }

    #[test]
    fn a_buffer_in_two_places_is_reported() {
        // The virt put buffer 3 on the free ring twice (where buffer 7 should be): 3 is both
        // held by the driver and in the free queue, and 7 is lost.
        let mut slots = all(8);
        slots[7] = IO + 3 * BUF;
        let p = account(&rx_layout(&slots)).problems();
        assert!(p.contains(&Problem::Lost {
            pool: "Rx DMA".into(),
            index: 7
        }));
        assert!(
            p.iter()
                .any(|x| matches!(x, Problem::Twice { index: 3, places, .. } if places.len() == 2)),
            "{p:?}"
        );
    }

    #[test]
    fn a_client_that_primed_its_free_queue_holds_what_it_took_since() {
        // Pool of 4 the client put on its free ring (tail 4); the copier took 3 (head 3) and
        // gave back 3 filled on active (tail 3), of which the client took 2 (head 2).
        let pools = vec![Pool {
            label: "client0 Rx".into(),
            region: "rx".into(),
            io_addr: 0,
            count: 4,
        }];
        let all: Vec<u64> = (0..4).map(|i| i * BUF).collect();
        let free = ring("free", 4, 4, 3, 0, &all);
        let active = ring("active", 4, 3, 2, 0, &all[..3]);
        let pair = |out: &Ring, back: &Ring, holder: &str, list, primed| Pair {
            out: out.clone(),
            back: back.clone(),
            names: Names::Offset(vec![0]),
            holder: Some(holder.into()),
            list,
            primed,
            claim: None,
        };
        let l = NetLayout {
            pools,
            pairs: vec![
                pair(&active, &free, "client0", true, 4),
                pair(&free, &active, "net_copy0", false, 0),
            ],
        };
        let a = account(&l);
        assert_eq!(a.problems(), [], "{a}");
        let places = &a.by_place()[0].1;
        assert_eq!(places.get(&Place::Held("client0".into())), Some(&2));
        assert_eq!(places.get(&Place::Held("net_copy0".into())), None);
        assert_eq!(places.get(&Place::Queue("free".into())), Some(&1));
        assert_eq!(places.get(&Place::Queue("active".into())), Some(&1));
    }

    #[test]
    fn impossible_indices_are_a_problem_not_a_panic() {
        let mut l = rx_layout(&all(8));
        l.pairs[0].out = ring("free", 8, 100, 0, 0, &[]);
        let p = account(&l).problems();
        assert!(
            p.iter()
                .any(|x| matches!(x, Problem::Indices { ring, .. } if ring == "free"))
        );
        // A holder claiming more than the ring keeps.
        let mut l = rx_layout(&all(8));
        l.pairs[0].back = ring("active", 8, 65000, 65000, 0, &[]);
        let p = account(&l).problems();
        assert!(
            p.iter().any(
                |x| matches!(x, Problem::Indices { detail, .. } if detail.contains("net_driver"))
            ),
            "{p:?}"
        );
    }

    #[test]
    fn offsets_pick_the_pool_by_oid_and_strays_are_caught() {
        let pools = vec![
            Pool {
                label: "a".into(),
                region: "a".into(),
                io_addr: 0,
                count: 2,
            },
            Pool {
                label: "b".into(),
                region: "b".into(),
                io_addr: 0,
                count: 2,
            },
        ];
        let mut q = ring("q", 4, 4, 0, 0, &[0, BUF, 0, 3 * BUF]);
        // Entry 2 with oid 1 (pool b, buffer 0); entry 3 is out of range.
        q.bytes[HEADER + 2 * DESC + 10] = 1;
        let l = NetLayout {
            pools,
            pairs: vec![Pair {
                out: q,
                back: ring("r", 4, 0, 0, 0, &[]),
                names: Names::Offset(vec![0, 1]),
                holder: None,
                list: true,
                primed: 0,
                claim: None,
            }],
        };
        let a = account(&l);
        let p = a.problems();
        assert_eq!(a.home(), (3, 4), "{p:?}");
        assert!(p.contains(&Problem::Lost {
            pool: "b".into(),
            index: 1
        }));
        assert!(
            p.iter().any(
                |x| matches!(x, Problem::Stray { io_or_offset, .. } if *io_or_offset == 3 * BUF)
            )
        );
    }
}
