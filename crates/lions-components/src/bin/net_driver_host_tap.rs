// SPDX-License-Identifier: BSD-2-Clause
//! `net_driver_host_tap`: the Ethernet driver of the host board (`lions,host-net`).
//!
//! The generic [`EthDriver`] (queues to the Rx and Tx virtualisers, the signalling) over a
//! [`HostTap`]: a Linux TAP interface whose frames are read into and written from the net data
//! regions, which the host board maps into this PD at their device addresses.
//!
//! - Config sections: `.device_resources` (its first IRQ is the TAP's channel; no regions) and
//!   `.net_driver_config` (the queues to the virtualisers).
//! - **Environment**: `LIONS_TAP` names the interface (default `lions0`). Creating it, or opening
//!   one owned by another user, needs root or `CAP_NET_ADMIN`; bring it up and give it an address
//!   from the host side (`ip link set lions0 up; ip addr add 10.0.2.1/24 dev lions0`), or create
//!   it beforehand with `ip tuntap add dev lions0 mode tap user $USER`.
//! - **Restart** (`lions_os::incarnation` above 0): [`EthDriver::resume`] takes back the buffers
//!   the old incarnation held (Rx posted to its device, Tx taken), as the queue indices count them.

use lions_drivers::host::HostTap;
use lions_drivers::host::tap::Dma;
use lions_net::{EthDriver, NetDriverConfig};
use lions_os::DeviceResources;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
lions_os::config!(static CONFIG: NetDriverConfig = ".net_driver_config");

/// The interface name's environment variable.
const TAP_ENV: &str = "LIONS_TAP";
/// The interface used when the variable is not set.
const DEFAULT_TAP: &str = "lions0";

use lions_os::startup_failed as fail;

fn init() -> EthDriver<'static, HostTap> {
    let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let irq = resources
        .irq_channel(0)
        .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
    let dma = if resources.regions().is_empty() {
        Dma::host_identity().unwrap_or_else(|| fail("no DMA window on this machine"))
    } else {
        // SAFETY: the system description maps each region named in `.device_resources` at its
        // vaddr, read-write, for the life of the PD.
        unsafe { Dma::new(resources.regions()) }
    };
    let name = std::env::var(TAP_ENV).unwrap_or_else(|_| DEFAULT_TAP.into());
    let tap = HostTap::open(&name, dma).unwrap_or_else(|e| {
        fail(format_args!(
            "TAP interface {name:?} ({TAP_ENV}): {e} (needs root or CAP_NET_ADMIN, or a TAP \
             made for this user with `ip tuntap add dev {name} mode tap user $USER`)"
        ))
    });
    tap.attach_irq(irq).unwrap_or_else(|e| fail(e));
    let mut driver = EthDriver::new(tap, config, irq).unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() == 0 {
        driver.init().unwrap_or_else(|e| fail(e));
    } else {
        // Restarted: take back what the old incarnation held (Rx buffers posted to its device,
        // Tx frames taken), as the queue indices count it.
        driver.resume().unwrap_or_else(|e| fail(e));
    }
    driver
}

lions_os::protection_domain!(init);
