// SPDX-License-Identifier: BSD-2-Clause
//! Inspection of a seL4 Microkit PD image: what the Microkit tool needs from an ELF, checked
//! before the tool sees it (and in CI, where there is no SDK).
//!
//! [`PdElf::check`] reports, as sentences:
//!
//! - an ELF64 little-endian AArch64 executable with its entry point inside an executable loadable
//!   segment;
//! - a symbol table (`.symtab`: the tool reads symbols from it; a stripped PD cannot be patched);
//! - the six symbols the tool writes ([`MICROKIT_SYMBOLS`]), each defined once, with its size,
//!   inside a loadable segment;
//! - every `setvar` symbol of the system description defined once, 8 bytes, loaded;
//! - no two loadable segments sharing a 4 KiB page (the tool maps segments page by page);
//! - every config section the build writes present, file-backed (`SHT_PROGBITS`), of its struct's
//!   size and loaded from the file (inside a segment's file bytes).

use object::elf::{EM_AARCH64, ET_EXEC, FileHeader64, PF_X, PT_LOAD, SHT_PROGBITS, SHT_SYMTAB};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::{Endianness, FileKind};

/// The symbols the Microkit tool patches, with their sizes in bytes.
pub const MICROKIT_SYMBOLS: [(&str, u64); 6] = [
    ("microkit_name", 64),
    ("microkit_passive", 1),
    ("microkit_irqs", 8),
    ("microkit_notifications", 8),
    ("microkit_pps", 8),
    ("microkit_ioports", 8),
];

/// Size of a `setvar` symbol.
pub const SETVAR_SIZE: u64 = 8;

/// The page size the tool maps segments with.
pub const PAGE: u64 = 0x1000;

/// A loadable segment (`PT_LOAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_flags` (`PF_R`, `PF_W`, `PF_X`).
    pub flags: u32,
}

impl Segment {
    fn contains(&self, addr: u64, size: u64, in_file: bool) -> bool {
        let len = if in_file { self.filesz } else { self.memsz };
        addr >= self.vaddr
            && addr
                .checked_add(size)
                .zip(self.vaddr.checked_add(len))
                .is_some_and(|(end, seg_end)| end <= seg_end)
    }

    /// First and last page it touches (`None` when empty).
    fn pages(&self) -> Option<(u64, u64)> {
        let last = self.vaddr.checked_add(self.memsz.checked_sub(1)?)?;
        Some((self.vaddr / PAGE, last / PAGE))
    }
}

