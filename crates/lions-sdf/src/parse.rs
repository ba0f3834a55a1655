// SPDX-License-Identifier: BSD-2-Clause
//! XML to [`System`], then the consistency checks.

use crate::{
    Channel, End, Error, Irq, MAX_CHANNEL_ID, Map, MemoryRegion, Perms, ProtectionDomain, SetVar,
    System, VirtualMachine,
};
use roxmltree::{Document, Node};
use std::collections::BTreeMap;

const PAGE: u64 = 0x1000;

/// Where an element is: its line and a readable path.
struct At {
    line: u32,
    element: String,
}

impl At {
    fn of(doc: &Document<'_>, node: Node<'_, '_>, parent: &str) -> Self {
        let line = doc.text_pos_at(node.range().start).row;
        let tag = node.tag_name().name();
        let label = ["name", "mr", "pd", "symbol", "irq"]
            .iter()
            .find_map(|a| node.attribute(*a).map(|v| format!(" {a}=\"{v}\"")))
            .unwrap_or_default();
        let element = if parent.is_empty() {
            format!("{tag}{label}")
        } else {
            format!("{parent} > {tag}{label}")
        };
        Self { line, element }
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error {
            line: self.line,
            element: self.element.clone(),
            message: message.into(),
        }
    }
}

/// Attribute access that insists every attribute is known and parsed.
struct Attrs<'a, 'input> {
    node: Node<'a, 'input>,
    at: &'a At,
}

impl<'a, 'input> Attrs<'a, 'input> {
    fn new(node: Node<'a, 'input>, at: &'a At, known: &[&str]) -> Result<Self, Error> {
        for a in node.attributes() {
            if !known.contains(&a.name()) {
                return Err(at.err(format!("unknown attribute \"{}\"", a.name())));
            }
        }
        Ok(Self { node, at })
    }

    fn str(&self, name: &str) -> Option<String> {
        self.node.attribute(name).map(str::to_owned)
    }

    fn req(&self, name: &str) -> Result<String, Error> {
        self.str(name)
            .ok_or_else(|| self.at.err(format!("missing attribute \"{name}\"")))
    }

    fn num(&self, name: &str) -> Result<Option<u64>, Error> {
        let Some(v) = self.node.attribute(name) else {
            return Ok(None);
        };
        let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
            None => v.replace('_', "").parse(),
        };
        parsed.map(Some).map_err(|_| {
            self.at
                .err(format!("attribute \"{name}\" = \"{v}\" is not a number"))
        })
    }

    fn req_num(&self, name: &str) -> Result<u64, Error> {
        self.num(name)?
            .ok_or_else(|| self.at.err(format!("missing attribute \"{name}\"")))
    }

    fn small<T: TryFrom<u64>>(&self, name: &str, max: u64) -> Result<Option<T>, Error> {
        match self.num(name)? {
            None => Ok(None),
            Some(v) if v <= max => T::try_from(v)
                .map(Some)
                .map_err(|_| self.at.err("out of range")),
            Some(v) => Err(self
                .at
                .err(format!("attribute \"{name}\" = {v} exceeds {max}"))),
        }
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.node.attribute(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(self.at.err(format!(
                "attribute \"{name}\" = \"{v}\" is not true or false"
            ))),
        }
    }
}

fn elements<'a, 'input>(node: Node<'a, 'input>) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(Node::is_element)
}

