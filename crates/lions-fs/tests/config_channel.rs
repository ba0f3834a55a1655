// SPDX-License-Identifier: BSD-2-Clause
//! Issue 12 item 5: a config's channel id is data. Above 61 the FS server and client refuse it
//! with an error (`QueueError::Channel`) instead of panicking in `Channel::new`.
#![allow(clippy::unwrap_used)]

mod common;

use common::Conn;
use lions_fs::{
    FsClient, FsClientConfig, FsConnectionResource, FsServer, FsServerConfig, QueueError, RamDisk,
};

#[test]
fn channel_ids_above_61_are_errors_not_panics() {
    for id in [0u8, 61, 62, 63, 255] {
        let conn = Conn::new(4096);
        let link = FsConnectionResource::new(
            conn.cmd.resource(),
            conn.cmpl.resource(),
            conn.share.resource(),
            0,
            id,
        );
        let s = FsServerConfig::new(link);
        let c = FsClientConfig::new(link);
        // SAFETY: the regions outlive both ends; one server and one client per connection.
        let server =
            unsafe { FsServer::from_config(&s, lions_fs::FatFs::new(RamDisk::new(512, 8))) };
        // SAFETY: as above.
        let client = unsafe { FsClient::new(&c) };
        if id <= 61 {
            assert_eq!(server.unwrap().client_channel().index(), id);
            assert!(client.is_ok());
        } else {
            assert!(
                matches!(server, Err(QueueError::Channel(i)) if i == id),
                "id {id}"
            );
            assert!(
                matches!(client, Err(QueueError::Channel(i)) if i == id),
                "id {id}"
            );
        }
    }
}
