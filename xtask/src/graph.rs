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
    match mode {
        Regions::None => (BTreeMap::new(), Vec::new()),
        Regions::All => every_region(sys),
        Regions::Grouped => grouped_regions(sys),
    }
}

/// [`Regions::All`]: a box per region and a connector per map, labelled with its perms.
fn every_region(sys: &System) -> (BTreeMap<String, RegionBox>, Vec<Link>) {
    let boxes = sys
        .memory_regions
        .iter()
        .map(|(name, mr)| {
            let tip = format!("region {name}: {:#x} bytes", mr.size);
            let label = name.clone();
            (name.clone(), RegionBox { label, tip })
        })
        .collect();
    let mut links = Vec::new();
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
    (boxes, links)
}

/// The subsystem a region belongs to: the first component of its name (`net/rx/...` -> `net`).
fn group(name: &str) -> String {
    name.split('/').next().unwrap_or(name).to_owned()
}

/// [`Regions::Grouped`]: a box per subsystem and a connector per PD that maps any of its regions,
/// labelled with how many it maps and their rights.
fn grouped_regions(sys: &System) -> (BTreeMap<String, RegionBox>, Vec<Link>) {
    let mut members: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (name, mr) in &sys.memory_regions {
        let e = members.entry(group(name)).or_default();
        e.0 += 1;
        e.1 += mr.size;
    }
    let mut boxes = BTreeMap::new();
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
    let mut links = Vec::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        let mut per_group: BTreeMap<String, Vec<&lions_sdf::Map>> = BTreeMap::new();
        for m in &pd.maps {
            per_group.entry(group(&m.mr)).or_default().push(m);
        }
        for (g, maps) in per_group {
            links.push(group_link(i, &pd.name, g, &maps));
        }
    }
    (boxes, links)
}

/// The connector from PD `pd` (named `name`) to group `g`, for its `maps` of that group.
fn group_link(pd: usize, name: &str, g: String, maps: &[&lions_sdf::Map]) -> Link {
    let (r, w) = maps.iter().fold((false, false), |(r, w), m| {
        let p = m.perms.to_string();
        (r || p.contains('r'), w || p.contains('w'))
    });
    let rights = format!("{}{}", if r { "r" } else { "" }, if w { "w" } else { "" });
    let label = if maps.len() == 1 {
        maps[0].perms.to_string()
    } else {
        format!("{}× {rights}", maps.len())
    };
    let list: Vec<String> = maps
        .iter()
        .map(|m| format!("{} ({})", m.mr, m.perms))
        .collect();
    Link {
        pd,
        region: g,
        label,
        tip: format!("{name} maps {}", list.join(", ")),
    }
}

/// The system as SVG, every region drawn ([`Regions::All`]).
pub fn render(sys: &System, title: &str) -> String {
    render_with(sys, title, Regions::All)
}

/// The system as SVG, regions drawn as `mode` says.
pub fn render_with(sys: &System, title: &str, mode: Regions) -> String {
    let (regions, links) = regions_of(sys, mode);
    let pds = PdLayout::of(sys);
    let column = RegionColumn::place(&regions, &links, &pds);

    let pd_bottom = pds
        .boxes
        .iter()
        .map(|b| b.y + b.h)
        .fold(MARGIN + TITLE_H, f64::max);
    let content_bottom = pd_bottom.max(column.bottom);
    let width = if regions.is_empty() {
        MARGIN * 2.0 + pds.area_w
    } else {
        column.x + column.w + MARGIN
    }
    .max(560.0);
    let height = content_bottom + LEGEND_H + MARGIN;

    let mut svg = header(width, height, title);
    // Map connectors first, under the boxes; channels over the PD boxes so their ids and arrow
    // heads are never hidden; region boxes last.
    draw_maps(&mut svg, &links, &pds.boxes, &column.boxes);
    draw_pds(&mut svg, sys, &pds.boxes);
    draw_channels(&mut svg, sys, &pds.boxes);
    draw_regions(&mut svg, &regions, &column.boxes);
    legend(&mut svg, content_bottom, mode);
    svg
}

/// Where the PD boxes go: rows by priority, highest first, file order within a row; alternate
/// rows shifted by half a column.
struct PdLayout {
    /// One box per PD, in file order.
    boxes: Vec<Rect>,
    /// Width of the PD area.
    area_w: f64,
}

