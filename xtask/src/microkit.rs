// SPDX-License-Identifier: BSD-2-Clause
//! The seL4 side of a board: the Microkit SDK (`$MICROKIT_SDK`), the system image it makes, and
//! the QEMU command that boots it.
//!
//! - [`Sdk::from_env`] finds the SDK or says precisely what is missing and where to get it; nothing
//!   here pretends an image was made without one.
//! - [`Sdk::check_board_constants`] compares the numbers `lions-os` compiled in
//!   ([`lions_os::microkit::board`]) with the SDK's (`invocations_all.json`), so a PD built for
//!   another SDK version or kernel configuration is refused before it is booted.
//! - [`Sdk::make_image`] runs `$MICROKIT_SDK/bin/microkit <system> --search-path <out> --board B
//!   --config C --output <out>/loader.img --report <out>/report.txt`.
//! - [`qemu_command`] is the QEMU command line for `qemu_virt_aarch64` (the kernel runs at EL2,
//!   hence `virtualization=on`; the serial console is the terminal).

use crate::Error;
use crate::cli::Board;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SDK release the board constants were checked against.
pub const SDK_VERSION: &str = lions_os::microkit::board::qemu_virt_aarch64::SDK_VERSION;

/// The environment variable naming the SDK folder.
pub const SDK_ENV: &str = "MICROKIT_SDK";

/// The SDK configuration the examples use: `debug`, whose kernel has the debug console that
/// `lions_os::debug_println!` prints to (PDs are built with `lions-os/debug-print`).
pub const CONFIG: &str = "debug";

/// The QEMU binary for `qemu_virt_aarch64`.
pub const QEMU: &str = "qemu-system-aarch64";

/// Where to get the SDK, for messages.
pub fn download_hint() -> String {
    format!(
        "download the Microkit SDK {SDK_VERSION} for your machine from \
         https://github.com/seL4/microkit/releases/tag/{SDK_VERSION} \
         (microkit-sdk-{SDK_VERSION}-linux-x86-64.tar.gz on x86-64 Linux), unpack it and set \
         {SDK_ENV} to the unpacked folder (the one holding bin/microkit and board/)"
    )
}

/// A Microkit SDK on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdk {
    /// Its folder.
    pub root: PathBuf,
}

impl Sdk {
    /// The SDK `$MICROKIT_SDK` names, checked for the tool and the board's configuration. The
    /// error says what is missing and how to get it.
    pub fn from_env(board: Board) -> Result<Self, Error> {
        match std::env::var_os(SDK_ENV) {
            Some(dir) if !dir.is_empty() => Self::at(PathBuf::from(dir), board),
            _ => Err(Error::missing(format!(
                "{SDK_ENV} is not set: {}",
                download_hint()
            ))),
        }
    }

    /// The SDK in `root`, checked as [`from_env`](Self::from_env) does.
    pub fn at(root: PathBuf, board: Board) -> Result<Self, Error> {
        let sdk = Self { root };
        let tool = sdk.tool();
        if !tool.is_file() {
            return Err(Error::missing(format!(
                "{SDK_ENV}={} is not a Microkit SDK: {} does not exist; {}",
                sdk.root.display(),
                tool.display(),
                download_hint()
            )));
        }
        let config = sdk.config_dir(board);
        if !config.is_dir() {
            return Err(Error::missing(format!(
                "the Microkit SDK in {} has no board `{board}` in configuration `{CONFIG}` \
                 ({} does not exist)",
                sdk.root.display(),
                config.display()
            )));
        }
        Ok(sdk)
    }

    /// `bin/microkit`.
    pub fn tool(&self) -> PathBuf {
        self.root.join("bin").join("microkit")
    }

    /// `board/<board>/<config>/`.
    pub fn config_dir(&self, board: Board) -> PathBuf {
        self.root.join("board").join(board.name()).join(CONFIG)
    }

