// SPDX-License-Identifier: BSD-2-Clause
#![allow(clippy::unwrap_used)]

use super::*;

const GOOD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="shared" size="0x2000" />
    <memory_region name="uart" size="0x1000" phys_addr="0x9000000" />
    <protection_domain name="a" priority="100" stack_size="0x2000" cpu="1">
        <program_image path="a.elf" />
        <map mr="shared" vaddr="0x4000000" perms="rw" cached="true" setvar_vaddr="buf" />
        <map mr="uart" vaddr="0x5000000" perms="rw" cached="false" />
        <irq irq="33" id="5" trigger="level" />
        <protection_domain name="child" id="1">
            <program_image path="child.elf" />
        </protection_domain>
    </protection_domain>
    <protection_domain name="b" priority="99" passive="true">
        <program_image path="b.elf" />
        <map mr="shared" vaddr="0x6000000" perms="r" />
    </protection_domain>
    <channel>
        <end pd="a" id="0" />
        <end pd="b" id="3" pp="true" />
    </channel>
</system>"#;

#[test]
fn parses_sdfgen_shape() {
    let s = System::parse(GOOD).unwrap();
    assert_eq!(s.mr("shared").unwrap().size, 0x2000);
    assert_eq!(s.mr("uart").unwrap().phys_addr, Some(0x900_0000));
    let a = s.pd("a").unwrap();
    assert_eq!(
        (a.priority, a.stack_size, a.cpu, a.passive),
        (100, Some(0x2000), Some(1), false)
    );
    assert_eq!(
        a.map_of("shared").unwrap().setvar_vaddr.as_deref(),
        Some("buf")
    );
    assert!(!a.map_of("uart").unwrap().cached);
    assert_eq!(
        a.irqs,
        vec![Irq {
            irq: 33,
            id: 5,
            trigger: Some("level".into())
        }]
    );
    let b = s.pd("b").unwrap();
    assert!(b.passive);
    assert_eq!(
        b.maps[0].perms,
        Perms {
            read: true,
            write: false,
            execute: false
        }
    );
    assert_eq!(s.pd("child").unwrap().parent.as_deref(), Some("a"));
    assert_eq!(s.channel_id("a", "b"), Some(0));
    assert_eq!(s.channel_id("b", "a"), Some(3));
    assert_eq!(s.channels_of("b").next().map(|(me, _)| me.pp), Some(true));
    let (m, mr) = a.map_at(&s, 0x4001234).unwrap();
    assert_eq!((m.mr.as_str(), mr.size), ("shared", 0x2000));
    assert!(a.map_at(&s, 0x4002000).is_none());
}

fn err_of(xml: &str) -> Error {
    System::parse(xml).unwrap_err()
}

