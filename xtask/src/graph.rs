// SPDX-License-Identifier: BSD-2-Clause
//! A system description drawn as SVG, by hand (no dependencies), in the style of the LionsOS
//! paper's figures.
//!
//! - PDs are boxes labelled with their name and priority, one row per priority, highest at the
//!   top; alternate rows are shifted half a column so a channel between rows two apart does not
//!   run through the row between.
//! - A channel is a line between two PDs with each end's channel id next to that end; an arrow
//!   head marks the callee of a protected procedure call (the end without `pp` is the server).
//!   Channels between the same two PDs, or whose straight line would cross another PD, bend.
//! - Memory regions are small rounded boxes in a column on the right, each placed at the height of
//!   the PDs that map it; a dashed connector joins it to every PD that maps it, labelled with the
//!   mapping's perms (`r`, `rw`, ...). A real system has dozens of regions, so by default
//!   ([`Regions::Grouped`]) they are drawn one box per subsystem (the first component of the
//!   region name sdfgen gives, `net/...`, `serial/...`) with one connector per PD that maps any of
//!   them, labelled with how many it maps and their rights; [`Regions::All`] draws every region,
//!   [`Regions::None`] none.
//! - Channel ids sit next to their end; ids that would overlap another id are moved further
//!   along their channel.
//!
//! Each PD is a `<g class="pd">`, each region a `<g class="mr">`, each map a `<g class="map">`
//! and each channel a `<g class="channel">`, with a `<title>` giving the details as a tooltip.

use lions_sdf::{End, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const MARGIN: f64 = 30.0;
const TITLE_H: f64 = 44.0;
const PD_W: f64 = 170.0;
const PD_H: f64 = 52.0;
const COL_GAP: f64 = 80.0;
const ROW_GAP: f64 = 76.0;
const MR_H: f64 = 30.0;
const MR_GAP: f64 = 14.0;
const REGION_COL_GAP: f64 = 170.0;
const LEGEND_H: f64 = 70.0;
/// Rough advance of one character of the 12 px monospace font used in region boxes.
const MONO_CHAR_W: f64 = 7.3;

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn cx(self) -> f64 {
        self.x + self.w / 2.0
    }
    fn cy(self) -> f64 {
        self.y + self.h / 2.0
    }
    fn contains(self, x: f64, y: f64, pad: f64) -> bool {
        x > self.x - pad
            && x < self.x + self.w + pad
            && y > self.y - pad
            && y < self.y + self.h + pad
    }
    /// Where the ray from the centre towards `(tx, ty)` leaves the box.
    fn border_towards(self, tx: f64, ty: f64) -> (f64, f64) {
        let (dx, dy) = (tx - self.cx(), ty - self.cy());
        let sx = if dx == 0.0 {
            f64::INFINITY
        } else {
            self.w / 2.0 / dx.abs()
        };
        let sy = if dy == 0.0 {
            f64::INFINITY
        } else {
            self.h / 2.0 / dy.abs()
        };
        let s = sx.min(sy).min(1.0);
        (self.cx() + dx * s, self.cy() + dy * s)
    }
}

/// Escape text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// Point of the quadratic Bézier `a`, `c`, `b` at `t`.
fn quad(a: (f64, f64), c: (f64, f64), b: (f64, f64), t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    (
        u * u * a.0 + 2.0 * u * t * c.0 + t * t * b.0,
        u * u * a.1 + 2.0 * u * t * c.1 + t * t * b.1,
    )
}

fn end_desc(e: &End) -> String {
    let mut s = format!("{} id {}", e.pd, e.id);
    if e.pp {
        s.push_str(", pp");
    }
    if !e.notify {
        s.push_str(", no notify");
    }
    s
}

/// Draw `sys` as a standalone SVG document titled `title`.
/// How memory regions are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Regions {
    /// Every region, every map.
    All,
    /// One box per subsystem (a region name's first `/` component), one connector per PD and
    /// subsystem.
    #[default]
    Grouped,
    /// No regions.
    None,
}

