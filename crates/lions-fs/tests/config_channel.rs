// SPDX-License-Identifier: BSD-2-Clause
//! Issue 12 item 5: a config's channel id is data. Above 61 the FS server and client refuse it
//! with an error (`QueueError::Channel`) instead of panicking in `Channel::new`.
#![allow(clippy::unwrap_used)]

mod common;

use common::Conn;
use lions_fs::{
    FsClient, FsClientConfig, FsConnectionResource, FsServer, FsServerConfig, QueueError, RamDisk,
};
use lions_os::Mapped;

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
        let checked = unsafe { (Mapped::check(&s).is_ok(), Mapped::check(&c).is_ok()) };
        // The token refuses such a config already (its `validate`); the constructors check too,
        // for a token assumed without the config's own checks.
        assert_eq!(checked, (id <= 61, id <= 61), "id {id}");
        // SAFETY: as above; the regions are the test's own sim regions.
        let (ts, tc) = unsafe { (Mapped::assume(&s), Mapped::assume(&c)) };
        let server = FsServer::from_config(ts, lions_fs::FatFs::new(RamDisk::new(512, 8)));
        let client = FsClient::new(tc);
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
