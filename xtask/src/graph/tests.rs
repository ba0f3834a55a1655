// SPDX-License-Identifier: BSD-2-Clause
//! Tests of the SVG drawing: well-formed, complete, priorities, every sdfgen fixture, labels apart.
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
            std::fs::write(std::path::Path::new(&out).join(format!("{name}.svg")), &svg).unwrap();
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
