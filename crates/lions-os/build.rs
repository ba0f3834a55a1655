// SPDX-License-Identifier: BSD-2-Clause
//! Selects the seL4 Microkit backend (`cfg(lions_microkit)`) on `aarch64` with `target_os =
//! "none"`, and there puts `link/` on the library search path so the backend can name its linker
//! script (see `link/lions-os-microkit.ld`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lions_microkit)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link/lions-os-microkit.ld");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "none" && arch == "aarch64" {
        println!("cargo::rustc-cfg=lions_microkit");
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        println!("cargo::rustc-link-search=native={dir}/link");
    }
}
