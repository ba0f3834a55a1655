// SPDX-License-Identifier: BSD-2-Clause
//! The PD manifest: how a PD process learns its world from the launcher.
//!
//! The launcher writes one manifest per PD into a memfd, leaves that descriptor open across `exec`
//! and names it in the environment variable [`MANIFEST_ENV`] (a decimal fd number). Every other
//! descriptor the manifest names is inherited the same way, under the same number. The PD reads the
//! manifest from offset 0 with `pread` (so a restart can read it again).
//!
//! The format is text, one record per line, fields separated by one space; numbers are decimal,
//! addresses and sizes hexadecimal with `0x`. Names come last on their line and may hold spaces.
//!
//! ```text
//! lions-host-manifest 2
//! pd <index> <name>
//! board <fd> <num_pds>
//! stats <fd>
//! map <fd> <vaddr> <size> <perms> <region name>       perms: some of "rwx", or "-"
//! channel <id> <peer index> <peer id> <page fd> <end> <in fd> <out fd> <flags>
//!                                    flags: some of "n" (may notify), "m" (the peer may notify),
//!                                    "p" (may PPC the peer), "c" (the peer may PPC this PD), or "-"
//! irq <id> <irq number>
//! end
//! ```
//!
//! `board` is the read-only [board table](super::control::BoardTable) memfd, `stats` this PD's
//! [stats page](super::control::StatsPage), each `map` a region memfd to map at `vaddr` before
//! `init` runs. A `channel` names the channel's [page](super::control::ChannelPage) memfd, which
//! end of it this PD is (0 or 1), the read end of the inbound half's wake-up pipe (the peer
//! writes it, this PD waits on it) and the write end of the outbound half's. These are the only kernel objects of the board a PD
//! gets. The final `end` guards against truncation.

use std::fmt::Write as _;
use std::os::fd::RawFd;

/// Environment variable holding the manifest's descriptor number.
pub const MANIFEST_ENV: &str = "LIONS_HOST_MANIFEST";

/// The environment variable in which the launcher tells a PD how many times it was restarted
/// (absent or `0` at the first start); read by [`crate::incarnation`].
pub const INCARNATION_ENV: &str = "LIONS_HOST_INCARNATION";

/// First line of a manifest.
pub const MANIFEST_HEADER: &str = "lions-host-manifest 2";

/// A memory region to map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestMap {
    /// Region memfd.
    pub fd: RawFd,
    /// Virtual address.
    pub vaddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
    /// Region name (for error messages).
    pub region: String,
}

/// One of this PD's channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestChannel {
    /// This PD's id for the channel.
    pub id: u8,
    /// The peer's PD number (its word in the board table).
    pub peer: u32,
    /// The peer's id for the channel.
    pub peer_id: u8,
    /// The channel page's memfd.
    pub page_fd: RawFd,
    /// Which end of the page this PD is (0 or 1): its outbound half.
    pub end: u8,
    /// Read end of the inbound half's wake-up pipe (the peer writes, this PD waits).
    pub in_fd: RawFd,
    /// Write end of the outbound half's wake-up pipe (this PD writes, the peer waits).
    pub out_fd: RawFd,
    /// This PD may notify the peer.
    pub notify: bool,
    /// The peer may notify this PD.
    pub peer_notify: bool,
    /// This PD may PPC the peer.
    pub pp: bool,
    /// The peer may PPC this PD.
    pub peer_pp: bool,
}

/// An IRQ channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestIrq {
    /// Channel id.
    pub id: u8,
    /// The SDF IRQ number (informational on the host).
    pub irq: u64,
}

/// Everything a PD process needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// PD name.
    pub name: String,
    /// PD number (its word in the board table).
    pub index: u32,
    /// Board table memfd (sealed, read-only).
    pub board_fd: RawFd,
    /// Number of PDs.
    pub num_pds: u32,
    /// This PD's stats page memfd.
    pub stats_fd: RawFd,
    /// Regions to map.
    pub maps: Vec<ManifestMap>,
    /// Channels to other PDs.
    pub channels: Vec<ManifestChannel>,
    /// IRQ channels.
    pub irqs: Vec<ManifestIrq>,
}

