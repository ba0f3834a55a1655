// SPDX-License-Identifier: BSD-2-Clause
//! The partition-table reader on built images: GPT (both sector sizes, each copy corrupted in
//! turn, CRCs, disagreeing copies), MBR (alignment, bounds, empty entries), and property tests:
//! arbitrary bytes and mutated GPT disks never make it panic, and whatever it returns lies
//! inside the disk.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::*;
use lions_blk::partition::{Extent, MAX_PARTITIONS, PartitionError, PartitionTable, Scheme, crc32};
use proptest::prelude::*;

const MIB: usize = 1 << 20;

/// Read the table of `img` with a `window`-byte buffer, counting the reads.
fn table_with(
    img: &[u8],
    ss: u16,
    window: usize,
) -> (Result<PartitionTable, PartitionError>, usize) {
    let mut buf = vec![0u8; window];
    let mut reads = 0;
    let blocks = (img.len() / 4096) as u64;
    let t = read_table(ss, blocks, &mut buf, |offset, out| {
        reads += 1;
        let start = usize::try_from(offset).unwrap();
        match img.get(start..start + out.len()) {
            Some(src) => {
                out.copy_from_slice(src);
                true
            }
            None => false,
        }
    });
    (t, reads)
}

fn table(img: &[u8], ss: u16) -> Result<PartitionTable, PartitionError> {
    table_with(img, ss, 40 * 1024).0
}

/// Two partitions at 1 MiB and 3 MiB of a 8 MiB disk, for `ss`-byte sectors.
fn two_parts(ss: usize) -> Vec<(u64, u64)> {
    let s = |bytes: usize| (bytes / ss) as u64;
    vec![(s(MIB), s(3 * MIB) - 1), (s(3 * MIB), s(7 * MIB) - 1)]
}

fn expect_two(t: &PartitionTable) {
    assert_eq!(
        t.get(0),
        Some(Extent {
            start: 256,
            blocks: 512
        })
    );
    assert_eq!(
        t.get(1),
        Some(Extent {
            start: 768,
            blocks: 1024
        })
    );
    assert_eq!(t.get(2), None);
    assert_eq!(t.get(u32::MAX), None);
}

#[test]
fn crc32_check_value() {
    // The catalogue check value of CRC-32/ISO-HDLC.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn gpt_with_512_and_4096_byte_sectors() {
    for ss in [512usize, 4096] {
        let img = gpt_image(ss, 8 * MIB, &two_parts(ss));
        let (t, reads) = table_with(&img, ss as u16, 40 * 1024);
        let t = t.unwrap();
        assert_eq!(
            t.scheme,
            Scheme::Gpt {
                primary: true,
                backup: true
            },
            "ss {ss}"
        );
        expect_two(&t);
        // MBR, primary header and array, backup header and array.
        assert_eq!(reads, 5);
    }
}

/// Corrupting one byte of a copy invalidates exactly that copy; the other one still serves.
#[test]
fn one_corrupt_copy_falls_back_to_the_other() {
    let l = GptLayout::new(512, 8 * MIB);
    let clean = gpt_image(512, 8 * MIB, &two_parts(512));
    let cases = [
        (
            l.at(1),
            Scheme::Gpt {
                primary: false,
                backup: true,
            },
        ), // signature
        (
            l.at(1) + 40,
            Scheme::Gpt {
                primary: false,
                backup: true,
            },
        ), // header field, CRC stale
        (
            l.at(2) + 40,
            Scheme::Gpt {
                primary: false,
                backup: true,
            },
        ), // primary array
        (
            l.at(l.last()) + 48,
            Scheme::Gpt {
                primary: true,
                backup: false,
            },
        ), // backup header
        (
            l.at(l.backup_array()) + 33,
            Scheme::Gpt {
                primary: true,
                backup: false,
            },
        ), // backup array
    ];
    for (at, scheme) in cases {
        let mut img = clean.clone();
        img[at] ^= 0x10;
        let t = table(&img, 512).unwrap();
        assert_eq!(t.scheme, scheme, "byte {at:#x}");
        expect_two(&t);
    }
}

#[test]
fn both_copies_corrupt_is_no_table() {
    let l = GptLayout::new(512, 8 * MIB);
    let mut img = gpt_image(512, 8 * MIB, &two_parts(512));
    img[l.at(1) + 16] ^= 1; // primary header CRC
    img[l.at(l.backup_array())] ^= 1; // backup array (its CRC no longer matches)
    assert_eq!(table(&img, 512), Err(PartitionError::NoValidGpt));
}

