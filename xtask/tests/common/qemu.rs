// SPDX-License-Identifier: BSD-2-Clause
//! A system booted on seL4 under QEMU (`qemu_virt_aarch64`), its console captured: the piece the
//! seL4 boot tests (`qemu_boot`, `linux_vm_boot`) share.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xtask::cli::{Board, BuildArgs};
use xtask::microkit::{QEMU, SDK_ENV, Sdk, on_path, qemu_command};

/// Why no system can boot here, if none can: no Microkit SDK, or no QEMU.
pub fn not_runnable() -> Option<String> {
    if std::env::var_os(SDK_ENV).is_none_or(|v| v.is_empty()) {
        return Some(format!(
            "{SDK_ENV} is not set (no Microkit SDK: {})",
            xtask::microkit::download_hint()
        ));
    }
    if let Err(e) = Sdk::from_env(Board::QemuVirtAarch64) {
        return Some(e.to_string());
    }
    if !on_path(QEMU) {
        return Some(format!(
            "{QEMU} is not on PATH (Debian: apt-get install qemu-system-arm ipxe-qemu)"
        ));
    }
    None
}

/// A booted system: QEMU with its console captured; killed on drop.
pub struct Qemu {
    child: Child,
    console: Arc<Mutex<Vec<u8>>>,
    /// How long [`expect`](Self::expect) waits.
    timeout: Duration,
}

impl Qemu {
    /// Build `example` for `qemu_virt_aarch64` and boot it with `extra` QEMU arguments (devices);
    /// [`expect`](Self::expect) then waits up to `timeout`.
    pub fn boot(example: &str, extra: &[&str], timeout: Duration) -> Self {
        let args = BuildArgs {
            example: example.into(),
            board: Board::QemuVirtAarch64,
            release: false,
        };
        let built = xtask::tasks::build(&xtask::workspace_root(), &args)
            .unwrap_or_else(|e| panic!("{example}: {e}"));
        let loader = built.loader.expect("loader.img with $MICROKIT_SDK set");
        let mut child = qemu_command(&loader)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let console = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().unwrap();
        let sink = Arc::clone(&console);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            console,
            timeout,
        }
    }

    /// The console so far, without ANSI colour sequences (the Tx virtualiser colours each
    /// client's output, chunk by chunk).
    pub fn text(&self) -> String {
        let raw = String::from_utf8_lossy(&self.console.lock().unwrap()).into_owned();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' && chars.peek() == Some(&'[') {
                for e in chars.by_ref() {
                    if e.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Wait until `done` holds for the console text; panic with the text after the boot's
    /// timeout.
    pub fn expect(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.expect_within(what, self.timeout, done)
    }

    /// [`expect`](Self::expect) with a timeout of its own.
    pub fn expect_within(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if done(&text) {
                return text;
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not seen within {timeout:?}; console:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Type `keys` at the console, one every `gap`.
    pub fn type_keys_every(&mut self, keys: &[u8], gap: Duration) {
        let stdin = self.child.stdin.as_mut().unwrap();
        for k in keys {
            stdin.write_all(&[*k]).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(gap);
        }
    }

    /// Type `keys` at the console, 20 ms apart.
    pub fn type_keys(&mut self, keys: &[u8]) {
        self.type_keys_every(keys, Duration::from_millis(20));
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