fn variant(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "test typo: {from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn rejects_bad_descriptions_naming_the_element() {
    let cases = [
        (
            variant(
                r#"mr="shared" vaddr="0x4000000""#,
                r#"mr="nope" vaddr="0x4000000""#,
            ),
            "map mr=\"nope\"",
            "no memory region",
        ),
        (
            variant(r#"vaddr="0x5000000""#, r#"vaddr="0x4001000""#),
            "map mr=\"uart\"",
            "overlaps",
        ),
        (
            variant(r#"vaddr="0x5000000""#, r#"vaddr="0x5000010""#),
            "map mr=\"uart\"",
            "aligned",
        ),
        (
            variant(r#"id="5""#, r#"id="0""#),
            "protection_domain \"a\"",
            "channel id 0 used by both",
        ),
        (
            variant(r#"<end pd="b" id="3""#, r#"<end pd="b" id="63""#),
            "channel > end",
            "exceeds 62",
        ),
        (
            variant(r#"<end pd="b""#, r#"<end pd="zz""#),
            "end pd=\"zz\"",
            "no protection domain",
        ),
        (
            variant(r#"priority="99""#, r#"priority="255""#),
            "protection_domain name=\"b\"",
            "exceeds 254",
        ),
        (
            variant(r#"perms="r""#, r#"perms="rq""#),
            "map mr=\"shared\"",
            "may only hold",
        ),
        (
            variant(r#"size="0x2000""#, r#"size="0x2001""#),
            "memory_region name=\"shared\"",
            "multiple of the page size",
        ),
        (
            variant(r#"cached="false""#, r#"cached="no""#),
            "map mr=\"uart\"",
            "not true or false",
        ),
        (
            variant(r#"stack_size="0x2000""#, r#"stack_sz="0x2000""#),
            "protection_domain name=\"a\"",
            "unknown attribute",
        ),
        (
            variant("<channel>", "<chanel>").replace("</channel>", "</chanel>"),
            "chanel",
            "unknown element",
        ),
        (
            variant(r#"name="b""#, r#"name="a""#),
            "protection_domain \"a\"",
            "duplicate",
        ),
        (
            variant(
                r#"<memory_region name="uart""#,
                r#"<memory_region name="shared""#,
            ),
            "memory_region name=\"shared\"",
            "duplicate",
        ),
        (
            variant(r#"<program_image path="b.elf" />"#, ""),
            "protection_domain name=\"b\"",
            "missing <program_image>",
        ),
        (
            variant(r#"<end pd="a" id="0" />"#, ""),
            "channel",
            "exactly two",
        ),
        (
            variant(
                r#"<end pd="a" id="0" />"#,
                r#"<end pd="a" id="0" pp="true" />"#,
            ),
            "channel",
            "only one end",
        ),
        (
            variant(r#"size="0x2000""#, r#"size="lots""#),
            "memory_region",
            "not a number",
        ),
        (
            variant(r#"name="child" id="1""#, r#"name="child""#),
            "child",
            "needs an id",
        ),
        (variant("</system>", ""), "document", ""),
    ];
    for (xml, element, message) in cases {
        let e = err_of(&xml);
        assert!(
            e.element.contains(element),
            "element {element:?} not in {e}"
        );
        assert!(
            e.message.contains(message),
            "message {message:?} not in {e}"
        );
    }
}

#[test]
fn errors_carry_lines() {
    let e = err_of(&variant(r#"perms="r""#, r#"perms="z""#));
    assert_eq!(e.line, 16);
    assert!(
        e.to_string()
            .starts_with("line 16: protection_domain \"b\" > map mr=\"shared\"")
    );
}

const VM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="guest_ram" size="0x400000" page_size="0x200000" />
    <memory_region name="gic_vcpu" size="0x1000" phys_addr="0x8040000" />
    <protection_domain name="vmm" priority="100">
        <program_image path="vmm.elf" />
        <map mr="guest_ram" vaddr="0x20000000" perms="rw" />
        <virtual_machine name="linux" priority="99">
            <vcpu id="0" />
            <map mr="guest_ram" vaddr="0x40000000" perms="rwx" />
            <map mr="gic_vcpu" vaddr="0x8010000" perms="rw" cached="false" />
        </virtual_machine>
    </protection_domain>
</system>"#;

fn vm_variant(from: &str, to: &str) -> String {
    assert!(VM.contains(from), "test typo: {from}");
    VM.replacen(from, to, 1)
}

#[test]
fn parses_a_virtual_machine_and_checks_it() {
    let s = System::parse(VM).unwrap();
    let vm = s.pd("vmm").unwrap().virtual_machine.as_ref().unwrap();
    assert_eq!((vm.name.as_str(), vm.priority), ("linux", 99));
    assert_eq!(vm.vcpus, [0]);
    assert_eq!(vm.maps.len(), 2);
    assert_eq!(vm.maps[0].vaddr, 0x4000_0000);
    assert!(vm.maps[0].perms.execute && !vm.maps[1].cached);
    // The guest's maps are checked as a PD's are.
    let e = err_of(&vm_variant(
        r#"vaddr="0x40000000" perms="rwx""#,
        r#"vaddr="0x40001000" perms="rwx""#,
    ));
    assert!(e.message.contains("not aligned"), "{e}");
    let e = err_of(&vm_variant(
        r#"<vcpu id="0" />"#,
        r#"<vcpu id="0" /><vcpu id="0" />"#,
    ));
    assert!(e.message.contains("vcpu id 0 twice"), "{e}");
    let e = err_of(&vm_variant(r#"<vcpu id="0" />"#, ""));
    assert!(e.message.contains("at least one"), "{e}");
    let e = err_of(&vm_variant(
        r#"<vcpu id="0" />"#,
        r#"<vcpu id="0" /><bogus />"#,
    ));
    assert!(e.message.contains("unknown element <bogus>"), "{e}");
    // A vCPU id is a child id of the VMM: a child PD may not take it.
    let child = r#"</virtual_machine>
        <protection_domain name="c" id="0"><program_image path="c.elf" /></protection_domain>"#;
    let e = err_of(&vm_variant("</virtual_machine>", child));
    assert!(e.message.contains("child id 0"), "{e}");
}
