// SPDX-License-Identifier: BSD-2-Clause
//! `fs_nfs`: the NFS file-system server (LionsOS's `nfs` component, sdfgen's
//! `LionsOs.FileSystem.Nfs`): [`lions_nfs::fs_nfs::FsNfs`], an FS server for one client over an
//! NFSv3 export, on its own network stack (DHCP) through its copier and the Tx virtualiser.
//!
//! Config sections, as sdfgen writes them for the NFS PD: `.fs_server_config` (the FS client's
//! connection), `.nfs_config` (server address and export path), `.net_client_config` (its net
//! queues and data regions) and `.timer_client_config`. sdfgen's `.serial_client_config` and
//! `.lib_sddf_lwip_config` are not used (no console output; smoltcp instead of lwIP).
//!
//! The server address must be an IPv4 address (no DNS). The NFS session, its reconnection and
//! the FS protocol are the library's; this file only wires configs to it.
//!
//! The NFS backend allocates (records in flight, directory pages): on seL4 from 4 MiB of `.bss`
//! (`lions_os::heap::Heap`; 64 calls in flight of 1 MiB each would exceed it, but the FS
//! client's buffers bound what it asks at once far below that; replies are bounded at 1 MiB +
//! 4 KiB each), as `fs_fat` does.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use lions_fs::{FsServerConfig, NfsConfig};
use lions_net::NetClientConfig;
use lions_net::client::{IpConfig, NetDevice, NetStack, StaticCell};
use lions_net::smoltcp::iface::SocketStorage;
use lions_net::smoltcp::socket::tcp;
use lions_net::smoltcp::wire::Ipv4Address;
use lions_nfs::fs_nfs::FsNfs;
use lions_os::Handler;
use lions_os::startup_failed as fail;
use lions_timer::{TimerClient, TimerClientConfig};

lions_os::config!(static FS: FsServerConfig = ".fs_server_config");
lions_os::config!(static NFS: NfsConfig = ".nfs_config");
lions_os::config!(static NET: NetClientConfig = ".net_client_config");
lions_os::config!(static TIMER: TimerClientConfig = ".timer_client_config");

/// Bytes the TCP socket buffers each way.
const TCP_BUF: usize = 64 * 1024;

static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; 2]> =
    StaticCell::new([SocketStorage::EMPTY; 2]);
static TCP_DATA: StaticCell<[[u8; TCP_BUF]; 2]> = StaticCell::new([[0; TCP_BUF]; 2]);

/// The seL4 PD's heap.
#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: lions_os::heap::Heap<{ 4 << 20 }> = lions_os::heap::Heap::new();

/// The one-time storage (init runs once per PD).
fn once<T>(cell: &'static StaticCell<T>) -> &'static mut T {
    cell.take().unwrap_or_else(|| fail("storage taken twice"))
}

fn init() -> FsNfs<'static, 'static> {
    let fs = FS.mapped().unwrap_or_else(|e| fail(e));
    let nfs = NFS.get().unwrap_or_else(|e| fail(e));
    let net = NET.mapped().unwrap_or_else(|e| fail(e));
    let timer = TIMER.get().unwrap_or_else(|e| fail(e));
    let server: Ipv4Address = nfs
        .server()
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail("nfs_config: server is not an IPv4 address"));
    let export = nfs.export().unwrap_or_else(|e| fail(e));
    let (queues, share, client) = lions_fs::server::open(fs).unwrap_or_else(|e| fail(e));
    let device = NetDevice::new(net).unwrap_or_else(|e| fail(e));
    let timer = TimerClient::from_config(timer).unwrap_or_else(|| fail("timer channel above 61"));
    // The boot time's low 32 bits vary the first xid between boots.
    #[allow(clippy::cast_possible_truncation)]
    let boot_id = timer.time_now().map_or(1, |t| (t ^ (t >> 32)) as u32);
    let mut stack = NetStack::new(
        device,
        timer,
        IpConfig::Dhcp,
        &mut once(&SOCKET_STORAGE)[..],
    )
    .unwrap_or_else(|e| fail(e));
    let [rx, tx] = once(&TCP_DATA);
    let socket = stack.add_socket(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut rx[..]),
        tcp::SocketBuffer::new(&mut tx[..]),
    ));
    let mut pd = FsNfs::new(
        stack,
        socket,
        server,
        export.as_bytes(),
        (queues, share, client),
        boot_id,
    );
    pd.notified(lions_os::ChannelSet::EMPTY)
        .unwrap_or_else(|e| fail(e));
    pd
}

lions_os::protection_domain!(init);