    /// Check that the invocation labels `lions-os` uses are the SDK's for this board.
    pub fn check_board_constants(&self, board: Board) -> Result<(), Error> {
        let path = self.config_dir(board).join("invocations_all.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        check_invocations(&text).map_err(|e| e.within(path.display()))
    }

    /// Run the Microkit tool on `system`, with the PD images in `out`; returns `out/loader.img`.
    pub fn make_image(&self, board: Board, system: &Path, out: &Path) -> Result<PathBuf, Error> {
        let image = out.join("loader.img");
        let mut cmd = Command::new(self.tool());
        cmd.arg(system)
            .arg("--search-path")
            .arg(out)
            .args(["--board", board.name(), "--config", CONFIG, "--output"])
            .arg(&image)
            .arg("--report")
            .arg(out.join("report.txt"));
        let status = cmd
            .status()
            .map_err(|e| Error::io("starting", &self.tool(), e))?;
        if !status.success() {
            return Err(Error::failed(
                format!("the Microkit tool on {}", system.display()),
                status,
                "",
            ));
        }
        Ok(image)
    }
}

/// Compare `invocations_all.json` (an object of invocation names to labels) with the labels
/// `lions-os` compiled in: `IRQAckIRQ` (every driver) and the vCPU/TCB labels a VMM uses.
pub fn check_invocations(text: &str) -> Result<(), Error> {
    use lions_os::microkit::board::current::{IRQ_ACK_IRQ, VCPU_LABELS as V};
    let root: Value = serde_json::from_str(text).map_err(|e| Error::invalid("", e))?;
    let ours = [
        ("IRQAckIRQ", IRQ_ACK_IRQ),
        ("TCBReadRegisters", V.tcb_read_registers),
        ("TCBWriteRegisters", V.tcb_write_registers),
        ("TCBSuspend", V.tcb_suspend),
        ("ARMVCPUInjectIRQ", V.vcpu_inject_irq),
        ("ARMVCPUReadReg", V.vcpu_read_reg),
        ("ARMVCPUWriteReg", V.vcpu_write_reg),
        ("ARMVCPUAckVPPI", V.vcpu_ack_vppi),
    ];
    for (name, built) in ours {
        let Some(label) = root.get(name).and_then(Value::as_u64) else {
            return Err(Error::invalid("", format!("no number `{name}`")));
        };
        if label != built {
            return Err(Error::invalid(
                "",
                format!(
                    "{name} is {label} in this SDK but lions-os was built for {built} \
                     (lions_os::microkit::board, Microkit {SDK_VERSION}): another SDK version or \
                     kernel configuration"
                ),
            ));
        }
    }
    Ok(())
}

/// The QEMU command that boots `loader` on `qemu_virt_aarch64`, with the serial console (and
/// QEMU's monitor, Ctrl-A C; Ctrl-A X quits) on stdio.
pub fn qemu_command(loader: &Path) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-machine",
        "virt,virtualization=on",
        "-cpu",
        "cortex-a53",
        "-m",
        "size=2G",
        "-nographic",
        "-serial",
        "mon:stdio",
        "-device",
    ])
    .arg(format!(
        "loader,file={},addr=0x70000000,cpu-num=0",
        loader.display()
    ));
    cmd
}

/// Whether `program` is found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_labels_are_compared() {
        let sdk = r#"{"InvalidInvocation": 0, "IRQAckIRQ": 31, "TCBReadRegisters": 2,
            "TCBWriteRegisters": 3, "TCBSuspend": 12, "ARMVCPUInjectIRQ": 60,
            "ARMVCPUReadReg": 61, "ARMVCPUWriteReg": 62, "ARMVCPUAckVPPI": 63}"#;
        assert!(check_invocations(sdk).is_ok());
        let e = check_invocations(&sdk.replace("31", "30"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("IRQAckIRQ is 30") && e.contains("31"), "{e}");
        let e = check_invocations(&sdk.replace(": 60", ": 56"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ARMVCPUInjectIRQ is 56"), "{e}");
        assert!(check_invocations(r#"{"IRQAck": 31}"#).is_err());
        assert!(check_invocations("[").is_err());
    }

    #[test]
    fn a_folder_without_the_tool_is_not_an_sdk() {
        let dir = std::env::temp_dir().join(format!("xtask-no-sdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = Sdk::at(dir.clone(), Board::QemuVirtAarch64)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bin/microkit") && e.contains("github.com/seL4/microkit/releases"),
            "{e}"
        );
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/microkit"), "").unwrap();
        let e = Sdk::at(dir.clone(), Board::QemuVirtAarch64)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("qemu_virt_aarch64") && e.contains("debug"),
            "{e}"
        );
        std::fs::create_dir_all(dir.join("board/qemu_virt_aarch64/debug")).unwrap();
        assert!(Sdk::at(dir.clone(), Board::QemuVirtAarch64).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn qemu_runs_at_el2_with_the_loader_at_its_address() {
        let cmd = qemu_command(Path::new("/x/loader.img"));
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(cmd.get_program(), QEMU);
        assert!(args.contains(&"virt,virtualization=on".into()));
        assert!(args.contains(&"loader,file=/x/loader.img,addr=0x70000000,cpu-num=0".into()));
    }
}
