// SPDX-License-Identifier: BSD-2-Clause
//! `tools/lions_meta.py`'s sDDF subsystem helpers against the real sdfgen: rebuilding interop's
//! `serial` and `timer` systems through them gives the committed fixtures byte for byte, and
//! `assembly.json` names exactly the blobs sdfgen wrote, each with its section. Also checks that
//! the committed `examples/hello/hello.svg` is what `cargo xtask graph hello` draws today.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::assembly::Assembly;

fn root() -> PathBuf {
    xtask::workspace_root()
}

fn generate(system: &str) -> PathBuf {
    let python = xtask::meta::ensure_venv(&root()).unwrap();
    let out = std::env::temp_dir().join(format!("xtask-meta-{system}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(python)
        .arg(root().join("xtask/tests/meta/sddf_helpers.py"))
        .arg(system)
        .arg(&out)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    // sdfgen notes every sDDF driver class directory interop/ does not have; keep the rest.
    let stderr: String = String::from_utf8_lossy(&run.stderr)
        .lines()
        .filter(|l| !l.starts_with("info: failed to open sDDF driver directory"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        run.status.success(),
        "metaprogram for {system}: {}\n{stderr}",
        run.status
    );
    assert!(stderr.is_empty(), "{stderr}");
    out
}

fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}

fn patches(asm: &Assembly) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = asm
        .pds
        .iter()
        .flat_map(|pd| {
            pd.patches
                .iter()
                .map(|p| (pd.name.clone(), p.section.clone(), p.blob.clone()))
        })
        .collect();
    v.sort();
    v
}

fn check(system: &str, want: &[(&str, &str, &str)]) {
    let out = generate(system);
    let fixtures = root().join("interop/fixtures").join(system);
    let sys_file = format!("{system}.system");
    assert_eq!(
        std::fs::read_to_string(out.join(&sys_file)).unwrap(),
        std::fs::read_to_string(fixtures.join(&sys_file)).unwrap(),
        "{system}.system"
    );
    assert_eq!(files(&out, ".data"), files(&fixtures, ".data"));
    for blob in files(&fixtures, ".data") {
        assert_eq!(
            std::fs::read(out.join(&blob)).unwrap(),
            std::fs::read(fixtures.join(&blob)).unwrap(),
            "{blob}"
        );
    }
    let asm = Assembly::load(&out).unwrap();
    let mut want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    want.sort();
    assert_eq!(patches(&asm), want);
    // Every blob sdfgen wrote goes somewhere.
    let used: Vec<String> = want.iter().map(|w| w.2.clone()).collect();
    for blob in files(&out, ".data") {
        assert!(used.contains(&blob), "{blob} is not patched into any PD");
    }
    for pd in &asm.pds {
        assert_eq!(pd.image, format!("{}.elf", pd.name));
        assert_eq!(pd.binary, pd.name);
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn serial_helper_matches_sdfgen() {
    check(
        "serial",
        &[
            (
                "serial_driver",
                ".device_resources",
                "serial_driver_device_resources.data",
            ),
            (
                "serial_driver",
                ".serial_driver_config",
                "serial_driver_config.data",
            ),
            (
                "serial_virt_tx",
                ".serial_virt_tx_config",
                "serial_virt_tx.data",
            ),
            (
                "serial_virt_rx",
                ".serial_virt_rx_config",
                "serial_virt_rx.data",
            ),
            (
                "client0",
                ".serial_client_config",
                "serial_client_client0.data",
            ),
            (
                "client1",
                ".serial_client_config",
                "serial_client_client1.data",
            ),
        ],
    );
}

#[test]
fn timer_helper_matches_sdfgen() {
    check(
        "timer",
        &[
            (
                "timer_driver",
                ".device_resources",
                "timer_driver_device_resources.data",
            ),
            (
                "client0",
                ".timer_client_config",
                "timer_client_client0.data",
            ),
            (
                "client1",
                ".timer_client_config",
                "timer_client_client1.data",
            ),
        ],
    );
}

#[test]
fn i2c_helper_matches_sdfgen() {
    check(
        "i2c",
        &[
            (
                "i2c_driver",
                ".device_resources",
                "i2c_driver_device_resources.data",
            ),
            ("i2c_driver", ".i2c_driver_config", "i2c_driver.data"),
            ("i2c_virt", ".i2c_virt_config", "i2c_virt.data"),
            ("client0", ".i2c_client_config", "i2c_client_client0.data"),
            ("client1", ".i2c_client_config", "i2c_client_client1.data"),
        ],
    );
}

/// Every example's committed `<example>/<example>.svg` is what `cargo xtask graph` draws today.
#[test]
fn committed_example_graphs_are_current() {
    let examples = root().join("examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !dir.join("meta.py").is_file() {
            continue;
        }
        let svg = dir.join(format!("{name}.svg"));
        assert!(
            svg.is_file(),
            "examples/{name} has no {name}.svg: run `cargo xtask graph {name} -o examples/{name}/{name}.svg`"
        );
        let file = std::env::temp_dir().join(format!("xtask-{name}-{}.svg", std::process::id()));
        // linux_vm runs only on seL4 (the host board cannot run guests): drawn for QEMU.
        let board = if name == "linux_vm" {
            xtask::cli::Board::QemuVirtAarch64
        } else {
            xtask::cli::Board::Host
        };
        xtask::tasks::graph_cmd(
            &root(),
            &name,
            board,
            Some(file.clone()),
            Default::default(),
        )
        .unwrap();
        let drawn = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(
            drawn == std::fs::read_to_string(&svg).unwrap(),
            "examples/{name}/{name}.svg is stale: run `cargo xtask graph {name} -o examples/{name}/{name}.svg`"
        );
        checked.push(name);
    }
    for must in ["hello", "serial", "timer"] {
        assert!(checked.iter().any(|c| c == must), "{must} was not checked");
    }
}