/// A header edited and resealed with a correct CRC is accepted only when everything it says
/// passes the other checks.
#[test]
fn header_fields_are_checked_beyond_the_crc() {
    let l = GptLayout::new(512, 8 * MIB);
    let clean = gpt_image(512, 8 * MIB, &two_parts(512));
    let edits: [(usize, u64); 6] = [
        (24, 5),                   // MyLBA is not where it was read
        (48, l.sectors),           // LastUsableLBA past the disk
        (40, l.last_usable() + 1), // FirstUsable > LastUsable
        (72, l.sectors - 2),       // array runs past the disk
        (84, 100),                 // entry size not 128 × 2^n
        (12, 600),                 // HeaderSize above the sector
    ];
    for (field, value) in edits {
        for lba in [1, l.last()] {
            let mut img = clean.clone();
            let h = &mut img[l.at(lba)..][..512];
            let width = if matches!(field, 12 | 84) { 4 } else { 8 };
            h[field..field + width].copy_from_slice(&value.to_le_bytes()[..width]);
            seal_header(h);
            let t = table(&img, 512).unwrap();
            let expect = Scheme::Gpt {
                primary: lba != 1,
                backup: lba == 1,
            };
            assert_eq!(t.scheme, expect, "field {field} at LBA {lba}");
            expect_two(&t);
        }
    }
}

#[test]
fn valid_copies_that_disagree_are_refused() {
    let l = GptLayout::new(512, 8 * MIB);
    let mut img = gpt_image(512, 8 * MIB, &two_parts(512));
    let h = &mut img[l.at(l.last())..][..512];
    h[56] ^= 0xff; // another disk GUID, resealed: valid on its own
    seal_header(h);
    assert_eq!(table(&img, 512), Err(PartitionError::GptMismatch));
}

#[test]
fn gpt_entries_outside_the_usable_range_or_misaligned_are_absent() {
    let l = GptLayout::new(512, 8 * MIB);
    let parts = [
        (l.first_usable() - 1, 4000), // starts in the primary array
        (4096, l.last_usable() + 1),  // ends in the backup array
        (4097, 6000),                 // not on a 4 KiB boundary
        (5000, 4999),                 // ends before it starts
        (2048, 2048 + 6),             // less than one 4 KiB block
        (2048, 2048 + 8 + 6),         // one block and a bit: cut to one
    ];
    let t = table(&gpt_image(512, 8 * MIB, &parts), 512).unwrap();
    for i in 0..5 {
        assert_eq!(t.get(i), None, "entry {i}");
    }
    assert_eq!(
        t.get(5),
        Some(Extent {
            start: 256,
            blocks: 1
        })
    );
}

#[test]
fn array_larger_than_the_window_invalidates_its_copy() {
    // The 16 KiB array starts 1 KiB into block 0: 17 KiB from the block boundary.
    let img = gpt_image(512, 8 * MIB, &two_parts(512));
    assert_eq!(
        table_with(&img, 512, 16 * 1024).0,
        Err(PartitionError::NoValidGpt)
    );
    let (t, _) = table_with(&img, 512, 17 * 1024);
    expect_two(&t.unwrap());
    assert_eq!(
        table_with(&img, 512, 4095).0,
        Err(PartitionError::BufferTooSmall)
    );
}

#[test]
fn mbr_partitions() {
    let img = mbr_image(
        8 * MIB,
        &[
            (0x83, 2048, 4096),  // 1 MiB at 1 MiB
            (0x0c, 6144, 8199),  // 4 MiB + 7 sectors: the tail is cut
            (0x83, 100, 800),    // not 4 KiB aligned
            (0x83, 16000, 4000), // past the end of the disk
        ],
    );
    let t = table(&img, 512).unwrap();
    assert_eq!(t.scheme, Scheme::Mbr);
    assert_eq!(
        t.get(0),
        Some(Extent {
            start: 256,
            blocks: 512
        })
    );
    assert_eq!(
        t.get(1),
        Some(Extent {
            start: 768,
            blocks: 1024
        })
    );
    assert_eq!(t.get(2), None);
    assert_eq!(t.get(3), None);
    assert_eq!(t.get(4), None, "an MBR has four entries");
    let empty = mbr_image(MIB, &[(0, 2048, 8), (0x83, 8, 8)]);
    let t = table(&empty, 512).unwrap();
    assert_eq!(t.get(0), None, "type 0 is unused");
    assert_eq!(
        t.get(1),
        Some(Extent {
            start: 1,
            blocks: 1
        })
    );
}