/// A section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name.
    pub name: String,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_size`.
    pub size: u64,
}

/// A defined symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Name.
    pub name: String,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
}

/// What the checks need from one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdElf {
    /// `e_machine`.
    pub machine: u16,
    /// `e_type`.
    pub file_type: u16,
    /// `e_entry`.
    pub entry: u64,
    /// Loadable segments, in file order.
    pub segments: Vec<Segment>,
    /// Sections, in file order.
    pub sections: Vec<Section>,
    /// Whether a `SHT_SYMTAB` section exists.
    pub has_symtab: bool,
    /// Defined symbols from `.symtab` (none without one).
    pub symbols: Vec<Symbol>,
}

/// Text, data and bss bytes of an image, from its segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// File bytes of executable segments (code and read-only data).
    pub text: u64,
    /// File bytes of the other segments (initialised data, config sections).
    pub data: u64,
    /// Zero-filled bytes (`p_memsz - p_filesz`).
    pub bss: u64,
}

/// What the system and the build expect of one PD image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// `setvar_vaddr`, `setvar_size` and `<setvar symbol=...>` names for this PD.
    pub setvars: Vec<String>,
    /// Config sections and the size of their struct (the blob size).
    pub sections: Vec<(String, u64)>,
}

impl PdElf {
    /// Read the headers, segments, sections and symbols of an ELF64 file.
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        match FileKind::parse(data) {
            Ok(FileKind::Elf64) => {}
            Ok(kind) => return Err(format!("not an ELF64 file ({kind:?})")),
            Err(e) => return Err(format!("not an ELF file: {e}")),
        }
        let e = |e: object::Error| e.to_string();
        let header = FileHeader64::<Endianness>::parse(data).map_err(e)?;
        let endian = header.endian().map_err(e)?;
        let segments = header
            .program_headers(endian, data)
            .map_err(e)?
            .iter()
            .filter(|p| p.p_type(endian) == PT_LOAD)
            .map(|p| Segment {
                vaddr: p.p_vaddr(endian),
                memsz: p.p_memsz(endian),
                filesz: p.p_filesz(endian),
                flags: p.p_flags(endian),
            })
            .collect();
        let table = header.sections(endian, data).map_err(e)?;
        let sections = table
            .iter()
            .map(|s| Section {
                name: String::from_utf8_lossy(table.section_name(endian, s).unwrap_or_default())
                    .into_owned(),
                sh_type: s.sh_type(endian),
                addr: s.sh_addr(endian),
                size: s.sh_size(endian),
            })
            .collect();
        let has_symtab = table.iter().any(|s| s.sh_type(endian) == SHT_SYMTAB);
        let symtab = table.symbols(endian, data, SHT_SYMTAB).map_err(e)?;
        let symbols = symtab
            .iter()
            .filter(|s| !s.is_undefined(endian))
            .filter_map(|s| {
                let name = symtab.symbol_name(endian, s).ok()?;
                Some(Symbol {
                    name: String::from_utf8_lossy(name).into_owned(),
                    value: s.st_value(endian),
                    size: s.st_size(endian),
                })
            })
            .filter(|s| !s.name.is_empty())
            .collect();
        Ok(Self {
            machine: header.e_machine(endian),
            file_type: header.e_type(endian),
            entry: header.e_entry(endian),
            segments,
            sections,
            has_symtab,
            symbols,
        })
    }

    /// Every definition of symbol `name`.
    pub fn symbol(&self, name: &str) -> Vec<&Symbol> {
        self.symbols.iter().filter(|s| s.name == name).collect()
    }

    /// Text, data and bss bytes.
    pub fn sizes(&self) -> Sizes {
        self.segments.iter().fold(Sizes::default(), |mut s, seg| {
            if seg.flags & PF_X != 0 {
                s.text += seg.filesz;
            } else {
                s.data += seg.filesz;
            }
            s.bss += seg.memsz.saturating_sub(seg.filesz);
            s
        })
    }

    fn loaded(&self, addr: u64, size: u64, in_file: bool) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|seg| seg.contains(addr, size, in_file))
    }

    /// Every problem that would stop the Microkit tool or the PD, as sentences (empty: none).
    pub fn check(&self, expect: &Expect) -> Vec<String> {
        let mut problems = Vec::new();
        if self.machine != EM_AARCH64 {
            problems.push(format!(
                "machine is {} (e_machine), not AArch64 ({EM_AARCH64})",
                self.machine
            ));
        }
        if self.file_type != ET_EXEC {
            problems.push(format!(
                "file type is {} (e_type), not an executable ({ET_EXEC})",
                self.file_type
            ));
        }
        if self.entry == 0 {
            problems.push("entry point is not set (e_entry = 0)".into());
        } else if !self
            .segments
            .iter()
            .any(|s| s.flags & PF_X != 0 && s.contains(self.entry, 4, true))
        {
            problems.push(format!(
                "entry point {:#x} is not in an executable loadable segment",
                self.entry
            ));
        }
        self.check_segments(&mut problems);
        if !self.has_symtab {
            problems.push(
                "no symbol table (.symtab): the Microkit tool cannot patch a stripped image".into(),
            );
        }
        let setvars = expect.setvars.iter().map(|s| (s.as_str(), SETVAR_SIZE));
        for (name, size) in MICROKIT_SYMBOLS.into_iter().chain(setvars) {
            self.check_symbol(name, size, &mut problems);
        }
        for (name, size) in &expect.sections {
            self.check_section(name, *size, &mut problems);
        }
        problems
    }

    fn check_segments(&self, problems: &mut Vec<String>) {
        if self.segments.is_empty() {
            problems.push("no loadable segment".into());
        }
        for (i, a) in self.segments.iter().enumerate() {
            for b in &self.segments[i + 1..] {
                if let (Some((a0, a1)), Some((b0, b1))) = (a.pages(), b.pages())
                    && a0 <= b1
                    && b0 <= a1
                {
                    problems.push(format!(
                        "loadable segments at {:#x} (+{:#x}) and {:#x} (+{:#x}) share a 4 KiB \
                         page (the Microkit tool maps segments page by page)",
                        a.vaddr, a.memsz, b.vaddr, b.memsz
                    ));
                }
            }
        }
    }

    fn check_symbol(&self, name: &str, size: u64, problems: &mut Vec<String>) {
        match self.symbol(name).as_slice() {
            [] => problems.push(format!("symbol `{name}` is missing")),
            [s] if s.size != size => problems.push(format!(
                "symbol `{name}` is {} bytes, must be {size}",
                s.size
            )),
            [s] if self.loaded(s.value, s.size, false).is_none() => problems.push(format!(
                "symbol `{name}` at {:#x} is not inside a loadable segment",
                s.value
            )),
            [_] => {}
            more => problems.push(format!(
                "symbol `{name}` is defined {} times, must be unique",
                more.len()
            )),
        }
    }

    fn check_section(&self, name: &str, size: u64, problems: &mut Vec<String>) {
        let found: Vec<&Section> = self.sections.iter().filter(|s| s.name == name).collect();
        let s = match found.as_slice() {
            [] => return problems.push(format!("config section `{name}` is missing")),
            [s] => *s,
            more => {
                return problems.push(format!(
                    "config section `{name}` exists {} times",
                    more.len()
                ));
            }
        };
        if s.sh_type != SHT_PROGBITS {
            problems.push(format!(
                "config section `{name}` has type {:#x}, not SHT_PROGBITS",
                s.sh_type
            ));
        }
        if s.size != size {
            problems.push(format!(
                "config section `{name}` is {} bytes, its struct is {size}",
                s.size
            ));
        }
        if self.loaded(s.addr, s.size, true).is_none() {
            problems.push(format!(
                "config section `{name}` at {:#x} is not loaded from the file (outside every \
                 segment's file bytes)",
                s.addr
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(vaddr: u64, memsz: u64, flags: u32) -> Segment {
        Segment {
            vaddr,
            memsz,
            filesz: memsz,
            flags,
        }
    }

    fn pd() -> PdElf {
        let sym = |name: &str, value, size| Symbol {
            name: name.into(),
            value,
            size,
        };
        let mut symbols: Vec<Symbol> = MICROKIT_SYMBOLS
            .iter()
            .enumerate()
            .map(|(i, (n, s))| sym(n, 0x20_1000 + 64 * i as u64, *s))
            .collect();
        symbols.push(sym("buffer_vaddr", 0x20_1800, 8));
        PdElf {
            machine: EM_AARCH64,
            file_type: ET_EXEC,
            entry: 0x20_0000,
            segments: vec![seg(0x20_0000, 0x800, PF_X | 4), seg(0x20_1000, 0x1000, 6)],
            sections: vec![Section {
                name: ".device_resources".into(),
                sh_type: SHT_PROGBITS,
                addr: 0x20_1a00,
                size: 0x100,
            }],
            has_symtab: true,
            symbols,
        }
    }

    fn expect() -> Expect {
        Expect {
            setvars: vec!["buffer_vaddr".into()],
            sections: vec![(".device_resources".into(), 0x100)],
        }
    }

    #[test]
    fn a_good_image_has_no_problems() {
        assert_eq!(pd().check(&expect()), Vec::<String>::new());
        let s = pd().sizes();
        assert_eq!((s.text, s.data, s.bss), (0x800, 0x1000, 0));
    }

    #[test]
    fn each_rule_is_reported() {
        let one = |f: &dyn Fn(&mut PdElf), e: &Expect| {
            let mut p = pd();
            f(&mut p);
            let problems = p.check(e);
            assert_eq!(problems.len(), 1, "{problems:?}");
            problems[0].clone()
        };
        let e = expect();
        assert!(one(&|p| p.segments[1].vaddr = 0x20_0fff, &e).contains("share a 4 KiB page"));
        assert!(one(&|p| p.entry = 0, &e).contains("entry point is not set"));
        assert!(one(&|p| p.entry = 0x20_1000, &e).contains("not in an executable"));
        assert!(one(&|p| p.has_symtab = false, &e).contains("no symbol table"));
        assert!(one(&|p| p.symbols[1].size = 8, &e).contains("`microkit_passive` is 8 bytes"));
        assert!(one(&|p| p.symbols[6].size = 4, &e).contains("`buffer_vaddr` is 4 bytes"));
        assert!(
            one(&|p| p.symbols[0].name = "x".into(), &e).contains("`microkit_name` is missing")
        );
        assert!(one(&|p| p.symbols.push(p.symbols[2].clone()), &e).contains("defined 2 times"));
        assert!(one(&|p| p.symbols[3].value = 0x30_0000, &e).contains("not inside a loadable"));
        assert!(one(&|p| p.sections[0].size = 0x10, &e).contains("its struct is 256"));
        assert!(one(&|p| p.sections[0].sh_type = 8, &e).contains("not SHT_PROGBITS"));
        assert!(one(&|p| p.segments[1].filesz = 0x100, &e).contains("not loaded from the file"));
        assert!(one(&|p| p.machine = 62, &e).contains("not AArch64"));
        let mut more = expect();
        more.sections.push((".serial_client_config".into(), 8));
        assert!(one(&|_| {}, &more).contains("`.serial_client_config` is missing"));
    }

    #[test]
    fn a_host_binary_is_not_a_pd() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let problems = PdElf::parse(&me).unwrap().check(&Expect::default());
        assert!(
            problems.iter().any(|p| p.contains("not AArch64")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`microkit_irqs` is missing"))
        );
        assert!(PdElf::parse(b"#!/bin/sh\n").is_err());
    }
}
