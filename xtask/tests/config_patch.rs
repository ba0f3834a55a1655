// SPDX-License-Identifier: BSD-2-Clause
//! The config chain, end to end: a real sdfgen blob (`interop/fixtures`) written by
//! [`xtask::assembly::assemble`] into the `.device_resources` section of a program that declares
//! it with `lions_os::config!`, then run. The program must print the blob's values: proof that the
//! section is file-backed (`SHT_PROGBITS`) and that the reads are not folded to the all-zero
//! initialiser. Unpatched, the same program must refuse its config (bad magic).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::assembly::{Assembly, Patch, PdImage, assemble};

const PROBE: &str = env!("CARGO_BIN_EXE_lions-config-probe");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(system: &str, blob: &str) -> PathBuf {
    xtask::workspace_root()
        .join("interop/fixtures")
        .join(system)
        .join(blob)
}

/// What the probe must print for a `device_resources_t` blob, decoded here independently of
/// lions-os (offsets from interop/README.md).
fn expected_output(blob: &[u8]) -> String {
    let u64_at = |o: usize| u64::from_le_bytes(blob[o..o + 8].try_into().unwrap());
    let (regions, irqs) = (usize::from(blob[5]), usize::from(blob[6]));
    let mut s = format!("device_resources: {regions} regions, {irqs} irqs\n");
    for i in 0..regions {
        let o = 8 + 24 * i;
        s += &format!(
            "region {i}: vaddr {:#x} size {:#x} io_addr {:#x}\n",
            u64_at(o),
            u64_at(o + 8),
            u64_at(o + 16)
        );
    }
    for i in 0..irqs {
        s += &format!("irq {i}: channel {}\n", blob[1544 + i]);
    }
    s
}

fn run(image: &Path) -> (bool, String) {
    let out = Command::new(image).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn unpatched_probe_reports_bad_magic() {
    let (ok, stdout) = run(Path::new(PROBE));
    assert!(!ok, "{stdout}");
    assert!(
        stdout.starts_with("config refused: device_resources_t: bad magic"),
        "{stdout}"
    );
}

#[test]
fn patched_probe_prints_the_sdfgen_blob() {
    for (system, blob) in [
        ("serial", "serial_driver_device_resources.data"),
        ("net", "net_driver_device_resources.data"),
        ("blk", "blk_driver_device_resources.data"),
    ] {
        let dir = scratch(&format!("chain-{system}"));
        let src = fixture(system, blob);
        std::fs::copy(&src, dir.join(blob)).unwrap();
        let asm = Assembly {
            system: None,
            pds: vec![PdImage {
                name: "driver".into(),
                binary: "lions-config-probe".into(),
                package: None,
                image: "driver.elf".into(),
                patches: vec![Patch {
                    section: ".device_resources".into(),
                    blob: blob.into(),
                }],
            }],
        };
        let bin_dir = Path::new(PROBE).parent().unwrap();
        let done = assemble(&asm, &[bin_dir.to_path_buf()], &dir).unwrap();
        assert_eq!(
            done[0].written,
            vec![(".device_resources".to_owned(), 1608)]
        );

        let bytes = std::fs::read(&src).unwrap();
        let want = expected_output(&bytes);
        assert!(
            want.contains("region 0: vaddr 0x2"),
            "{system}: fixture has a mapped region: {want}"
        );
        let (ok, stdout) = run(&dir.join("driver.elf"));
        assert!(ok, "{system}: {stdout}");
        assert_eq!(stdout, want, "{system}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
