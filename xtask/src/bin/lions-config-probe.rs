// SPDX-License-Identifier: BSD-2-Clause
//! A PD-shaped test program: declares a `.device_resources` config static exactly as a driver
//! does and prints what it decodes from it. The xtask tests write an sdfgen blob into the section
//! of a copy and run it, proving that the section is file-backed and its reads are not folded to
//! the all-zero initialiser. Exits 1 when the config is refused (e.g. never written: bad magic).

use lions_os::DeviceResources;
use std::process::ExitCode;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");

fn main() -> ExitCode {
    match RESOURCES.get() {
        Ok(r) => {
            println!(
                "device_resources: {} regions, {} irqs",
                r.num_regions, r.num_irqs
            );
            for (i, d) in r.regions().iter().enumerate() {
                println!(
                    "region {i}: vaddr {:#x} size {:#x} io_addr {:#x}",
                    d.region.vaddr, d.region.size, d.io_addr
                );
            }
            for (i, irq) in r.irqs().iter().enumerate() {
                println!("irq {i}: channel {}", irq.id);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("config refused: {e}");
            ExitCode::FAILURE
        }
    }
}
