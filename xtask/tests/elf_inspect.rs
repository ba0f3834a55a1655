// SPDX-License-Identifier: BSD-2-Clause
//! Every PD of every example, built for `qemu_virt_aarch64` (seL4 Microkit, `aarch64-unknown-none`)
//! exactly as `cargo xtask build <ex> --board qemu_virt_aarch64` builds it, is an image the
//! Microkit tool accepts: no SDK needed. An example whose metaprogram refuses the board (one that
//! does not run on seL4 yet) is named with its reason on stderr; those of [`MUST_RUN`] must run.
//!
//! For each image: a symbol table; the six `microkit_*` symbols, unique, with their sizes, in a
//! loaded segment; every `setvar` symbol of the system description 8 bytes; no two loadable
//! segments in one 4 KiB page, the stack segment above an unmapped guard page; the entry point
//! set, at `_start`, in the text segment; every config
//! section present, `SHT_PROGBITS`, of its struct's size (the blob's), loaded from the file and
//! holding the blob. Then two images are damaged on purpose to show the checks catch it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write as _;
use xtask::cli::{Board, BuildArgs};
use xtask::elf::{MICROKIT_SYMBOLS, PdElf};
use xtask::patch::find_section;
use xtask::tasks::{Built, build, expectations};

/// The example built for `qemu_virt_aarch64`, or `None` (with the metaprogram's reason printed)
/// when its metaprogram refuses the board. Any later failure fails the test.
fn build_example(example: &str) -> Option<Built> {
    let args = BuildArgs {
        example: example.into(),
        board: Board::QemuVirtAarch64,
        release: false,
    };
    match build(&xtask::workspace_root(), &args) {
        Ok(built) => Some(built),
        Err(e @ xtask::Error::Failed { .. }) if e.to_string().starts_with("metaprogram ") => {
            // Straight to stderr, past the harness's capture.
            let _ = writeln!(
                std::io::stderr(),
                "elf_inspect: {example} is not built for qemu_virt_aarch64: {e}"
            );
            None
        }
        Err(e) => panic!("{example}: build for qemu_virt_aarch64: {e}"),
    }
}