impl Regions {
    /// Parse `all`, `grouped` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "grouped" => Some(Self::Grouped),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// A region box: its label and tooltip.
struct RegionBox {
    label: String,
    tip: String,
}

/// A map connector: the PD, the region box, its label and tooltip.
struct Link {
    pd: usize,
    region: String,
    label: String,
    tip: String,
}

/// The region boxes and map connectors `mode` draws for `sys`.
fn regions_of(sys: &System, mode: Regions) -> (BTreeMap<String, RegionBox>, Vec<Link>) {
    let mut boxes = BTreeMap::new();
    let mut links = Vec::new();
    match mode {
        Regions::None => {}
        Regions::All => {
            for (name, mr) in &sys.memory_regions {
                let tip = format!("region {name}: {:#x} bytes", mr.size);
                boxes.insert(
                    name.clone(),
                    RegionBox {
                        label: name.clone(),
                        tip,
                    },
                );
            }
            for (i, pd) in sys.pds.iter().enumerate() {
                for m in &pd.maps {
                    links.push(Link {
                        pd: i,
                        region: m.mr.clone(),
                        label: m.perms.to_string(),
                        tip: format!("{} maps {} at {:#x} ({})", pd.name, m.mr, m.vaddr, m.perms),
                    });
                }
            }
        }
        Regions::Grouped => {
            let group = |name: &str| name.split('/').next().unwrap_or(name).to_owned();
            let mut members: BTreeMap<String, (usize, u64)> = BTreeMap::new();
            for (name, mr) in &sys.memory_regions {
                let e = members.entry(group(name)).or_default();
                e.0 += 1;
                e.1 += mr.size;
            }
            for (g, (n, bytes)) in &members {
                let label = if *n == 1 {
                    sys.memory_regions
                        .keys()
                        .find(|k| group(k) == *g)
                        .cloned()
                        .unwrap_or_else(|| g.clone())
                } else {
                    format!("{g}: {n} regions")
                };
                let tip = format!("{n} region(s) of {g}, {bytes:#x} bytes in all");
                boxes.insert(g.clone(), RegionBox { label, tip });
            }
            for (i, pd) in sys.pds.iter().enumerate() {
                let mut per_group: BTreeMap<String, Vec<&lions_sdf::Map>> = BTreeMap::new();
                for m in &pd.maps {
                    per_group.entry(group(&m.mr)).or_default().push(m);
                }
                for (g, maps) in per_group {
                    let (r, w) = maps.iter().fold((false, false), |(r, w), m| {
                        let p = m.perms.to_string();
                        (r || p.contains('r'), w || p.contains('w'))
                    });
                    let rights =
                        format!("{}{}", if r { "r" } else { "" }, if w { "w" } else { "" });
                    let label = if maps.len() == 1 {
                        maps[0].perms.to_string()
                    } else {
                        format!("{}× {rights}", maps.len())
                    };
                    let list: Vec<String> = maps
                        .iter()
                        .map(|m| format!("{} ({})", m.mr, m.perms))
                        .collect();
                    links.push(Link {
                        pd: i,
                        region: g,
                        label,
                        tip: format!("{} maps {}", pd.name, list.join(", ")),
                    });
                }
            }
        }
    }
    (boxes, links)
}

/// The system as SVG, every region drawn ([`Regions::All`]).
pub fn render(sys: &System, title: &str) -> String {
    render_with(sys, title, Regions::All)
}

/// The system as SVG, regions drawn as `mode` says.
pub fn render_with(sys: &System, title: &str, mode: Regions) -> String {
    let (regions, links) = regions_of(sys, mode);
    // Rows of PDs by priority, highest first; file order within a row.
    let mut rows: BTreeMap<std::cmp::Reverse<u8>, Vec<usize>> = BTreeMap::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        rows.entry(std::cmp::Reverse(pd.priority))
            .or_default()
            .push(i);
    }
    let step = PD_W + COL_GAP;
    let widest = rows.values().map(Vec::len).max().unwrap_or(0) as f64;
    let stagger = if rows.len() > 1 { step / 2.0 } else { 0.0 };
    let pd_area_w = (widest * step - COL_GAP).max(0.0) + stagger;
    let mut boxes = vec![
        Rect {
            x: 0.0,
            y: 0.0,
            w: PD_W,
            h: PD_H
        };
        sys.pds.len()
    ];
    for (r, row) in rows.values().enumerate() {
        let row_w = row.len() as f64 * step - COL_GAP;
        let shift = if r % 2 == 1 { stagger } else { 0.0 };
        let x0 = MARGIN + (pd_area_w - stagger - row_w) / 2.0 + shift;
        let y = MARGIN + TITLE_H + r as f64 * (PD_H + ROW_GAP);
        for (k, &i) in row.iter().enumerate() {
            boxes[i].x = x0 + k as f64 * step;
            boxes[i].y = y;
        }
    }
    let pd_index: BTreeMap<&str, usize> = sys
        .pds
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();

