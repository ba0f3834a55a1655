// SPDX-License-Identifier: BSD-2-Clause
//! `vmm`: the VMM PD of one Linux guest ([`linux_vm::Vmm`]), the parent of the system's
//! `<virtual_machine>`.
//!
//! Config sections: `.vmm_config` (the guest RAM mapping, the vCPU id, the serial channel) and
//! `.serial_client_config` (the console's serial client). The guest's kernel `Image` and initrd
//! are embedded at build time (`cargo xtask guest-images` makes them from Debian packages).
//!
//! The host board cannot run guests: built for Linux this is a program that says so.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod sel4 {
    use linux_vm::{Vmm, VmmConfig, VmmError};
    use lions_blk::{BlkClient, BlkClientConfig};
    use lions_net::NetClientConfig;
    use lions_net::client::NetDevice;
    use lions_os::microkit::{Sel4, board};
    use lions_os::{Channel, ChannelSet, Child, Handler, MessageInfo};
    use lions_serial::SerialClientConfig;
    use lions_serial::client::SerialClient;
    use lions_vmm::ram::GuestRam;
    use lions_vmm::virtio::blk::Blk;
    use lions_vmm::virtio::net::Net;

    lions_os::config!(static CONFIG: VmmConfig = ".vmm_config");
    lions_os::config!(static SERIAL: SerialClientConfig = ".serial_client_config");
    lions_os::config!(static BLK: BlkClientConfig = ".blk_client_config");
    lions_os::config!(static NET: NetClientConfig = ".net_client_config");

    use lions_os::startup_failed as fail;

    static KERNEL: &[u8] = include_bytes!(env!("LIONS_GUEST_KERNEL"));
    static INITRD: &[u8] = include_bytes!(env!("LIONS_GUEST_INITRD"));

    pub(crate) struct Pd {
        vmm: Vmm<'static, Sel4, SerialClient<'static>, BlkClient<'static>, NetDevice<'static>>,
        blk: Channel,
        /// The net client's channels (copier: received frames; Tx virt: free buffers).
        net: [Channel; 2],
        /// The serial client's channels (Rx virt: input; Tx virt: room for output).
        serial: [Option<Channel>; 2],
    }

    impl Handler for Pd {
        type Error = VmmError;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), VmmError> {
            if channels.iter().any(|c| self.serial.contains(&Some(c))) {
                self.vmm.serial_notified()?;
            }
            if channels.iter().any(|c| c == self.blk) {
                self.vmm.blk_notified()?;
            }
            if channels.iter().any(|c| self.net.contains(&c)) {
                self.vmm.net_notified()?;
            }
            Ok(())
        }

        fn fault(
            &mut self,
            child: Child,
            msg: MessageInfo,
        ) -> Result<Option<MessageInfo>, VmmError> {
            let r = self.vmm.fault(child.0, msg);
            if r.is_err() {
                lions_os::debug_println!("vmm: {:?}", self.vmm.counters);
            }
            let r = r?;
            if self.vmm.powered_off {
                lions_os::debug_println!("vmm: guest powered off");
            }
            Ok(r)
        }
    }

    pub(crate) fn init() -> Pd {
        let config = CONFIG.get().unwrap_or_else(|e| fail(e));
        let serial_mapped = SERIAL.mapped().unwrap_or_else(|e| fail(e));
        let serial_config = serial_mapped.config();
        let (base, len) = config
            .ram
            .as_raw_parts()
            .unwrap_or_else(|| fail("`.vmm_config`: the guest RAM is not mapped"));
        // SAFETY: the system description maps the guest RAM read-write at `base`, `len` bytes, for
        // the PD's whole life; the only other party is the guest, which runs only while this PD
        // (at a higher priority, on the same core) waits for an event, and whose accesses are
        // ordinary memory traffic the VMM treats as untrusted data.
        let mem = unsafe { core::slice::from_raw_parts_mut(base.as_ptr(), len) };
        let ram = GuestRam::single(config.ram_gpa, mem)
            .unwrap_or_else(|e| fail(format_args!("guest RAM: {e:?}")));
        let console = SerialClient::new(serial_mapped).unwrap_or_else(|e| fail(e));
        let blk_config = BLK.mapped().unwrap_or_else(|e| fail(e));
        let blk = BlkClient::new(blk_config).unwrap_or_else(|e| fail(e));
        let blk_channel = blk.channel();
        let blk = Blk::new(blk).unwrap_or_else(|| fail("the blk data region holds no cell"));
        let net_config = NET.mapped().unwrap_or_else(|e| fail(e));
        let net = NetDevice::new(net_config).unwrap_or_else(|e| fail(e));
        let net_channels = [net.rx_channel(), net.tx_channel()];
        let mut vmm = Vmm::new(
            Sel4,
            board::current::VCPU_LABELS,
            config.vcpu,
            config.ram_gpa,
            ram,
            console,
            blk,
            Net::new(net),
        );
        vmm.earlycon = Some(|b| lions_os::debug_print!("{}", char::from(b)));
        if KERNEL.is_empty() {
            fail("no guest kernel embedded: run `cargo xtask guest-images` and rebuild");
        }
        let layout = vmm.boot(KERNEL, INITRD).unwrap_or_else(|e| fail(e));
        lions_os::debug_println!(
            "vmm: guest kernel at {:#x} ({} bytes), dtb at {:#x}, initrd {:?}; vCPU {} started",
            layout.kernel,
            KERNEL.len(),
            layout.dtb,
            layout.initrd,
            config.vcpu
        );
        // Ask the copier for a signal when the first frame arrives.
        vmm.net_notified().unwrap_or_else(|e| fail(e));
        Pd {
            vmm,
            serial: [
                Channel::try_new(serial_config.rx.id),
                Channel::try_new(serial_config.tx.id),
            ],
            blk: blk_channel,
            net: net_channels,
        }
    }
}

#[cfg(target_os = "none")]
lions_os::protection_domain!(sel4::init);

/// Not a host-board component: say so.
#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "vmm runs a Linux guest under seL4 (qemu_virt_aarch64 with virtualization=on); the host \
         board cannot run guests"
    );
    std::process::ExitCode::FAILURE
}