fn check_image(built: &Built, system: &lions_sdf::System, pd: &xtask::assembly::Assembled) {
    let what = format!("{}", pd.image.display());
    let bytes = std::fs::read(&pd.image).unwrap();
    let elf = PdElf::parse(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let expect = expectations(system, pd);
    assert_eq!(elf.check(&expect), Vec::<String>::new(), "{what}");

    // The same facts, asserted directly.
    assert!(elf.has_symtab, "{what}: .symtab");
    for (name, size) in MICROKIT_SYMBOLS {
        let defs = elf.symbol(name);
        assert_eq!(defs.len(), 1, "{what}: {name}");
        assert_eq!(defs[0].size, size, "{what}: {name}");
    }
    let start = elf.symbol("_start");
    assert_eq!(start.len(), 1, "{what}: _start");
    assert_eq!(elf.entry, start[0].value, "{what}: entry is _start");
    assert_eq!(elf.entry, 0x20_0000, "{what}: entry at the image base");
    let mut pages = BTreeSet::new();
    for seg in &elf.segments {
        let first = seg.vaddr / 0x1000;
        let last = (seg.vaddr + seg.memsz - 1) / 0x1000;
        for page in first..=last {
            assert!(pages.insert(page), "{what}: page {page:#x} in two segments");
        }
    }
    // Text, data, and the stack above an unmapped guard page (zero-filled, nothing in the file).
    let [text, data, stack] = elf.segments[..] else {
        panic!("{what}: segments {:?}", elf.segments);
    };
    assert!(
        text.flags & 1 != 0 && data.flags & 2 != 0 && stack.flags & 2 != 0,
        "{what}"
    );
    assert_eq!(stack.filesz, 0, "{what}: stack is not in the file");
    assert!(
        stack.memsz >= 64 * 1024 && stack.memsz.is_multiple_of(0x1000),
        "{what}: stack of {:#x} bytes",
        stack.memsz
    );
    let data_end_page = (data.vaddr + data.memsz - 1) / 0x1000;
    assert!(
        stack.vaddr / 0x1000 >= data_end_page + 2,
        "{what}: no guard page below the stack"
    );
    for (section, size) in &pd.written {
        let s = find_section(&bytes, section).unwrap();
        assert_eq!(s.size, *size as u64, "{what}: {section}");
        let blob_name = &built_patch(built, &pd.pd, section);
        let blob = std::fs::read(built.out.join(blob_name)).unwrap();
        let lo = usize::try_from(s.offset).unwrap();
        assert_eq!(
            &bytes[lo..lo + blob.len()],
            &blob[..],
            "{what}: {section} holds its blob"
        );
    }
    let sizes = elf.sizes();
    assert!(sizes.text > 0 && sizes.data > 0, "{what}: {sizes:?}");
}

/// The blob file the assembly writes into `section` of PD `pd`.
fn built_patch(built: &Built, pd: &str, section: &str) -> String {
    let asm = xtask::assembly::Assembly::load(&built.out).unwrap();
    let pd = asm.pds.iter().find(|p| p.name == pd).unwrap();
    let patch = pd.patches.iter().find(|p| p.section == section).unwrap();
    patch.blob.clone()
}

/// Damage a copy of `bytes` and return the problems the check then reports.
fn problems_after(bytes: &[u8], damage: impl FnOnce(&mut Vec<u8>)) -> Vec<String> {
    let mut copy = bytes.to_vec();
    damage(&mut copy);
    PdElf::parse(&copy)
        .map(|elf| elf.check(&Default::default()))
        .unwrap_or_else(|e| vec![e])
}

fn position(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

/// The examples that run on seL4: their metaprograms must accept `qemu_virt_aarch64`.
const MUST_RUN: [&str; 7] = [
    "hello",
    "serial",
    "timer",
    "fileio",
    "echo_server",
    "i2c",
    "linux_vm",
];

#[test]
fn every_pd_of_every_example_is_a_valid_microkit_image() {
    let root = xtask::workspace_root();
    let examples = xtask::meta::examples(&root);
    assert!(
        MUST_RUN.iter().all(|e| examples.iter().any(|x| x == e)),
        "{examples:?}"
    );
    let mut images = 0;
    let mut damaged = false;
    for example in &examples {
        let Some(built) = build_example(example) else {
            assert!(
                !MUST_RUN.contains(&example.as_str()),
                "{example} runs on seL4: its metaprogram must accept qemu_virt_aarch64"
            );
            continue;
        };
        let system = lions_sdf::System::load(&built.system).unwrap();
        let names: BTreeSet<&str> = built.images.iter().map(|i| i.pd.as_str()).collect();
        let in_system: BTreeSet<&str> = system.pds.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, in_system, "{example}: an image for every PD");
        for pd in &built.images {
            let file = pd.image.file_name().unwrap().to_str().unwrap();
            assert_eq!(
                system.pd(&pd.pd).unwrap().program_image,
                file,
                "{example}: {}",
                pd.pd
            );
            check_image(&built, &system, pd);
            images += 1;
        }
        if !damaged {
            damaged = true;
            let bytes = std::fs::read(&built.images[0].image).unwrap();
            // A renamed symbol is a missing one.
            let strtab = find_section(&bytes, ".strtab").unwrap();
            let p = problems_after(&bytes, |b| {
                let lo = usize::try_from(strtab.offset).unwrap();
                let hi = lo + usize::try_from(strtab.size).unwrap();
                let at = lo + position(&b[lo..hi], b"\0microkit_pps\0");
                b[at + 12] = b'X';
            });
            assert_eq!(p, vec!["symbol `microkit_pps` is missing".to_owned()]);
            // e_entry (offset 24 in an ELF64 header) cleared.
            let p = problems_after(&bytes, |b| b[24..32].fill(0));
            assert_eq!(p, vec!["entry point is not set (e_entry = 0)".to_owned()]);
        }
    }
    assert!(images >= 11, "{images} images");
}