    // Regions: a column on the right, each at the mean height of its mappers, then pushed apart.
    let mr_w = regions
        .values()
        .map(|r| r.label.chars().count() as f64 * MONO_CHAR_W + 20.0)
        .fold(110.0, f64::max);
    let mr_x = MARGIN + pd_area_w + REGION_COL_GAP;
    let mut want: Vec<(f64, f64, &str)> = regions
        .keys()
        .map(|name| {
            let users: Vec<Rect> = links
                .iter()
                .filter(|l| &l.region == name)
                .map(|l| boxes[l.pd])
                .collect();
            let n = users.len() as f64;
            let (y, x) = if users.is_empty() {
                (f64::MAX, 0.0)
            } else {
                (
                    users.iter().map(|r| r.cy()).sum::<f64>() / n,
                    users.iter().map(|r| r.cx()).sum::<f64>() / n,
                )
            };
            (y, x, name.as_str())
        })
        .collect();
    want.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.cmp(b.2))
    });
    let mut mr_boxes: BTreeMap<&str, Rect> = BTreeMap::new();
    let mut next_free = MARGIN + TITLE_H;
    for (y, _, name) in want {
        let top = if y == f64::MAX {
            next_free
        } else {
            (y - MR_H / 2.0).max(next_free)
        };
        mr_boxes.insert(
            name,
            Rect {
                x: mr_x,
                y: top,
                w: mr_w,
                h: MR_H,
            },
        );
        next_free = top + MR_H + MR_GAP;
    }

    let pd_bottom = boxes
        .iter()
        .map(|b| b.y + b.h)
        .fold(MARGIN + TITLE_H, f64::max);
    let content_bottom = pd_bottom.max(next_free - MR_GAP);
    let width = if regions.is_empty() {
        MARGIN * 2.0 + pd_area_w
    } else {
        mr_x + mr_w + MARGIN
    }
    .max(560.0);
    let height = content_bottom + LEGEND_H + MARGIN;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<title>{t}</title>