pub(crate) fn parse(xml: &str) -> Result<System, Error> {
    let doc = Document::parse(xml).map_err(|e| Error {
        line: e.pos().row,
        element: "document".into(),
        message: e.to_string(),
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "system" {
        return Err(At::of(&doc, root, "").err("root element must be <system>"));
    }
    let mut sys = System::default();
    for node in elements(root) {
        let at = At::of(&doc, node, "");
        match node.tag_name().name() {
            "memory_region" => {
                let a = Attrs::new(node, &at, &["name", "size", "page_size", "phys_addr"])?;
                let mr = MemoryRegion {
                    name: a.req("name")?,
                    size: a.req_num("size")?,
                    page_size: a.num("page_size")?.unwrap_or(PAGE),
                    phys_addr: a.num("phys_addr")?,
                };
                if !mr.page_size.is_power_of_two() || mr.page_size < PAGE {
                    return Err(at.err(format!("page_size {:#x} is not a page size", mr.page_size)));
                }
                if mr.size == 0 || !mr.size.is_multiple_of(mr.page_size) {
                    return Err(at.err(format!(
                        "size {:#x} is not a non-zero multiple of the page size",
                        mr.size
                    )));
                }
                if sys.memory_regions.insert(mr.name.clone(), mr).is_some() {
                    return Err(at.err("duplicate memory region name"));
                }
            }
            "protection_domain" => parse_pd(&doc, node, None, &mut sys.pds)?,
            "channel" => sys.channels.push(parse_channel(&doc, node, &at)?),
            other => return Err(at.err(format!("unknown element <{other}>"))),
        }
    }
    Ok(sys)
}

/// A `<protection_domain>` element's attributes (its children are read by [`parse_pd`]).
fn pd_attributes(
    node: Node<'_, '_>,
    at: &At,
    parent: Option<&str>,
) -> Result<ProtectionDomain, Error> {
    let known = [
        "name",
        "priority",
        "budget",
        "period",
        "passive",
        "stack_size",
        "cpu",
        "smc",
        "id",
    ];
    let a = Attrs::new(node, at, &known)?;
    let id = a.small::<u8>("id", u64::from(MAX_CHANNEL_ID))?;
    if parent.is_some() != id.is_some() {
        return Err(at.err("a child PD needs an id, and only a child PD has one"));
    }
    Ok(ProtectionDomain {
        name: a.req("name")?,
        parent: parent.map(str::to_owned),
        id,
        priority: a.small("priority", 254)?.unwrap_or(0),
        budget: a.num("budget")?,
        period: a.num("period")?,
        passive: a.bool("passive", false)?,
        stack_size: a.num("stack_size")?,
        cpu: a.small("cpu", u64::from(u32::MAX))?,
        smc: a.bool("smc", false)?,
        program_image: String::new(),
        maps: Vec::new(),
        irqs: Vec::new(),
        setvars: Vec::new(),
        virtual_machine: None,
    })
}

/// A `<virtual_machine>` element of a VMM PD.
fn parse_vm(doc: &Document<'_>, node: Node<'_, '_>, at: &At) -> Result<VirtualMachine, Error> {
    let a = Attrs::new(node, at, &["name", "priority", "budget", "period"])?;
    let mut vm = VirtualMachine {
        name: a.req("name")?,
        priority: a.small("priority", 254)?.unwrap_or(0),
        budget: a.num("budget")?,
        period: a.num("period")?,
        vcpus: Vec::new(),
        maps: Vec::new(),
    };
    let here = format!("virtual_machine \"{}\"", vm.name);
    for child in elements(node) {
        let cat = At::of(doc, child, &here);
        match child.tag_name().name() {
            "vcpu" => {
                let c = Attrs::new(child, &cat, &["id", "cpu"])?;
                let id = c
                    .small("id", u64::from(MAX_CHANNEL_ID))?
                    .ok_or_else(|| cat.err("missing attribute \"id\""))?;
                if vm.vcpus.contains(&id) {
                    return Err(cat.err(format!("vcpu id {id} twice")));
                }
                vm.vcpus.push(id);
            }
            "map" => vm.maps.push(parse_map(child, &cat)?),
            other => return Err(cat.err(format!("unknown element <{other}>"))),
        }
    }
    if vm.vcpus.is_empty() {
        return Err(at.err("a virtual machine needs at least one <vcpu>"));
    }
    Ok(vm)
}

fn parse_pd(
    doc: &Document<'_>,
    node: Node<'_, '_>,
    parent: Option<&str>,
    out: &mut Vec<ProtectionDomain>,
) -> Result<(), Error> {
    let at = At::of(
        doc,
        node,
        parent
            .map(|p| format!("protection_domain \"{p}\""))
            .as_deref()
            .unwrap_or(""),
    );
    let mut pd = pd_attributes(node, &at, parent)?;
    let here = format!("protection_domain \"{}\"", pd.name);
    let mut children = Vec::new();
    for child in elements(node) {
        let cat = At::of(doc, child, &here);
        match child.tag_name().name() {
            "program_image" => {
                let c = Attrs::new(child, &cat, &["path"])?;
                if !pd.program_image.is_empty() {
                    return Err(cat.err("second program_image"));
                }
                pd.program_image = c.req("path")?;
            }
            "map" => pd.maps.push(parse_map(child, &cat)?),
            "irq" => pd.irqs.push(parse_irq(child, &cat)?),
            "setvar" => {
                let c = Attrs::new(child, &cat, &["symbol", "region_paddr"])?;
                pd.setvars.push(SetVar {
                    symbol: c.req("symbol")?,
                    region_paddr: c.req("region_paddr")?,
                });
            }
            "protection_domain" => children.push(child),
            "virtual_machine" => {
                if pd.virtual_machine.is_some() {
                    return Err(cat.err("second <virtual_machine>"));
                }
                pd.virtual_machine = Some(parse_vm(doc, child, &cat)?);
            }
            other => return Err(cat.err(format!("unknown element <{other}>"))),
        }
    }
    if pd.program_image.is_empty() {
        return Err(at.err("missing <program_image>"));
    }
    let name = pd.name.clone();
    out.push(pd);
    for child in children {
        parse_pd(doc, child, Some(&name), out)?;
    }
    Ok(())
}

/// A `<map>` element of a PD.
fn parse_map(node: Node<'_, '_>, at: &At) -> Result<Map, Error> {
    let known = [
        "mr",
        "vaddr",
        "perms",
        "cached",
        "setvar_vaddr",
        "setvar_size",
    ];
    let c = Attrs::new(node, at, &known)?;
    let perms_s = c.str("perms").unwrap_or_else(|| "rw".into());
    let mut perms = Perms::default();
    for ch in perms_s.chars() {
        match ch {
            'r' => perms.read = true,
            'w' => perms.write = true,
            'x' => perms.execute = true,
            _ => {
                return Err(at.err(format!("perms \"{perms_s}\" may only hold r, w, x")));
            }
        }
    }
    Ok(Map {
        mr: c.req("mr")?,
        vaddr: c.req_num("vaddr")?,
        perms,
        cached: c.bool("cached", true)?,
        setvar_vaddr: c.str("setvar_vaddr"),
        setvar_size: c.str("setvar_size"),
    })
}

/// An `<irq>` element of a PD.
fn parse_irq(node: Node<'_, '_>, at: &At) -> Result<Irq, Error> {
    let c = Attrs::new(node, at, &["irq", "id", "trigger"])?;
    let trigger = c.str("trigger");
    if let Some(t) = trigger.as_deref().filter(|t| *t != "level" && *t != "edge") {
        return Err(at.err(format!("trigger \"{t}\" is not level or edge")));
    }
    let id = c
        .small("id", u64::from(MAX_CHANNEL_ID))?
        .ok_or_else(|| at.err("missing attribute \"id\""))?;
    Ok(Irq {
        irq: c.req_num("irq")?,
        id,
        trigger,
    })
}

fn parse_channel(doc: &Document<'_>, node: Node<'_, '_>, at: &At) -> Result<Channel, Error> {
    Attrs::new(node, at, &[])?;
    let mut ends = Vec::new();
    for child in elements(node) {
        let cat = At::of(doc, child, "channel");
        if child.tag_name().name() != "end" {
            return Err(cat.err(format!("unknown element <{}>", child.tag_name().name())));
        }
        let c = Attrs::new(child, &cat, &["pd", "id", "pp", "notify"])?;
        let id = c
            .small("id", u64::from(MAX_CHANNEL_ID))?
            .ok_or_else(|| cat.err("missing attribute \"id\""))?;
        ends.push(End {
            pd: c.req("pd")?,
            id,
            pp: c.bool("pp", false)?,
            notify: c.bool("notify", true)?,
        });
    }
    let ends: [End; 2] = ends
        .try_into()
        .map_err(|_| at.err("a channel needs exactly two <end>s"))?;
    if ends[0].pp && ends[1].pp {
        return Err(at.err("only one end of a channel may have pp"));
    }
    Ok(Channel { ends })
}

fn fail(element: String, message: String) -> Error {
    Error {
        line: 0,
        element,
        message,
    }
}

/// One PD's maps (the region exists, the vaddr is page-aligned, no wrap, no overlap) and
/// setvars (the region exists); `el` names the PD in errors.
fn check_maps(sys: &System, pd: &ProtectionDomain, el: &str) -> Result<(), Error> {
    check_map_list(sys, &pd.maps, el)?;
    if let Some(vm) = &pd.virtual_machine {
        check_map_list(
            sys,
            &vm.maps,
            &format!("{el} > virtual_machine \"{}\"", vm.name),
        )?;
    }
    for s in &pd.setvars {
        if sys.mr(&s.region_paddr).is_none() {
            return Err(fail(
                format!("{el} > setvar symbol=\"{}\"", s.symbol),
                format!("no memory region named \"{}\"", s.region_paddr),
            ));
        }
    }
    Ok(())
}

/// One address space's maps: region exists, aligned, no wrap, no overlap.
fn check_map_list(sys: &System, maps: &[Map], el: &str) -> Result<(), Error> {
    let mut spans: Vec<(u64, u64, &str)> = Vec::new();
    for m in maps {
        let mel = format!("{el} > map mr=\"{}\"", m.mr);
        let mr = sys
            .mr(&m.mr)
            .ok_or_else(|| fail(mel.clone(), format!("no memory region named \"{}\"", m.mr)))?;
        if !m.vaddr.is_multiple_of(mr.page_size) {
            return Err(fail(
                mel,
                format!(
                    "vaddr {:#x} is not aligned to the page size {:#x}",
                    m.vaddr, mr.page_size
                ),
            ));
        }
        let end = m
            .vaddr
            .checked_add(mr.size)
            .ok_or_else(|| fail(mel.clone(), "mapping wraps the address space".into()))?;
        if let Some((_, _, other)) = spans.iter().find(|(s, e, _)| m.vaddr < *e && *s < end) {
            return Err(fail(mel, format!("overlaps the map of \"{other}\"")));
        }
        spans.push((m.vaddr, end, &m.mr));
    }
    Ok(())
}

pub(crate) fn check(sys: &System) -> Result<(), Error> {
    let mut names = BTreeMap::new();
    for pd in &sys.pds {
        let el = format!("protection_domain \"{}\"", pd.name);
        if names.insert(pd.name.as_str(), pd).is_some() {
            return Err(fail(el, "duplicate protection domain name".into()));
        }
        check_maps(sys, pd, &el)?;
    }
    // Channel ids: unique per PD across IRQs, channels and child PD ids.
    let mut used: BTreeMap<String, BTreeMap<u8, String>> = BTreeMap::new();
    let mut claim = |pd: &str, id: u8, what: String| -> Result<(), Error> {
        if let Some(prev) = used
            .entry(pd.to_owned())
            .or_default()
            .insert(id, what.clone())
        {
            return Err(fail(
                format!("protection_domain \"{pd}\""),
                format!("channel id {id} used by both {prev} and {what}"),
            ));
        }
        Ok(())
    };
    for pd in &sys.pds {
        for irq in &pd.irqs {
            claim(&pd.name, irq.id, format!("irq {}", irq.irq))?;
        }
    }
    // A VMM's vCPU ids share the child-id space of its child PDs.
    let mut child_ids: BTreeMap<(&str, u8), String> = BTreeMap::new();
    for pd in &sys.pds {
        let mut mine: Vec<(&str, u8, String)> = Vec::new();
        if let (Some(parent), Some(id)) = (&pd.parent, pd.id) {
            mine.push((parent, id, format!("child \"{}\"", pd.name)));
        }
        for &v in pd.virtual_machine.iter().flat_map(|vm| &vm.vcpus) {
            mine.push((&pd.name, v, format!("vcpu {v}")));
        }
        for (parent, id, what) in mine {
            if let Some(prev) = child_ids.insert((parent, id), what.clone()) {
                return Err(fail(
                    format!("protection_domain \"{parent}\""),
                    format!("child id {id} used by both {prev} and {what}"),
                ));
            }
        }
    }
    for c in &sys.channels {
        for (i, e) in c.ends.iter().enumerate() {
            if !names.contains_key(e.pd.as_str()) {
                return Err(fail(
                    format!("channel > end pd=\"{}\"", e.pd),
                    "no protection domain of that name".into(),
                ));
            }
            claim(
                &e.pd,
                e.id,
                format!("the channel to \"{}\"", c.ends[1 - i].pd),
            )?;
        }
        if c.ends[0].pd == c.ends[1].pd {
            return Err(fail(
                format!("channel > end pd=\"{}\"", c.ends[0].pd),
                "a channel must join two different PDs".into(),
            ));
        }
    }
    Ok(())
}
