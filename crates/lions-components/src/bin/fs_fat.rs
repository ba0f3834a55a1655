// SPDX-License-Identifier: BSD-2-Clause
//! `fs_fat`: the FAT file-system server (LionsOS's `fat` component, sdfgen's
//! `LionsOs.FileSystem.Fat`): [`lions_fs::blk::fat_server`], an [`FsServer`] for one client over a
//! [`FatFs`] volume on one blk partition.
//!
//! Config sections, as sdfgen writes them for the FAT server PD: `.fs_server_config` (the
//! connection to the file-system client: command and completion queues, share region, channel)
//! and `.blk_client_config` (its connection to the blk virtualiser and its blk data region).
//! sdfgen also maps four worker-thread stacks for LionsOS's cothreads; this server runs every
//! command to completion in its event handler and does not use them.
//!
//! At start it waits (bounded) until the blk virtualiser has published its partition (a partition
//! of capacity 0, or none, ends the PD as one that could not start); the volume is mounted by the
//! client's `INITIALISE`. The block cache, its size (from the blk data region) and the queued blk
//! I/O beneath it are the library's (`lions_fs::cache`, `lions_fs::blk`, `lions_blk::QueuedBlk`).
//!
//! The FAT backend allocates (no_std + `alloc`). On the host board that is the process's heap; on
//! seL4 (`target_os = "none"`) it is 4 MiB of this PD's `.bss` (`lions_os::heap::Heap`): a
//! cluster-sized buffer per open file or directory (clusters up to 64 KiB) and the open-file
//! tables, with room for a few dozen open files of the largest clusters.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use lions_blk::BlkClientConfig;
use lions_fs::{FatFs, FsServer, FsServerConfig};

lions_os::config!(static FS: FsServerConfig = ".fs_server_config");
lions_os::config!(static BLK: BlkClientConfig = ".blk_client_config");

use lions_os::startup_failed as fail;

/// The worker-thread stack addresses sdfgen has the Microkit tool write into the FAT server PD
/// (`setvar_vaddr`, for LionsOS's cothreads). This server does not use them, but the tool refuses
/// an image without the symbols; they live in `.data.microkit`, which the linker script keeps.
#[cfg(target_os = "none")]
#[allow(non_upper_case_globals)]
mod worker_stacks {
    /// Worker stack 1's vaddr (patched by the Microkit tool).
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_one: u64 = 0;
    /// Worker stack 2's vaddr.
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_two: u64 = 0;
    /// Worker stack 3's vaddr.
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_three: u64 = 0;
    /// Worker stack 4's vaddr.
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_four: u64 = 0;
}

/// The seL4 PD's heap: the FAT backend's only source of memory there.
#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: lions_os::heap::Heap<{ 4 << 20 }> = lions_os::heap::Heap::new();

fn init() -> FsServer<'static, FatFs> {
    let fs = FS.mapped().unwrap_or_else(|e| fail(e));
    let blk = BLK.mapped().unwrap_or_else(|e| fail(e));
    lions_fs::blk::fat_server(fs, blk).unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