#[test]
fn overlapping_partitions_and_partitions_over_the_table_are_refused() {
    // Partition 1 starts inside partition 0 (their clients would share blocks 300..512).
    let img = mbr_image(8 * MIB, &[(0x83, 2048, 4096), (0x83, 2400, 4096)]);
    assert_eq!(table(&img, 512), Err(PartitionError::Overlap(0, 1)));
    // Entries 0 and 3 overlap, with an unrelated one between them: the pair is named.
    let img = mbr_image(
        8 * MIB,
        &[
            (0x83, 2048, 4096),
            (0x83, 8192, 8),
            (0, 0, 0),
            (0x0c, 6136, 16),
        ],
    );
    assert_eq!(table(&img, 512), Err(PartitionError::Overlap(0, 3)));
    // One block in common is enough; touching ends are not an overlap.
    let img = mbr_image(8 * MIB, &[(0x83, 2048, 4096), (0x83, 6144 - 8, 8)]);
    assert_eq!(table(&img, 512), Err(PartitionError::Overlap(0, 1)));
    let img = mbr_image(8 * MIB, &[(0x83, 2048, 4096), (0x83, 6144, 8)]);
    assert!(table(&img, 512).is_ok());
    // A partition from sector 0 covers the MBR itself.
    let img = mbr_image(8 * MIB, &[(0x83, 2048, 8), (0x83, 0, 2048)]);
    assert_eq!(table(&img, 512), Err(PartitionError::CoversTable(1)));
    // GPT: the same rule (usable-range checks alone allow overlapping entries).
    let img = gpt_image(512, 8 * MIB, &[(2048, 6143), (4096, 8191)]);
    assert_eq!(table(&img, 512), Err(PartitionError::Overlap(0, 1)));
    assert_eq!(
        PartitionError::Overlap(0, 1).to_string(),
        "partitions 0 and 1 overlap"
    );
}

#[test]
fn no_signature_bad_sector_size_failed_read_and_tiny_disk() {
    let mut img = mbr_image(MIB, &[(0x83, 8, 8)]);
    img[511] = 0;
    assert_eq!(table(&img, 512), Err(PartitionError::NoSignature));
    img[511] = 0xAA;
    for ss in [0, 256, 1000, 8192] {
        assert_eq!(table(&img, ss), Err(PartitionError::SectorSize(ss)));
    }
    // A GPT disk cut short: the backup header read is past the end of the image.
    let gpt = gpt_image(512, 8 * MIB, &two_parts(512));
    let blocks = 2048;
    let mut buf = vec![0u8; 40 * 1024];
    let t = read_table(512, blocks, &mut buf, |offset, out| {
        let start = offset as usize;
        if start + out.len() > 1 << 20 {
            return false;
        }
        out.copy_from_slice(&gpt[start..start + out.len()]);
        true
    });
    assert_eq!(t, Err(PartitionError::Io));
    assert_eq!(
        table_with(&[0; 0], 512, 4096).0,
        Err(PartitionError::DiskTooSmall)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes: never a panic; whatever comes back lies inside the disk.
    #[test]
    fn arbitrary_bytes_never_panic(
        mut img in proptest::collection::vec(any::<u8>(), 0..64 * 1024),
        ss in prop_oneof![Just(512u16), Just(4096u16), any::<u16>()],
        protective in any::<bool>(),
        window in 0usize..48 * 1024,
    ) {
        if protective && img.len() >= 512 {
            img[510] = 0x55;
            img[511] = 0xAA;
            img[446 + 4] = 0xEE;
        }
        check_inside(&img, ss, window);
    }

    /// A valid GPT disk with random bytes overwritten (often inside the headers and arrays, the
    /// interesting part): never a panic, and the result lies inside the disk.
    #[test]
    fn mutated_gpt_never_panics(
        ss in prop_oneof![Just(512usize), Just(4096usize)],
        edits in proptest::collection::vec((0usize..40 * 1024, any::<u8>(), any::<bool>()), 1..24),
        window in 4096usize..48 * 1024,
    ) {
        let size = 256 * 1024;
        let parts = [((64 * 1024 / ss) as u64, (128 * 1024 / ss) as u64 - 1)];
        let mut img = gpt_image(ss, size, &parts);
        for (at, v, tail) in edits {
            // Half of the edits hit the backup end of the disk.
            let at = if tail { size - 1 - at % (20 * 1024) } else { at };
            img[at] = v;
        }
        check_inside(&img, ss as u16, window);
    }
}

fn check_inside(img: &[u8], ss: u16, window: usize) {
    let blocks = (img.len() / 4096) as u64;
    if let Ok(t) = table_with(img, ss, window).0 {
        for i in 0..MAX_PARTITIONS as u32 {
            if let Some(e) = t.get(i) {
                assert!(
                    e.blocks > 0 && e.start + e.blocks <= blocks,
                    "{e:?} on {blocks}"
                );
            }
        }
    }
}
