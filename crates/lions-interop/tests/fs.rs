// SPDX-License-Identifier: BSD-2-Clause
//! Interop: the FS and NFS configs sdfgen 0.35.1 wrote (`interop/fixtures/{fat,nfs}`) parse with our
//! structs and agree with the `.system` files.
#![allow(clippy::unwrap_used)]

use lions_fs::*;
use lions_interop::{Blob, Sdf};
use lions_os::Config;

/// Queues and share are `pd`'s mappings of regions `peer` maps too; queues are one `fs_queue_t`;
/// `id` is `pd`'s end of their channel.
fn check_conn(sdf: &Sdf, pd: &str, peer: &str, c: &FsConnectionResource) {
    let cmd = sdf.check_shared(pd, peer, c.command_queue.vaddr, c.command_queue.size);
    let cmpl = sdf.check_shared(pd, peer, c.completion_queue.vaddr, c.completion_queue.size);
    let share = sdf.check_shared(pd, peer, c.share.vaddr, c.share.size);
    assert!(
        cmd.ends_with("command_queue")
            && cmpl.ends_with("completion_queue")
            && share.ends_with("share")
    );
    assert_eq!(c.command_queue.size, FS_QUEUE_BYTES as u64);
    assert_eq!(c.completion_queue.size, FS_QUEUE_BYTES as u64);
    assert_eq!(
        c.queue_len, 512,
        "written but unused: the wire capacity is 511"
    );
    assert_eq!(u64::from(c.id), sdf.channel_id(pd, peer), "{pd} -> {peer}");
}

fn check_fs(system: &str, server: &str) {
    let sdf = Sdf::load(system);
    let blob = Blob::load(system, &format!("fs_server_{server}.data"));
    let s = FsServerConfig::from_blob(blob.bytes()).unwrap();
    check_conn(&sdf, server, "client0", &s.client);
    let blob = Blob::load(system, "fs_client_client0.data");
    let c = FsClientConfig::from_blob(blob.bytes()).unwrap();
    check_conn(&sdf, "client0", server, &c.server);
    assert_eq!(
        check_buffer(
            FsBuffer {
                offset: 0,
                size: c.server.share.size
            },
            c.server.share.size
        ),
        Ok(0..c.server.share.size)
    );
}

#[test]
fn fat_fixture() {
    check_fs("fat", "fatfs");
    // The FAT server's own config blob is empty in sdfgen 0.35.1: nothing to parse.
    assert!(Blob::load("fat", "fat_config.data").bytes().is_empty());
}

#[test]
fn nfs_fixture() {
    check_fs("nfs", "nfs");
    let blob = Blob::load("nfs", "nfs_config.data");
    assert_eq!(blob.bytes().len(), size_of::<NfsConfig>());
    let n = NfsConfig::from_blob(blob.bytes()).unwrap();
    assert_eq!(n.server(), Ok("10.0.2.2"));
    assert_eq!(n.export(), Ok("/export/lions"));
    assert!(
        FsServerConfig::from_blob(blob.bytes()).is_err(),
        "NFS magic is not an FS magic"
    );
}