impl PdLayout {
    fn of(sys: &System) -> Self {
        let mut rows: BTreeMap<std::cmp::Reverse<u8>, Vec<usize>> = BTreeMap::new();
        for (i, pd) in sys.pds.iter().enumerate() {
            rows.entry(std::cmp::Reverse(pd.priority))
                .or_default()
                .push(i);
        }
        let step = PD_W + COL_GAP;
        let widest = rows.values().map(Vec::len).max().unwrap_or(0) as f64;
        let stagger = if rows.len() > 1 { step / 2.0 } else { 0.0 };
        let area_w = (widest * step - COL_GAP).max(0.0) + stagger;
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
            let x0 = MARGIN + (area_w - stagger - row_w) / 2.0 + shift;
            let y = MARGIN + TITLE_H + r as f64 * (PD_H + ROW_GAP);
            for (k, &i) in row.iter().enumerate() {
                boxes[i].x = x0 + k as f64 * step;
                boxes[i].y = y;
            }
        }
        Self { boxes, area_w }
    }
}

/// The region column on the right: each box at the mean height of its mappers, pushed apart.
struct RegionColumn<'a> {
    /// Each region's box.
    boxes: BTreeMap<&'a str, Rect>,
    /// Left edge and width of the column.
    x: f64,
    w: f64,
    /// The lowest box's bottom (the column's top if it is empty).
    bottom: f64,
}

impl<'a> RegionColumn<'a> {
    fn place(regions: &'a BTreeMap<String, RegionBox>, links: &[Link], pds: &PdLayout) -> Self {
        let w = regions
            .values()
            .map(|r| r.label.chars().count() as f64 * MONO_CHAR_W + 20.0)
            .fold(110.0, f64::max);
        let x = MARGIN + pds.area_w + REGION_COL_GAP;
        let mut want: Vec<(f64, f64, &str)> = regions
            .keys()
            .map(|name| {
                let users: Vec<Rect> = links
                    .iter()
                    .filter(|l| &l.region == name)
                    .map(|l| pds.boxes[l.pd])
                    .collect();
                let n = users.len() as f64;
                let (y, cx) = if users.is_empty() {
                    (f64::MAX, 0.0)
                } else {
                    (
                        users.iter().map(|r| r.cy()).sum::<f64>() / n,
                        users.iter().map(|r| r.cx()).sum::<f64>() / n,
                    )
                };
                (y, cx, name.as_str())
            })
            .collect();
        want.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(b.2))
        });
        let mut boxes = BTreeMap::new();
        let mut next_free = MARGIN + TITLE_H;
        for (y, _, name) in want {
            let top = if y == f64::MAX {
                next_free
            } else {
                (y - MR_H / 2.0).max(next_free)
            };
            boxes.insert(
                name,
                Rect {
                    x,
                    y: top,
                    w,
                    h: MR_H,
                },
            );
            next_free = top + MR_H + MR_GAP;
        }
        Self {
            boxes,
            x,
            w,
            bottom: next_free - MR_GAP,
        }
    }
}

/// The XML prologue, the style sheet, the background and the title.
fn header(width: f64, height: f64, title: &str) -> String {
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
    svg
}