<style>
.pd rect {{ fill: #e8f0fb; stroke: #2f5d9a; stroke-width: 1.6; }}
.pd .name {{ font-size: 14px; font-weight: bold; fill: #13294b; }}
.pd .prio {{ font-size: 11px; fill: #44546a; }}
.mr rect {{ fill: #fdf3df; stroke: #b07a12; stroke-width: 1.2; }}
.mr text {{ font-family: DejaVu Sans Mono, monospace; font-size: 12px; fill: #5a3d00; }}
.map line {{ stroke: #b07a12; stroke-width: 1.2; stroke-dasharray: 5 3; }}
.map text {{ font-size: 11px; font-weight: bold; fill: #8a5a00; }}
.channel path {{ fill: none; stroke: #333; stroke-width: 1.6; }}
.channel polygon {{ fill: #333; }}
.channel text {{ font-size: 11px; font-weight: bold; fill: #a01010; }}
.halo {{ paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }}
.legend {{ font-size: 11px; fill: #444; }}
</style>
<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="#fff"/>
<text x="{MARGIN}" y="{ty:.0}" font-size="18" font-weight="bold" fill="#13294b">{t}</text>"##,
        t = esc(title),
        ty = MARGIN + 18.0,
    );

    // Map connectors first, under the boxes. Spread each PD's and each region's connection points
    // along its edge so several maps do not meet in one point.
    let mut maps_by_mr: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut maps_by_pd: Vec<usize> = vec![0; sys.pds.len()];
    for l in &links {
        maps_by_mr.entry(l.region.as_str()).or_default().push(l.pd);
        maps_by_pd[l.pd] += 1;
    }
    let spread = |k: usize, n: usize, h: f64| h * (k as f64 + 1.0) / (n as f64 + 1.0);
    let mut nth_of_pd: Vec<usize> = vec![0; sys.pds.len()];
    for l in &links {
        let b = boxes[l.pd];
        let Some(r) = mr_boxes.get(l.region.as_str()) else {
            continue;
        };
        let k = nth_of_pd[l.pd];
        nth_of_pd[l.pd] += 1;
        let users = &maps_by_mr[l.region.as_str()];
        let slot = users.iter().position(|&u| u == l.pd).unwrap_or(0);
        let (x1, y1) = (b.x + b.w, b.y + spread(k, maps_by_pd[l.pd], b.h));
        let (x2, y2) = (r.x, r.y + spread(slot, users.len(), r.h));
        // Labels near the PD end, where connectors of different PDs are still apart.
        let (lx, ly) = (x1 + (x2 - x1) * 0.3, y1 + (y2 - y1) * 0.3);
        let _ = writeln!(
            svg,
            r#"<g class="map"><title>{tip}</title><line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"/><text class="halo" x="{lx:.1}" y="{ly:.1}" text-anchor="middle" dy="4">{label}</text></g>"#,
            tip = esc(&l.tip),
            label = esc(&l.label),
        );
    }

    // PD boxes over the map connectors.
    for (i, pd) in sys.pds.iter().enumerate() {
        let b = boxes[i];
        let mut detail = format!("priority {}", pd.priority);
        if pd.passive {
            detail.push_str(", passive");
        }
        let mut tip = format!("{}: {}, image {}", pd.name, detail, pd.program_image);
        for irq in &pd.irqs {
            let _ = write!(tip, ", irq {} on channel {}", irq.irq, irq.id);
        }
        let _ = writeln!(
            svg,
            r#"<g class="pd"><title>{tip}</title><rect x="{x:.1}" y="{y:.1}" width="{PD_W}" height="{PD_H}" rx="3"/><text class="name" x="{cx:.1}" y="{y1:.1}" text-anchor="middle">{name}</text><text class="prio" x="{cx:.1}" y="{y2:.1}" text-anchor="middle">{detail}</text></g>"#,
            tip = esc(&tip),
            x = b.x,
            y = b.y,
            cx = b.cx(),
            y1 = b.y + 22.0,
            y2 = b.y + 40.0,
            name = esc(&pd.name),
        );
    }
    // Channels, over the PD boxes (lines end at the borders, bends avoid other boxes) so their
    // ids and arrow heads are never hidden.
    let mut chans = String::new();
    let mut pair_count: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    // Channel-id labels placed so far: a new one moves along its channel until it clears them.
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for ch in &sys.channels {
        let [a, b] = &ch.ends;
        let (Some(&ia), Some(&ib)) = (pd_index.get(a.pd.as_str()), pd_index.get(b.pd.as_str()))
        else {
            continue;
        };
        let (ra, rb) = (boxes[ia], boxes[ib]);
        let n = pair_count.entry((ia.min(ib), ia.max(ib))).or_insert(0);
        let nth = *n;
        *n += 1;
        // Bend: 0, +1, -1, +2, ... steps for parallel channels; more while crossing another PD.
        let (ca, cb) = ((ra.cx(), ra.cy()), (rb.cx(), rb.cy()));
        // The normal of the pair in a fixed order, so parallel channels bend apart whichever end
        // the file lists first.
        let (p, q) = if ia <= ib { (ca, cb) } else { (cb, ca) };
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (nx, ny) = (-dy / len, dx / len);
        let mid = ((ca.0 + cb.0) / 2.0, (ca.1 + cb.1) / 2.0);
        let ctrl_for = |bend: f64| (mid.0 + nx * bend * 2.0, mid.1 + ny * bend * 2.0);
        let base = if nth == 0 {
            0.0
        } else if nth % 2 == 1 {
            nth.div_ceil(2) as f64 * 36.0
        } else {
            -((nth / 2) as f64) * 36.0
        };
        let crosses = |bend: f64| {
            let c = ctrl_for(bend);
            (1..40).any(|s| {
                let (x, y) = quad(ca, c, cb, f64::from(s) / 40.0);
                boxes
                    .iter()
                    .enumerate()
                    .any(|(j, r)| j != ia && j != ib && r.contains(x, y, 6.0))
            })
        };
        let mut bend = base;
        for extra in 1..=8 {
            if !crosses(bend) {
                break;
            }
            let e = f64::from(extra) * 30.0;
            bend = if crosses(base + e) {
                base - e
            } else {
                base + e
            };
        }
        let ctrl = ctrl_for(bend);
        let pa = ra.border_towards(ctrl.0, ctrl.1);
        let pb = rb.border_towards(ctrl.0, ctrl.1);
        let _ = write!(
            chans,
            r#"<g class="channel"><title>channel: {} — {}</title><path d="M{:.1},{:.1} Q{:.1},{:.1} {:.1},{:.1}"/>"#,
            esc(&end_desc(a)),
            esc(&end_desc(b)),
            pa.0,
            pa.1,
            ctrl.0,
            ctrl.1,
            pb.0,
            pb.1
        );
        for (end, at, other) in [(a, pa, pb), (b, pb, pa)] {
            // Unit tangent from this end towards the control point (or the other end).
            let (tx, ty) = {
                let (vx, vy) = if bend == 0.0 {
                    (other.0 - at.0, other.1 - at.1)
                } else {
                    (ctrl.0 - at.0, ctrl.1 - at.1)
                };
                let l = (vx * vx + vy * vy).sqrt().max(1.0);
                (vx / l, vy / l)
            };
            let at_distance = |d: f64| (at.0 + tx * d - ty * 10.0, at.1 + ty * d + tx * 10.0);
            let clear = |(x, y): (f64, f64)| {
                placed
                    .iter()
                    .all(|&(px, py)| (px - x).abs() > 16.0 || (py - y).abs() > 14.0)
            };
            let (lx, ly) = (0..8)
                .map(|k| at_distance(20.0 + 14.0 * f64::from(k)))
                .find(|&p| clear(p))
                .unwrap_or_else(|| at_distance(20.0));
            placed.push((lx, ly));
            let _ = write!(
                chans,
                r#"<text class="halo" x="{lx:.1}" y="{ly:.1}" text-anchor="middle" dy="4">{}</text>"#,
                end.id
            );
        }
        // Arrow heads at the callee of each PPC direction.
        for (caller, callee_at, from) in [(a, pb, pa), (b, pa, pb)] {
            if !caller.pp {
                continue;
            }
            let (vx, vy) = if bend == 0.0 {
                (callee_at.0 - from.0, callee_at.1 - from.1)
            } else {
                (callee_at.0 - ctrl.0, callee_at.1 - ctrl.1)
            };
            let l = (vx * vx + vy * vy).sqrt().max(1.0);
            let (ux, uy) = (vx / l, vy / l);
            let (bx, by) = (callee_at.0 - ux * 12.0, callee_at.1 - uy * 12.0);
            let _ = write!(
                chans,
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                callee_at.0,
                callee_at.1,
                bx - uy * 5.0,
                by + ux * 5.0,
                bx + uy * 5.0,
                by - ux * 5.0
            );
        }
        chans.push_str("</g>\n");
    }

    svg.push_str(&chans);
    for (name, r) in &mr_boxes {
        let Some(rb) = regions.get(*name) else {
            continue;
        };
        let _ = writeln!(
            svg,
            r#"<g class="mr"><title>{tip}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="12"/><text x="{cx:.1}" y="{ty:.1}" text-anchor="middle">{n}</text></g>"#,
            tip = esc(&rb.tip),
            n = esc(&rb.label),
            x = r.x,
            y = r.y,
            w = r.w,
            h = r.h,
            cx = r.cx(),
            ty = r.cy() + 4.0,
        );
    }

    let ly = content_bottom + 30.0;
    let _ = writeln!(
        svg,
        r#"<text class="legend" x="{MARGIN}" y="{ly:.0}">Boxes: protection domains, highest priority at the top.</text>
<text class="legend" x="{MARGIN}" y="{ly2:.0}">Solid lines: channels, with each end's channel id; arrow head: callee of a PPC.</text>
<text class="legend" x="{MARGIN}" y="{ly3:.0}">{regions_legend}</text>
</svg>"#,
        ly2 = ly + 15.0,
        ly3 = ly + 30.0,
        regions_legend = match mode {
            Regions::All => "Rounded boxes: memory regions; dashed lines: maps, with their perms.",
            Regions::Grouped =>
                "Rounded boxes: memory regions, one per subsystem; dashed lines: a PD's maps of them (count × rights).",
            Regions::None => "Memory regions not drawn (--regions all or grouped draws them).",
        },
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="shared" size="0x1000" />
    <memory_region name="ring &amp; data" size="0x2000" />
    <memory_region name="unused" size="0x1000" />
    <protection_domain name="pong" priority="10">
        <program_image path="pong.elf" />
        <map mr="shared" vaddr="0x20000000" perms="rw" />
        <map mr="ring &amp; data" vaddr="0x20001000" perms="rw" />
    </protection_domain>
    <protection_domain name="faulty" priority="5">
        <program_image path="faulty.elf" />
        <map mr="shared" vaddr="0x20000000" perms="r" />
    </protection_domain>
    <protection_domain name="ping" priority="1">
        <program_image path="ping.elf" />
        <map mr="ring &amp; data" vaddr="0x20000000" perms="r" />
    </protection_domain>
    <protection_domain name="ping2" priority="1">
        <program_image path="ping.elf" />
    </protection_domain>
    <channel><end pd="ping" id="0" /><end pd="pong" id="0" /></channel>
    <channel><end pd="ping" id="1" pp="true" notify="false" /><end pd="pong" id="1" /></channel>
    <channel><end pd="pong" id="2" /><end pd="faulty" id="0" /></channel>
    <channel><end pd="ping" id="2" /><end pd="ping2" id="0" /></channel>
</system>"#;

    fn classes<'a>(doc: &'a roxmltree::Document, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .collect()
    }

    fn texts(node: roxmltree::Node) -> Vec<String> {
        node.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(String::from))
            .collect()
    }

    #[test]
    fn svg_is_well_formed_and_complete() {
        let sys = System::parse(SYSTEM).unwrap();
        let svg = render(&sys, "hello <test>");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert!(
            doc.root_element()
                .has_tag_name(("http://www.w3.org/2000/svg", "svg"))
        );

        let pds = classes(&doc, "pd");
        assert_eq!(pds.len(), 4);
        for (pd, prio) in [("pong", 10), ("faulty", 5), ("ping", 1), ("ping2", 1)] {
            let node = pds
                .iter()
                .find(|n| texts(**n).contains(&pd.to_owned()))
                .unwrap_or_else(|| panic!("PD {pd} drawn"));
            assert!(texts(*node).contains(&format!("priority {prio}")));
        }
        let mrs = classes(&doc, "mr");
        assert_eq!(mrs.len(), 3);
        for mr in ["shared", "ring & data", "unused"] {
            assert!(
                mrs.iter().any(|n| texts(*n).contains(&mr.to_owned())),
                "{mr}"
            );
        }
        // One connector per map, labelled with its perms; one line per channel.
        let maps = classes(&doc, "map");
        assert_eq!(maps.len(), 4);
        let mut perms: Vec<String> = maps.iter().flat_map(|n| texts(*n)).collect();
        perms.sort();
        assert_eq!(perms, ["r", "r", "rw", "rw"]);
        let channels = classes(&doc, "channel");
        assert_eq!(channels.len(), 4);
        for ch in &channels {
            assert_eq!(ch.children().filter(|n| n.has_tag_name("path")).count(), 1);
        }
        // Each end's id is drawn; the one PPC gets one arrow head.
        assert_eq!(texts(channels[1]), ["1", "1"]);
        let arrows: usize = channels
            .iter()
            .map(|c| c.children().filter(|n| n.has_tag_name("polygon")).count())
            .sum();
        assert_eq!(arrows, 1);
    }

    #[test]
    fn higher_priority_is_drawn_higher() {
        let sys = System::parse(SYSTEM).unwrap();
        let svg = render(&sys, "t");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let y_of = |name: &str| -> f64 {
            let g = classes(&doc, "pd")
                .into_iter()
                .find(|n| texts(*n).contains(&name.to_owned()))
                .unwrap();
            let rect = g.children().find(|n| n.has_tag_name("rect")).unwrap();
            rect.attribute("y").unwrap().parse().unwrap()
        };
        assert!(y_of("pong") < y_of("faulty"));
        assert!(y_of("faulty") < y_of("ping"));
        assert_eq!(y_of("ping"), y_of("ping2"));
    }

    #[test]
    fn every_interop_fixture() {
        // The sdfgen fixtures: bigger systems, long region names, several channels per pair.
        let fixtures = crate::workspace_root().join("interop/fixtures");
        let mut n = 0;
        for entry in std::fs::read_dir(&fixtures).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
            let sys = System::load(dir.join(format!("{name}.system"))).unwrap();
            let svg = render(&sys, &name);
            if let Some(out) = std::env::var_os("XTASK_GRAPH_DUMP") {
                std::fs::write(std::path::Path::new(&out).join(format!("{name}.svg")), &svg)
                    .unwrap();
            }
            let doc = roxmltree::Document::parse(&svg).unwrap();
            assert_eq!(classes(&doc, "pd").len(), sys.pds.len(), "{name}");
            assert_eq!(
                classes(&doc, "mr").len(),
                sys.memory_regions.len(),
                "{name}"
            );
            let maps: usize = sys.pds.iter().map(|p| p.maps.len()).sum();
            assert_eq!(classes(&doc, "map").len(), maps, "{name}");
            assert_eq!(classes(&doc, "channel").len(), sys.channels.len(), "{name}");
            n += 1;
        }
        assert!(n >= 8);
    }

    #[test]
    fn grouped_regions_and_labels_that_do_not_overlap() {
        let fixtures = crate::workspace_root().join("interop/fixtures");
        for entry in std::fs::read_dir(&fixtures).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
            let sys = System::load(dir.join(format!("{name}.system"))).unwrap();
            let doc_for = |mode| render_with(&sys, &name, mode);
            let svg = doc_for(Regions::Grouped);
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let group = |mr: &str| mr.split('/').next().unwrap().to_owned();
            let groups: std::collections::BTreeSet<String> =
                sys.memory_regions.keys().map(|k| group(k)).collect();
            assert_eq!(classes(&doc, "mr").len(), groups.len(), "{name}");
            let pairs: std::collections::BTreeSet<(String, String)> = sys
                .pds
                .iter()
                .flat_map(|p| p.maps.iter().map(|m| (p.name.clone(), group(&m.mr))))
                .collect();
            assert_eq!(classes(&doc, "map").len(), pairs.len(), "{name}");
            // Channel ids: no two labels on top of each other.
            let ids: Vec<(f64, f64)> = classes(&doc, "channel")
                .iter()
                .flat_map(|c| c.children().filter(|n| n.has_tag_name("text")))
                .map(|t| {
                    let f = |a| t.attribute(a).unwrap().parse::<f64>().unwrap();
                    (f("x"), f("y"))
                })
                .collect();
            for (i, a) in ids.iter().enumerate() {
                for b in &ids[i + 1..] {
                    assert!(
                        (a.0 - b.0).abs() > 16.0 || (a.1 - b.1).abs() > 14.0,
                        "{name}: channel ids at {a:?} and {b:?} overlap"
                    );
                }
            }
            let none = doc_for(Regions::None);
            let doc = roxmltree::Document::parse(&none).unwrap();
            assert!(classes(&doc, "mr").is_empty() && classes(&doc, "map").is_empty());
        }
    }

    #[test]
    fn empty_system() {
        let svg = render(&System::default(), "empty");
        roxmltree::Document::parse(&svg).unwrap();
    }
}