impl Manifest {
    /// The manifest as text. Names must not contain a line break (the launcher checks).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let flag = |on: bool, c: char| if on { Some(c) } else { None };
        let flags = |v: &[Option<char>]| {
            let f: String = v.iter().flatten().collect();
            if f.is_empty() { "-".to_owned() } else { f }
        };
        // Writing to a String cannot fail.
        let _ = writeln!(s, "{MANIFEST_HEADER}");
        let _ = writeln!(s, "pd {} {}", self.index, self.name);
        let _ = writeln!(s, "board {} {}", self.board_fd, self.num_pds);
        let _ = writeln!(s, "stats {}", self.stats_fd);
        for m in &self.maps {
            let p = flags(&[flag(m.read, 'r'), flag(m.write, 'w'), flag(m.execute, 'x')]);
            let _ = writeln!(
                s,
                "map {} {:#x} {:#x} {p} {}",
                m.fd, m.vaddr, m.size, m.region
            );
        }
        for c in &self.channels {
            let f = flags(&[
                flag(c.notify, 'n'),
                flag(c.peer_notify, 'm'),
                flag(c.pp, 'p'),
                flag(c.peer_pp, 'c'),
            ]);
            let _ = writeln!(
                s,
                "channel {} {} {} {} {} {} {} {f}",
                c.id, c.peer, c.peer_id, c.page_fd, c.end, c.in_fd, c.out_fd
            );
        }
        for i in &self.irqs {
            let _ = writeln!(s, "irq {} {}", i.id, i.irq);
        }
        s.push_str("end\n");
        s
    }

    /// Parse a manifest; the error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l == MANIFEST_HEADER => {}
            _ => return Err(format!("manifest: first line is not \"{MANIFEST_HEADER}\"")),
        }
        let mut m = Self::default();
        let (mut have_pd, mut have_board, mut have_stats) = (false, false, false);
        for (n, line) in lines {
            let bad = |what: &str| format!("manifest line {}: {what}: {line:?}", n + 1);
            let (kw, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kw {
                "pd" => {
                    let (i, name) = rest
                        .split_once(' ')
                        .ok_or_else(|| bad("pd needs a number and a name"))?;
                    m.index = num(i).ok_or_else(|| bad("bad PD number"))?;
                    m.name = name.to_owned();
                    have_pd = true;
                }
                "board" => {
                    let f: Vec<&str> = rest.split(' ').collect();
                    let [fd, n] = f[..] else {
                        return Err(bad("board needs fd and PD count"));
                    };
                    m.board_fd = num(fd).ok_or_else(|| bad("bad fd"))?;
                    m.num_pds = num(n).ok_or_else(|| bad("bad PD count"))?;
                    have_board = true;
                }
                "stats" => {
                    m.stats_fd = num(rest).ok_or_else(|| bad("bad fd"))?;
                    have_stats = true;
                }
                "map" => m.maps.push(ManifestMap::parse(rest, &bad)?),
                "channel" => m.channels.push(ManifestChannel::parse(rest, &bad)?),
                "irq" => {
                    let (id, irq) = rest
                        .split_once(' ')
                        .ok_or_else(|| bad("irq needs id and number"))?;
                    m.irqs.push(ManifestIrq {
                        id: num(id).ok_or_else(|| bad("bad id"))?,
                        irq: num(irq).ok_or_else(|| bad("bad irq"))?,
                    });
                }
                "end" => {
                    if !(have_pd && have_board && have_stats) {
                        return Err(bad("pd, board or stats missing"));
                    }
                    return Ok(m);
                }
                _ => return Err(bad("unknown record")),
            }
        }
        Err("manifest: truncated (no \"end\" line)".into())
    }
}

