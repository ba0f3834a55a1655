// SPDX-License-Identifier: BSD-2-Clause
//! Finds the guest images the VMM embeds: `$LIONS_GUEST_IMAGES` or `<workspace>/target/guest-images`
//! (made by `cargo xtask guest-images`: `Image`, `initrd`). Without them the VMM is built with
//! empty images and reports at start that it has no guest (the ELF checks still run).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIONS_GUEST_IMAGES");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = std::env::var_os("LIONS_GUEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../target/guest-images"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    for (name, var) in [
        ("Image", "LIONS_GUEST_KERNEL"),
        ("initrd", "LIONS_GUEST_INITRD"),
    ] {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let path = if src.is_file() {
            src
        } else {
            let empty = out.join(format!("{name}.missing"));
            std::fs::write(&empty, []).expect("OUT_DIR is writable");
            empty
        };
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
