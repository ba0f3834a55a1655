// SPDX-License-Identifier: BSD-2-Clause
//! Writing a config blob into a named ELF section, in place: what sDDF does with
//! `objcopy --update-section`, without objcopy and without a list of sections to keep in step.
//!
//! The section must already exist (the component declares it with `lions_os::config!`), be
//! file-backed (`SHT_PROGBITS`: a `NOBITS` section has no bytes in the file to overwrite and would
//! be zero-filled at load time) and be exactly as large as the blob, so a layout mismatch between
//! the Rust struct and sdfgen's output is caught here rather than at run time.

use object::Endianness;
use object::FileKind;
use object::elf::{FileHeader32, FileHeader64, SHT_NOBITS, SHT_PROGBITS};
use object::read::elf::{FileHeader, SectionHeader};
use std::fmt;

/// Why a blob could not be written into a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The file is not an ELF object `object` can read.
    NotElf(String),
    /// No section of that name.
    Missing,
    /// More than one section of that name.
    Ambiguous(usize),
    /// The section has another type than `SHT_PROGBITS` (e.g. `SHT_NOBITS`).
    NotProgbits {
        /// Its `sh_type`.
        sh_type: u32,
    },
    /// Section and blob sizes differ.
    SizeMismatch {
        /// `sh_size`.
        section: u64,
        /// Blob length.
        blob: u64,
    },
    /// The section header points outside the file.
    OutOfFile {
        /// `sh_offset`.
        offset: u64,
        /// `sh_size`.
        size: u64,
        /// File length.
        file: u64,
    },
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf(e) => write!(f, "not a readable ELF file: {e}"),
            Self::Missing => write!(
                f,
                "no such section (does the binary declare it with `lions_os::config!`?)"
            ),
            Self::Ambiguous(n) => write!(f, "{n} sections have this name"),
            Self::NotProgbits { sh_type } => {
                let what = match *sh_type {
                    SHT_NOBITS => "SHT_NOBITS (no bytes in the file; zero-filled at load)",
                    _ => "not SHT_PROGBITS",
                };
                write!(f, "section type {sh_type:#x} is {what}")
            }
            Self::SizeMismatch { section, blob } => write!(
                f,
                "section is {section} bytes but the blob is {blob} bytes \
                 (the Rust config struct and sdfgen's output disagree)"
            ),
            Self::OutOfFile { offset, size, file } => write!(
                f,
                "section bytes {offset:#x} + {size:#x} lie outside the {file}-byte file"
            ),
        }
    }
}

impl std::error::Error for PatchError {}

/// A section's place in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionInfo {
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_offset`: first byte in the file.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
}

/// Find section `name` in ELF file `data` (32- or 64-bit, either endianness).
pub fn find_section(data: &[u8], name: &str) -> Result<SectionInfo, PatchError> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => find_in::<FileHeader64<Endianness>>(data, name),
        Ok(FileKind::Elf32) => find_in::<FileHeader32<Endianness>>(data, name),
        Ok(kind) => Err(PatchError::NotElf(format!("file kind is {kind:?}"))),
        Err(e) => Err(PatchError::NotElf(e.to_string())),
    }
}

fn find_in<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    name: &str,
) -> Result<SectionInfo, PatchError> {
    let not_elf = |e: object::Error| PatchError::NotElf(e.to_string());
    let header = Elf::parse(data).map_err(not_elf)?;
    let endian = header.endian().map_err(not_elf)?;
    let sections = header.sections(endian, data).map_err(not_elf)?;
    let mut found = sections
        .iter()
        .filter(|s| sections.section_name(endian, s) == Ok(name.as_bytes()));
    let Some(section) = found.next() else {
        return Err(PatchError::Missing);
    };
    let more = found.count();
    if more > 0 {
        return Err(PatchError::Ambiguous(more + 1));
    }
    Ok(SectionInfo {
        sh_type: section.sh_type(endian),
        offset: section.sh_offset(endian).into(),
        size: section.sh_size(endian).into(),
    })
}

/// Overwrite the bytes of section `name` in ELF file `data` with `blob`.
pub fn write_section(data: &mut [u8], name: &str, blob: &[u8]) -> Result<(), PatchError> {
    let s = find_section(data, name)?;
    if s.sh_type != SHT_PROGBITS {
        return Err(PatchError::NotProgbits { sh_type: s.sh_type });
    }
    let blob_len = blob.len() as u64;
    if s.size != blob_len {
        return Err(PatchError::SizeMismatch {
            section: s.size,
            blob: blob_len,
        });
    }
    let file_len = data.len() as u64;
    let range = s
        .offset
        .checked_add(s.size)
        .filter(|&end| end <= file_len)
        .and_then(|end| Some(usize::try_from(s.offset).ok()?..usize::try_from(end).ok()?));
    let Some(range) = range else {
        return Err(PatchError::OutOfFile {
            offset: s.offset,
            size: s.size,
            file: file_len,
        });
    };
    data[range].copy_from_slice(blob);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lions_os::DeviceResources;

    // This test binary carries a real config section, declared as a component would.
    lions_os::config!(static PROBE: DeviceResources = ".device_resources");

    fn me() -> Vec<u8> {
        // Keep the static (and so its section) referenced.
        assert!(PROBE.get().is_err(), "never patched in the test binary");
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn config_sections_are_progbits_of_the_struct_size() {
        let elf = me();
        let s = find_section(&elf, ".device_resources").unwrap();
        assert_eq!(s.sh_type, SHT_PROGBITS);
        assert_eq!(s.size, size_of::<DeviceResources>() as u64);
    }

    #[test]
    fn writes_the_section_bytes_and_nothing_else() {
        let mut elf = me();
        let before = elf.clone();
        let s = find_section(&elf, ".device_resources").unwrap();
        let blob: Vec<u8> = (0..1608u32)
            .map(|i| u8::try_from(i % 251).unwrap() + 1)
            .collect();
        write_section(&mut elf, ".device_resources", &blob).unwrap();
        let lo = usize::try_from(s.offset).unwrap();
        let hi = lo + usize::try_from(s.size).unwrap();
        assert_eq!(&elf[lo..hi], &blob[..]);
        assert_eq!(&elf[..lo], &before[..lo]);
        assert_eq!(&elf[hi..], &before[hi..]);
    }

    #[test]
    fn missing_section() {
        let mut elf = me();
        assert_eq!(
            write_section(&mut elf, ".serial_client_config", &[0; 88]),
            Err(PatchError::Missing)
        );
    }

    #[test]
    fn size_mismatch() {
        let mut elf = me();
        let e = write_section(&mut elf, ".device_resources", &[0; 1600]).unwrap_err();
        assert_eq!(
            e,
            PatchError::SizeMismatch {
                section: 1608,
                blob: 1600
            }
        );
        assert!(e.to_string().contains("1608") && e.to_string().contains("1600"));
    }

    #[test]
    fn nobits_is_refused() {
        let mut elf = me();
        let s = find_section(&elf, ".bss").unwrap();
        assert_eq!(s.sh_type, SHT_NOBITS);
        let blob = vec![0; usize::try_from(s.size).unwrap()];
        let e = write_section(&mut elf, ".bss", &blob).unwrap_err();
        assert_eq!(
            e,
            PatchError::NotProgbits {
                sh_type: SHT_NOBITS
            }
        );
        assert!(e.to_string().contains("SHT_NOBITS"));
    }

    #[test]
    fn not_elf() {
        assert!(matches!(
            write_section(&mut [0u8; 64], ".x", &[]),
            Err(PatchError::NotElf(_))
        ));
    }
}