impl ManifestMap {
    /// A `map` record's fields (`bad` words the error for the line).
    fn parse(rest: &str, bad: &dyn Fn(&str) -> String) -> Result<Self, String> {
        let mut f = rest.splitn(5, ' ');
        let mut next = || {
            f.next()
                .ok_or_else(|| bad("map needs fd, vaddr, size, perms, region"))
        };
        let fd = num(next()?).ok_or_else(|| bad("bad fd"))?;
        let vaddr = num(next()?).ok_or_else(|| bad("bad vaddr"))?;
        let size = num(next()?).ok_or_else(|| bad("bad size"))?;
        let perms = next()?;
        let region = next()?.to_owned();
        if !perms.chars().all(|c| "rwx-".contains(c)) {
            return Err(bad("bad perms"));
        }
        Ok(Self {
            fd,
            vaddr,
            size,
            read: perms.contains('r'),
            write: perms.contains('w'),
            execute: perms.contains('x'),
            region,
        })
    }
}

impl ManifestChannel {
    /// A `channel` record's fields (`bad` words the error for the line).
    fn parse(rest: &str, bad: &dyn Fn(&str) -> String) -> Result<Self, String> {
        let f: Vec<&str> = rest.split(' ').collect();
        let [id, peer, peer_id, page, end, in_fd, out_fd, flags] = f[..] else {
            return Err(bad(
                "channel needs id, peer, peer id, page fd, end, in fd, out fd, flags",
            ));
        };
        if !flags.chars().all(|c| "nmpc-".contains(c)) {
            return Err(bad("bad channel flags"));
        }
        Ok(Self {
            id: num(id).ok_or_else(|| bad("bad id"))?,
            peer: num(peer).ok_or_else(|| bad("bad peer"))?,
            peer_id: num(peer_id).ok_or_else(|| bad("bad peer id"))?,
            page_fd: num(page).ok_or_else(|| bad("bad fd"))?,
            end: num(end)
                .filter(|&e: &u8| e < 2)
                .ok_or_else(|| bad("bad end"))?,
            in_fd: num(in_fd).ok_or_else(|| bad("bad fd"))?,
            out_fd: num(out_fd).ok_or_else(|| bad("bad fd"))?,
            notify: flags.contains('n'),
            peer_notify: flags.contains('m'),
            pp: flags.contains('p'),
            peer_pp: flags.contains('c'),
        })
    }
}

/// A decimal or `0x` hexadecimal number.
fn num<T: TryFrom<u64>>(s: &str) -> Option<T> {
    let v = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => s.parse::<u64>().ok()?,
    };
    T::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            name: "serial virt tx".into(),
            index: 2,
            board_fd: 5,
            num_pds: 4,
            stats_fd: 9,
            maps: vec![ManifestMap {
                fd: 7,
                vaddr: 0x2000_0000,
                size: 0x1000,
                read: true,
                write: false,
                execute: false,
                region: "tx data".into(),
            }],
            channels: vec![ManifestChannel {
                id: 1,
                peer: 0,
                peer_id: 61,
                page_fd: 8,
                end: 1,
                in_fd: 10,
                out_fd: 11,
                notify: true,
                peer_notify: false,
                pp: false,
                peer_pp: true,
            }],
            irqs: vec![ManifestIrq { id: 3, irq: 33 }],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let text = m.to_text();
        assert!(
            text.contains("map 7 0x20000000 0x1000 r tx data\n"),
            "{text}"
        );
        assert!(text.contains("channel 1 0 61 8 1 10 11 nc\n"), "{text}");
        assert_eq!(Manifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn refusals_name_the_line() {
        let text = sample().to_text();
        assert!(
            Manifest::parse(text.trim_end_matches("end\n"))
                .unwrap_err()
                .contains("truncated")
        );
        let bad = text.replace("stats 9", "stats nine");
        assert!(
            Manifest::parse(&bad)
                .unwrap_err()
                .starts_with("manifest line 4: bad fd")
        );
        assert!(Manifest::parse("hello").is_err());
        let bad = text.replace("channel 1 0 61 8 1 10 11 nc", "channel 1 0 61 8 1 10 11 q");
        assert!(Manifest::parse(&bad).unwrap_err().contains("flags"));
        let bad = text.replace("channel 1 0 61 8 1 10 11 nc", "channel 1 0 61 8 2 10 11 nc");
        assert!(Manifest::parse(&bad).unwrap_err().contains("bad end"));
        let bad = text.replace("channel 1 0 61 8 1 10 11 nc", "channel 1 0 61 8 nc");
        assert!(Manifest::parse(&bad).unwrap_err().contains("flags"));
    }
}
