// SPDX-License-Identifier: BSD-2-Clause
//! `templates/product` as an integrator uses it: copied to a folder outside this workspace, its
//! `[patch.crates-io]` pointed at this checkout's crates, then `cargo xtask run <folder>` builds
//! its own PD in its own Cargo workspace, lions' component binaries from this checkout, and runs
//! the system on the host board. The greeter greets and shouts typed lines back.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Screen, System};
use std::path::{Path, PathBuf};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A copy of the template under the system's temporary folder, removed on drop.
struct Product(PathBuf);

impl Drop for Product {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_product_outside_the_workspace_builds_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = std::env::temp_dir().join(format!("lions-product-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let product = Product(dir.clone());
    assert!(
        !dir.starts_with(root),
        "the copy must live outside the workspace"
    );
    copy_dir(&root.join("templates/product"), &dir);
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let crates = root.join("crates");
    let patched = text.replace("../lions/crates", crates.to_str().unwrap());
    assert_ne!(
        patched, text,
        "the template names no lions checkout to patch"
    );
    std::fs::write(&manifest, patched).unwrap();

    let mut sys = System::start(dir.to_str().unwrap());
    sys.expect("the greeter's greeting", |s: &Screen| {
        s.text()
            .contains("greeter: hello from my-product; type and I shout back")
    });
    sys.type_keys(b"quiet words\r");
    sys.expect("the line shouted back", |s: &Screen| {
        s.text().contains("QUIET WORDS")
    });
    // Its own build went into its own target folder, the images beside it.
    assert!(dir.join("target/lions/host/greeter.elf").is_file());
    assert!(dir.join("target/lions/host/my-product.system").is_file());
    sys.stop();
    drop(product);
}
