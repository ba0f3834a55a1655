// SPDX-License-Identifier: BSD-2-Clause
//! `net_driver_host_user`: the host board's user-mode network (`lions,host-net`), for an ordinary
//! user: no TAP, no privileges.
//!
//! The generic [`EthDriver`] over a [`UserNet`]: the system's Ethernet segment ends in a gateway
//! (10.0.2.1) inside this process, and host ports on 127.0.0.1 are forwarded to addresses on the
//! segment.
//!
//! - Config sections: `.device_resources` (its first IRQ; no regions) and `.net_driver_config`.
//! - **Environment**: `LIONS_NET_FORWARD`, a comma-separated list of
//!   `tcp:HOSTPORT:GUESTIP:GUESTPORT` and `udp:HOSTPORT:GUESTIP:GUESTPORT`, e.g.
//!   `tcp:5555:10.0.2.10:1236,udp:5555:10.0.2.10:1235` (empty: no forwards).
//! - **Restart** (`lions_os::incarnation` above 0): [`EthDriver::resume`] takes back the buffers
//!   the old incarnation held (Rx posted to its device, Tx taken), as the queue indices count them.

use lions_drivers::host::UserNet;
use lions_drivers::host::tap::Dma;
use lions_drivers::host::usernet::Forward;
use lions_net::{EthDriver, NetDriverConfig};
use lions_os::DeviceResources;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
lions_os::config!(static CONFIG: NetDriverConfig = ".net_driver_config");

/// The forwards' environment variable.
const FORWARD_ENV: &str = "LIONS_NET_FORWARD";

use lions_os::startup_failed as fail;

fn init() -> EthDriver<'static, UserNet> {
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
    let spec = std::env::var(FORWARD_ENV).unwrap_or_default();
    let forwards = Forward::parse_list(&spec).unwrap_or_else(|| {
        fail(format_args!(
            "{FORWARD_ENV}={spec:?}: expected tcp|udp:HOSTPORT:GUESTIP:GUESTPORT,..."
        ))
    });
    let net = UserNet::new(dma, &forwards).unwrap_or_else(|e| fail(e));
    net.attach_irq(irq).unwrap_or_else(|e| fail(e));
    let mut driver = EthDriver::new(net, config, irq).unwrap_or_else(|e| fail(e));
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