/// The map connectors. Each PD's and each region's connection points are spread along its edge
/// so several maps do not meet in one point.
fn draw_maps(svg: &mut String, links: &[Link], boxes: &[Rect], mr_boxes: &BTreeMap<&str, Rect>) {
    let mut maps_by_mr: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut maps_by_pd: Vec<usize> = vec![0; boxes.len()];
    for l in links {
        maps_by_mr.entry(l.region.as_str()).or_default().push(l.pd);
        maps_by_pd[l.pd] += 1;
    }
    let spread = |k: usize, n: usize, h: f64| h * (k as f64 + 1.0) / (n as f64 + 1.0);
    let mut nth_of_pd: Vec<usize> = vec![0; boxes.len()];
    for l in links {
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
}

/// The PD boxes, with name, priority and a tooltip of image and IRQs.
fn draw_pds(svg: &mut String, sys: &System, boxes: &[Rect]) {
    for (pd, b) in sys.pds.iter().zip(boxes) {
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
}

/// How far the `nth` channel between one pair of PDs bends: 0, +1, -1, +2, ... steps, more while
/// its curve would cross another PD (`crosses`).
fn bend_for(nth: usize, crosses: impl Fn(f64) -> bool) -> f64 {
    let base = if nth == 0 {
        0.0
    } else if nth % 2 == 1 {
        nth.div_ceil(2) as f64 * 36.0
    } else {
        -((nth / 2) as f64) * 36.0
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
    bend
}

/// One channel's curve: its ends on the two PD borders, its control point and bend.
struct Curve {
    pa: (f64, f64),
    pb: (f64, f64),
    ctrl: (f64, f64),
    bend: f64,
}

impl Curve {
    /// The curve of the `nth` channel between PDs `ia` and `ib`, bent clear of other PDs.
    fn between(boxes: &[Rect], ia: usize, ib: usize, nth: usize) -> Self {
        let (ra, rb) = (boxes[ia], boxes[ib]);
        let (ca, cb) = ((ra.cx(), ra.cy()), (rb.cx(), rb.cy()));
        // The normal of the pair in a fixed order, so parallel channels bend apart whichever end
        // the file lists first.
        let (p, q) = if ia <= ib { (ca, cb) } else { (cb, ca) };
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (nx, ny) = (-dy / len, dx / len);
        let mid = ((ca.0 + cb.0) / 2.0, (ca.1 + cb.1) / 2.0);
        let ctrl_for = |bend: f64| (mid.0 + nx * bend * 2.0, mid.1 + ny * bend * 2.0);
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
        let bend = bend_for(nth, crosses);
        let ctrl = ctrl_for(bend);
        Self {
            pa: ra.border_towards(ctrl.0, ctrl.1),
            pb: rb.border_towards(ctrl.0, ctrl.1),
            ctrl,
            bend,
        }
    }

    /// Unit vector from `at` towards the control point (towards `other` on a straight line).
    fn direction(&self, at: (f64, f64), other: (f64, f64)) -> (f64, f64) {
        let (vx, vy) = if self.bend == 0.0 {
            (other.0 - at.0, other.1 - at.1)
        } else {
            (self.ctrl.0 - at.0, self.ctrl.1 - at.1)
        };
        let l = (vx * vx + vy * vy).sqrt().max(1.0);
        (vx / l, vy / l)
    }
}

/// The channels: a curve, each end's id (moved along the channel until it clears the ids placed
/// so far) and an arrow head at the callee of each PPC direction.
fn draw_channels(svg: &mut String, sys: &System, boxes: &[Rect]) {
    let pd_index: BTreeMap<&str, usize> = sys
        .pds
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut pair_count: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for ch in &sys.channels {
        let [a, b] = &ch.ends;
        let (Some(&ia), Some(&ib)) = (pd_index.get(a.pd.as_str()), pd_index.get(b.pd.as_str()))
        else {
            continue;
        };
        let n = pair_count.entry((ia.min(ib), ia.max(ib))).or_insert(0);
        let c = Curve::between(boxes, ia, ib, *n);
        *n += 1;
        let (pa, pb, ctrl) = (c.pa, c.pb, c.ctrl);
        let _ = write!(
            svg,
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
            let (tx, ty) = c.direction(at, other);
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
                svg,
                r#"<text class="halo" x="{lx:.1}" y="{ly:.1}" text-anchor="middle" dy="4">{}</text>"#,
                end.id
            );
        }
        for (caller, callee_at, from) in [(a, pb, pa), (b, pa, pb)] {
            if !caller.pp {
                continue;
            }
            // Pointing into the callee: the opposite of the direction out of it.
            let (ox, oy) = c.direction(callee_at, from);
            let (ux, uy) = (-ox, -oy);
            let (bx, by) = (callee_at.0 - ux * 12.0, callee_at.1 - uy * 12.0);
            let _ = write!(
                svg,
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                callee_at.0,
                callee_at.1,
                bx - uy * 5.0,
                by + ux * 5.0,
                bx + uy * 5.0,
                by - ux * 5.0
            );
        }
        svg.push_str("</g>\n");
    }
}

/// The region boxes.
fn draw_regions(
    svg: &mut String,
    regions: &BTreeMap<String, RegionBox>,
    mr_boxes: &BTreeMap<&str, Rect>,
) {
    for (name, r) in mr_boxes {
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
}

/// The three legend lines below the drawing, and the end of the document.
fn legend(svg: &mut String, content_bottom: f64, mode: Regions) {
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
}

#[cfg(test)]
mod tests;
