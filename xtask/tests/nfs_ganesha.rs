// SPDX-License-Identifier: BSD-2-Clause
//! lions-nfs against a real NFSv3 server: nfs-ganesha with FSAL VFS on 127.0.0.1.
//!
//! Each test starts its own ganesha (NFS port 20490, MOUNT port 20048, NFSv3 over TCP only)
//! exporting a fresh directory under the temp dir, and `rpcbind -f -w` if nothing listens on
//! port 111 yet (stopped again at the end if this test started it). The client is
//! `lions_nfs::RpcClient` driven over a `std::net::TcpStream`; what it wrote is checked on disk
//! in the exported directory, and with `nfs-ls` / `nfs-cp` (libnfs-utils) as a second client.
//!
//! Needs root (ganesha serves files as their owners and binds its ports as root) and the
//! Debian packages `nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils`; without them each test
//! is reported as **not run** with the reason ([`common::harness`]), never as passed.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::harness::{Trial, missing_tools};
use lions_fs::queue::{Command as FsCommand, CompletionData, FsCmpl};
use lions_fs::{
    AccessMode, CommandType, DeferredServer, FS_QUEUE_BYTES, FsBuffer, FsClientQueues,
    FsServerQueues, FsStat, OpenFlags, OpenOptions, ShareRegion, Status as FsStatus,
};
use lions_nfs::client::{CallError, Config, RpcClient};
use lions_nfs::fs::{FsError, NfsFs, OpId, Outcome, Request};
use lions_nfs::fs_server::NfsBackend;
use lions_nfs::mount_session::{MountFailure, MountState, Mounter};
use lions_nfs::nfs3::{
    self, CreateHow, FileHandle, FileType, Nfs3Error, Sattr, StableHow, access, proc, status,
};
use lions_nfs::rpc::Auth;
use lions_nfs::xdr::Encoder;
use lions_nfs::{mount, portmap};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const NFS_PORT: u16 = 20490;
const MNT_PORT: u16 = 20048;

/// A running ganesha (and rpcbind, if we started it), stopped on drop.
struct Ganesha {
    dir: PathBuf,
    ganesha: Option<Child>,
    rpcbind: Option<Child>,
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn wait_listening(port: u16, on: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while listening(port) != on {
        assert!(
            Instant::now() < deadline,
            "port {port} did not become {}",
            if on { "open" } else { "closed" }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Ganesha {
    fn start(name: &str) -> Ganesha {
        assert!(
            !listening(NFS_PORT),
            "something already listens on port {NFS_PORT}"
        );
        let dir = std::env::temp_dir().join(format!("lions-nfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("export")).unwrap();
        std::fs::write(
            dir.join("ganesha.conf"),
            format!(
                "NFS_CORE_PARAM {{ Bind_Addr = 127.0.0.1; NFS_Port = {NFS_PORT}; \
                 MNT_Port = {MNT_PORT}; Protocols = 3; Enable_UDP = false; Enable_NLM = false; \
                 Enable_RQUOTA = false; }}\n\
                 NFSV4 {{ Graceless = true; }}\n\
                 EXPORT {{ Export_Id = 1; Path = {p}; Pseudo = {p}; Access_Type = RW; \
                 Squash = No_Root_Squash; Protocols = 3; Transports = TCP; SecType = sys, none; \
                 FSAL {{ Name = VFS; }} }}\n\
                 LOG {{ Default_Log_Level = EVENT; }}\n",
                p = dir.join("export").display()
            ),
        )
        .unwrap();
        let rpcbind = (!listening(portmap::PORT)).then(|| {
            let c = Command::new("rpcbind")
                .args(["-f", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("rpcbind");
            wait_listening(portmap::PORT, true);
            c
        });
        let mut g = Ganesha {
            dir,
            ganesha: None,
            rpcbind,
        };
        g.run();
        g
    }

    fn export(&self) -> PathBuf {
        self.dir.join("export")
    }

    fn export_path(&self) -> String {
        self.export().display().to_string()
    }

    fn run(&mut self) {
        let c = Command::new("ganesha.nfsd")
            .arg("-F")
            .arg("-L")
            .arg(self.dir.join("ganesha.log"))
            .arg("-f")
            .arg(self.dir.join("ganesha.conf"))
            .arg("-p")
            .arg(self.dir.join("ganesha.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ganesha.nfsd");
        self.ganesha = Some(c);
        wait_listening(NFS_PORT, true);
        wait_listening(MNT_PORT, true);
        // Listening comes before registering with rpcbind: wait for both registrations.
        let deadline = Instant::now() + Duration::from_secs(30);
        let getport = |prog, vers| {
            let mut pm = Conn::new(portmap::PORT, Auth::None, 1);
            let b = pm.call(portmap::PROGRAM, portmap::VERSION, portmap::GETPORT, |e| {
                portmap::encode_getport(e, prog, vers)
            });
            portmap::decode_getport(&b).unwrap()
        };
        while getport(mount::PROGRAM, mount::VERSION) != Some(MNT_PORT)
            || getport(nfs3::PROGRAM, nfs3::VERSION) != Some(NFS_PORT)
        {
            assert!(
                Instant::now() < deadline,
                "ganesha did not register with rpcbind"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.ganesha.take() {
            // SAFETY: signals our own child by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.wait();
            wait_listening(NFS_PORT, false);
        }
    }

    fn url(&self, file: &str) -> String {
        format!(
            "nfs://127.0.0.1{}/{file}?version=3&nfsport={NFS_PORT}&mountport={MNT_PORT}",
            self.export_path()
        )
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut c) = self.rpcbind.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A blocking driver of `RpcClient` over one TCP connection, reconnecting when it drops.
struct Conn {
    port: u16,
    stream: Option<TcpStream>,
    rpc: RpcClient,
    reconnects: u32,
}

fn auth_sys() -> Auth {
    Auth::Sys {
        stamp: 1,
        machine_name: b"lions-test".to_vec(),
        uid: 0,
        gid: 0,
        gids: vec![],
    }
}

impl Conn {
    fn new(port: u16, auth: Auth, max_in_flight: usize) -> Conn {
        let rpc = RpcClient::new(Config {
            auth,
            first_xid: std::process::id().wrapping_mul(0x10000) ^ u32::from(port),
            max_in_flight,
            max_record: 2 << 20,
        });
        let mut c = Conn {
            port,
            stream: None,
            rpc,
            reconnects: 0,
        };
        c.connect();
        c
    }

    fn connect(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match TcpStream::connect(("127.0.0.1", self.port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    s.set_nodelay(true).unwrap();
                    self.stream = Some(s);
                    return;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "connect to {}: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn reconnect(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.connect();
        self.rpc.reconnected();
        self.reconnects += 1;
    }

    /// Send what is queued; read until a reply is ready. Reconnects (and so retransmits) on a
    /// dropped connection.
    fn pump(&mut self) -> lions_nfs::Reply {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if let Some(r) = self.rpc.poll_reply() {
                return r;
            }
            let s = self.stream.as_mut().unwrap();
            let q = self.rpc.transmit_queue();
            if !q.is_empty() {
                match s.write(q) {
                    Ok(n) if n > 0 => self.rpc.transmitted(n),
                    _ => {
                        self.reconnect();
                        continue;
                    }
                }
                continue;
            }
            match s.read(&mut buf) {
                Ok(0) => self.reconnect(),
                Ok(n) => self.rpc.receive(&buf[..n]).expect("record marking"),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("no reply within 20 s")
                }
                Err(_) => self.reconnect(),
            }
        }
    }

    fn start(
        &mut self,
        prog: u32,
        vers: u32,
        p: u32,
        tag: u64,
        args: impl FnOnce(&mut Encoder<'_>),
    ) -> u32 {
        match self.rpc.call(prog, vers, p, tag, args) {
            Ok(x) => x,
            Err(CallError::Full) => panic!("too many calls in flight"),
            Err(e) => panic!("{e:?}"),
        }
    }

    /// One call, waited for: the procedure's result bytes.
    fn call(
        &mut self,
        prog: u32,
        vers: u32,
        p: u32,
        args: impl FnOnce(&mut Encoder<'_>),
    ) -> Vec<u8> {
        let xid = self.start(prog, vers, p, 0, args);
        let r = self.pump();
        assert_eq!(r.xid, xid);
        r.result()
            .unwrap_or_else(|e| panic!("proc {p}: {e:?}"))
            .to_vec()
    }

    fn nfs(&mut self, p: u32, args: impl FnOnce(&mut Encoder<'_>)) -> Vec<u8> {
        self.call(nfs3::PROGRAM, nfs3::VERSION, p, args)
    }
}

/// GETPORT of MOUNT and NFS, MNT of the export: the root handle and the NFS connection.
fn mount_export(g: &Ganesha, auth: Auth) -> (FileHandle, Conn) {
    let mut pm = Conn::new(portmap::PORT, Auth::None, 1);
    let b = pm.call(portmap::PROGRAM, portmap::VERSION, portmap::GETPORT, |e| {
        portmap::encode_getport(e, mount::PROGRAM, mount::VERSION)
    });
    assert_eq!(portmap::decode_getport(&b), Ok(Some(MNT_PORT)));
    let b = pm.call(portmap::PROGRAM, portmap::VERSION, portmap::GETPORT, |e| {
        portmap::encode_getport(e, nfs3::PROGRAM, nfs3::VERSION)
    });
    assert_eq!(portmap::decode_getport(&b), Ok(Some(NFS_PORT)));
    // A program nobody registered.
    let b = pm.call(portmap::PROGRAM, portmap::VERSION, portmap::GETPORT, |e| {
        portmap::encode_getport(e, 0x2000_1234, 1)
    });
    assert_eq!(portmap::decode_getport(&b), Ok(None));

    let mut m = Conn::new(MNT_PORT, auth.clone(), 1);
    let path = g.export_path();
    let b = m.call(mount::PROGRAM, mount::VERSION, mount::MNT, |e| {
        mount::encode_dirpath(e, path.as_bytes())
    });
    let (root, sys) = mount::decode_mnt(&b).unwrap();
    assert!(sys, "ganesha offers AUTH_SYS");
    let b = m.call(mount::PROGRAM, mount::VERSION, mount::MNT, |e| {
        mount::encode_dirpath(e, b"/no/such/export")
    });
    assert!(matches!(
        mount::decode_mnt(&b),
        Err(mount::MountError::Status(_))
    ));
    (root, Conn::new(NFS_PORT, auth, 64))
}

fn lookup(c: &mut Conn, dir: &FileHandle, name: &str) -> Result<nfs3::Lookup, Nfs3Error> {
    nfs3::decode_lookup(&c.nfs(proc::LOOKUP, |e| {
        nfs3::encode_dirop(e, dir, name.as_bytes())
    }))
}

fn create(
    c: &mut Conn,
    dir: &FileHandle,
    name: &str,
    how: CreateHow,
) -> Result<FileHandle, Nfs3Error> {
    let b = c.nfs(proc::CREATE, |e| {
        nfs3::encode_create(e, dir, name.as_bytes(), &how)
    });
    let cr = nfs3::decode_create(&b)?;
    match cr.fh {
        Some(fh) => Ok(fh),
        None => Ok(lookup(c, dir, name)?.fh),
    }
}

fn mkdir(c: &mut Conn, dir: &FileHandle, name: &str) -> Result<FileHandle, Nfs3Error> {
    let attr = Sattr {
        mode: Some(0o755),
        ..Sattr::default()
    };
    let b = c.nfs(proc::MKDIR, |e| {
        nfs3::encode_mkdir(e, dir, name.as_bytes(), &attr)
    });
    let cr = nfs3::decode_create(&b)?;
    match cr.fh {
        Some(fh) => Ok(fh),
        None => Ok(lookup(c, dir, name)?.fh),
    }
}

/// Write `data` at 0 in `chunk`-byte WRITEs, all in flight at once, then COMMIT; replies are
/// matched by xid.
fn write_pipelined(
    c: &mut Conn,
    fh: &FileHandle,
    data: &[u8],
    chunk: usize,
    stable: StableHow,
) -> [u8; 8] {
    let mut outstanding = BTreeSet::new();
    let mut verf = None;
    for (i, part) in data.chunks(chunk).enumerate() {
        let off = (i * chunk) as u64;
        while !c.rpc.can_call() {
            let r = c.pump();
            assert!(outstanding.remove(&r.tag));
            let w = nfs3::decode_write(r.result().unwrap()).unwrap();
            assert_eq!(w.count as usize, data[r.tag as usize..].len().min(chunk));
            assert!(verf.is_none_or(|v| v == w.verf));
            verf = Some(w.verf);
        }
        c.start(nfs3::PROGRAM, nfs3::VERSION, proc::WRITE, off, |e| {
            nfs3::encode_write(e, fh, off, stable, part)
        });
        outstanding.insert(off);
    }
    while !outstanding.is_empty() {
        let r = c.pump();
        assert!(outstanding.remove(&r.tag));
        let w = nfs3::decode_write(r.result().unwrap()).unwrap();
        assert!(w.committed >= stable);
        assert_eq!(w.count as usize, data[r.tag as usize..].len().min(chunk));
        verf = Some(w.verf);
    }
    let b = c.nfs(proc::COMMIT, |e| nfs3::encode_commit(e, fh, 0, 0));
    let cv = nfs3::decode_commit(&b).unwrap();
    assert_eq!(
        Some(cv),
        verf,
        "no server restart: the verifier is unchanged"
    );
    cv
}

/// Read the whole file in `chunk`-byte READs, all in flight at once.
fn read_pipelined(c: &mut Conn, fh: &FileHandle, len: usize, chunk: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut outstanding = 0;
    let mut got_eof = false;
    for off in (0..len.max(1)).step_by(chunk) {
        while !c.rpc.can_call() {
            got_eof |= take_read(c, &mut out, chunk);
            outstanding -= 1;
        }
        c.start(nfs3::PROGRAM, nfs3::VERSION, proc::READ, off as u64, |e| {
            nfs3::encode_read(e, fh, off as u64, chunk as u32)
        });
        outstanding += 1;
    }
    for _ in 0..outstanding {
        got_eof |= take_read(c, &mut out, chunk);
    }
    assert!(got_eof, "the last READ says end of file");
    out
}

fn take_read(c: &mut Conn, out: &mut [u8], chunk: usize) -> bool {
    let r = c.pump();
    let body = r.result().unwrap();
    let rd = nfs3::decode_read(body).unwrap();
    let off = r.tag as usize;
    assert_eq!(
        rd.data.len(),
        (out.len() - off).min(chunk),
        "short read at {off}"
    );
    out[off..off + rd.data.len()].copy_from_slice(rd.data);
    rd.eof
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn list(c: &mut Conn, dir: &FileHandle, plus: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut cookie = 0;
    let mut verf = [0; 8];
    loop {
        // Small replies so that the listing takes several calls (cookie continuation).
        let b = if plus {
            c.nfs(proc::READDIRPLUS, |e| {
                nfs3::encode_readdirplus(e, dir, cookie, verf, 256, 1024)
            })
        } else {
            c.nfs(proc::READDIR, |e| {
                nfs3::encode_readdir(e, dir, cookie, verf, 512)
            })
        };
        let l = if plus {
            nfs3::decode_readdirplus(&b)
        } else {
            nfs3::decode_readdir(&b)
        }
        .unwrap();
        for e in l.entries() {
            if plus && e.name != b"." && e.name != b".." {
                assert!(
                    e.fh.is_some() && e.attr.is_some(),
                    "READDIRPLUS sends handles and attributes"
                );
            }
            names.insert(String::from_utf8(e.name.to_vec()).unwrap());
            cookie = e.cookie;
        }
        verf = l.verf;
        if l.eof {
            return names;
        }
    }
}

fn disk_names(p: &Path) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    s.insert(".".into());
    s.insert("..".into());
    s
}

/// Every procedure, checked against the exported directory on disk.
fn every_procedure() {
    let g = Ganesha::start("procs");
    let (root, mut c) = mount_export(&g, auth_sys());
    let ex = g.export();

    let info = nfs3::decode_fsinfo(&c.nfs(proc::FSINFO, |e| nfs3::encode_fh(e, &root))).unwrap();
    assert!(info.rtmax >= 4096 && info.wtmax >= 4096, "{info:?}");
    let st = nfs3::decode_fsstat(&c.nfs(proc::FSSTAT, |e| nfs3::encode_fh(e, &root))).unwrap();
    assert!(
        st.tbytes > 0 && st.fbytes <= st.tbytes && st.abytes <= st.tbytes,
        "{st:?}"
    );
    let a = nfs3::decode_getattr(&c.nfs(proc::GETATTR, |e| nfs3::encode_fh(e, &root))).unwrap();
    assert_eq!(a.ftype, FileType::Dir);

    // MKDIR, CREATE (guarded, twice: EXIST), WRITE (unstable) + COMMIT, READ.
    let d = mkdir(&mut c, &root, "dir").unwrap();
    assert!(ex.join("dir").is_dir());
    assert_eq!(
        mkdir(&mut c, &root, "dir"),
        Err(Nfs3Error::Status(status::EXIST))
    );
    let guarded = CreateHow::Guarded(Sattr {
        mode: Some(0o640),
        ..Sattr::default()
    });
    let f = create(&mut c, &d, "file.bin", guarded).unwrap();
    assert_eq!(
        create(&mut c, &d, "file.bin", guarded),
        Err(Nfs3Error::Status(status::EXIST))
    );
    let data = pattern(200_000, 7);
    write_pipelined(&mut c, &f, &data, 32 * 1024, StableHow::Unstable);
    assert_eq!(
        std::fs::read(ex.join("dir/file.bin")).unwrap(),
        data,
        "on disk"
    );
    assert_eq!(read_pipelined(&mut c, &f, data.len(), 48 * 1024), data);
    // A FILE_SYNC write in the middle, seen on disk.
    let b = c.nfs(proc::WRITE, |e| {
        nfs3::encode_write(e, &f, 1000, StableHow::FileSync, b"hello")
    });
    let w = nfs3::decode_write(&b).unwrap();
    assert_eq!((w.count, w.committed), (5, StableHow::FileSync));
    assert_eq!(
        &std::fs::read(ex.join("dir/file.bin")).unwrap()[1000..1005],
        b"hello"
    );
    // READ past the end: empty, eof.
    let b = c.nfs(proc::READ, |e| nfs3::encode_read(e, &f, 1 << 30, 100));
    let r = nfs3::decode_read(&b).unwrap();
    assert!(r.data.is_empty() && r.eof);

    // GETATTR agrees with the disk; SETATTR truncates and changes the mode.
    let a = nfs3::decode_getattr(&c.nfs(proc::GETATTR, |e| nfs3::encode_fh(e, &f))).unwrap();
    assert_eq!(
        (a.ftype, a.size, a.mode & 0o7777),
        (FileType::Reg, data.len() as u64, 0o640)
    );
    let set = Sattr {
        size: Some(1234),
        mode: Some(0o600),
        ..Sattr::default()
    };
    let wcc =
        nfs3::decode_setattr(&c.nfs(proc::SETATTR, |e| nfs3::encode_setattr(e, &f, &set))).unwrap();
    assert_eq!(wcc.after.map(|a| a.size), Some(1234));
    let md = std::fs::metadata(ex.join("dir/file.bin")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!((md.len(), md.permissions().mode() & 0o7777), (1234, 0o600));

    // ACCESS (root, no squash: everything asked for on a file it owns).
    let want = access::READ | access::MODIFY | access::EXTEND;
    let got =
        nfs3::decode_access(&c.nfs(proc::ACCESS, |e| nfs3::encode_access(e, &f, want))).unwrap();
    assert_eq!(got & want, want);

    // LOOKUP finds the same handle; a missing name is NOENT; LOOKUP on a file is NOTDIR.
    assert_eq!(lookup(&mut c, &d, "file.bin").unwrap().fh, f);
    assert_eq!(
        lookup(&mut c, &d, "nope").map(|l| l.fh),
        Err(Nfs3Error::Status(status::NOENT))
    );
    assert_eq!(
        lookup(&mut c, &f, "x").map(|l| l.fh),
        Err(Nfs3Error::Status(status::NOTDIR))
    );

    // A directory of many entries, listed with READDIR and READDIRPLUS over several calls.
    for i in 0..40 {
        create(
            &mut c,
            &d,
            &format!("entry-with-a-long-name-{i:03}"),
            CreateHow::Unchecked(Sattr::default()),
        )
        .unwrap();
    }
    let on_disk = disk_names(&ex.join("dir"));
    assert_eq!(on_disk.len(), 43);
    assert_eq!(list(&mut c, &d, false), on_disk);
    assert_eq!(list(&mut c, &d, true), on_disk);

    // RENAME across directories; REMOVE; RMDIR (NOTEMPTY first).
    let d2 = mkdir(&mut c, &root, "other").unwrap();
    nfs3::decode_rename(&c.nfs(proc::RENAME, |e| {
        nfs3::encode_rename(e, &d, b"file.bin", &d2, b"moved.bin")
    }))
    .unwrap();
    assert!(!ex.join("dir/file.bin").exists());
    assert_eq!(
        std::fs::metadata(ex.join("other/moved.bin")).unwrap().len(),
        1234
    );
    let b = c.nfs(proc::RMDIR, |e| nfs3::encode_dirop(e, &root, b"dir"));
    assert_eq!(
        nfs3::decode_remove(&b),
        Err(Nfs3Error::Status(status::NOTEMPTY))
    );
    for i in 0..40 {
        let n = format!("entry-with-a-long-name-{i:03}");
        nfs3::decode_remove(&c.nfs(proc::REMOVE, |e| nfs3::encode_dirop(e, &d, n.as_bytes())))
            .unwrap();
    }
    nfs3::decode_remove(&c.nfs(proc::RMDIR, |e| nfs3::encode_dirop(e, &root, b"dir"))).unwrap();
    assert!(!ex.join("dir").exists());
    let b = c.nfs(proc::REMOVE, |e| nfs3::encode_dirop(e, &root, b"dir"));
    assert_eq!(
        nfs3::decode_remove(&b),
        Err(Nfs3Error::Status(status::NOENT))
    );
    // The removed directory's handle is stale now.
    let b = c.nfs(proc::GETATTR, |e| nfs3::encode_fh(e, &d));
    assert!(matches!(
        nfs3::decode_getattr(&b),
        Err(Nfs3Error::Status(status::STALE | status::NOENT))
    ));

    // UMNT.
    let mut m = Conn::new(MNT_PORT, auth_sys(), 1);
    let path = g.export_path();
    let b = m.call(mount::PROGRAM, mount::VERSION, mount::UMNT, |e| {
        mount::encode_dirpath(e, path.as_bytes())
    });
    assert!(b.is_empty());
    assert_eq!(c.rpc.stats(), Default::default(), "no reply dropped");
}

/// `nfs-ls` and `nfs-cp` (libnfs) see what we wrote; we read what `nfs-cp` wrote.
fn second_client() {
    let g = Ganesha::start("libnfs");
    let (root, mut c) = mount_export(&g, auth_sys());
    let f = create(
        &mut c,
        &root,
        "ours.bin",
        CreateHow::Unchecked(Sattr::default()),
    )
    .unwrap();
    let data = pattern(1 << 20, 99);
    write_pipelined(&mut c, &f, &data, 64 * 1024, StableHow::Unstable);

    let out = Command::new("nfs-ls").arg(g.url("")).output().unwrap();
    assert!(
        out.status.success(),
        "nfs-ls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ls = String::from_utf8_lossy(&out.stdout);
    let line = ls
        .lines()
        .find(|l| l.ends_with(" ours.bin"))
        .unwrap_or_else(|| panic!("nfs-ls: {ls}"));
    assert!(
        line.split_whitespace().any(|w| w == "1048576"),
        "size in `{line}`"
    );

    let local = g.dir.join("copied.bin");
    let st = Command::new("nfs-cp")
        .arg(g.url("ours.bin"))
        .arg(&local)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(&local).unwrap(),
        data,
        "nfs-cp copy of our file"
    );

    let theirs = pattern(300_000, 5);
    std::fs::write(&local, &theirs).unwrap();
    let st = Command::new("nfs-cp")
        .arg(&local)
        .arg(g.url("theirs.bin"))
        .status()
        .unwrap();
    assert!(st.success());
    let fh = lookup(&mut c, &root, "theirs.bin").unwrap().fh;
    assert_eq!(read_pipelined(&mut c, &fh, theirs.len(), 64 * 1024), theirs);
}

/// ganesha stopped with calls in flight and restarted: the client reconnects, retransmits the
/// unanswered calls, and its file handles are still valid.
fn server_restart() {
    let mut g = Ganesha::start("restart");
    let (root, mut c) = mount_export(&g, auth_sys());
    let f = create(
        &mut c,
        &root,
        "survivor.bin",
        CreateHow::Unchecked(Sattr::default()),
    )
    .unwrap();
    let data = pattern(256 * 1024, 3);
    let verf1 = write_pipelined(&mut c, &f, &data, 32 * 1024, StableHow::FileSync);

    g.stop();
    // Calls started while the server is down: sent into a dead connection, then retransmitted.
    let second = pattern(64 * 1024, 11);
    let mut tags = BTreeSet::new();
    for (i, part) in second.chunks(16 * 1024).enumerate() {
        let off = (data.len() + i * 16 * 1024) as u64;
        c.start(nfs3::PROGRAM, nfs3::VERSION, proc::WRITE, off, |e| {
            nfs3::encode_write(e, &f, off, StableHow::FileSync, part)
        });
        tags.insert(off);
    }
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        g.run();
        g
    });
    while !tags.is_empty() {
        let r = c.pump();
        assert!(tags.remove(&r.tag));
        nfs3::decode_write(r.result().unwrap()).unwrap();
    }
    let g = restarter.join().unwrap();
    assert!(c.reconnects >= 1, "the client reconnected");
    assert!(c.rpc.stats().retransmitted >= 4);
    let b = c.nfs(proc::COMMIT, |e| nfs3::encode_commit(e, &f, 0, 0));
    let verf2 = nfs3::decode_commit(&b).unwrap();
    assert_ne!(verf1, verf2, "a restarted server has a new write verifier");
    let mut all = data.clone();
    all.extend_from_slice(&second);
    assert_eq!(std::fs::read(g.export().join("survivor.bin")).unwrap(), all);
    assert_eq!(read_pipelined(&mut c, &f, all.len(), 64 * 1024), all);
}

/// Drive `fs` over `s` until an operation finishes.
fn fs_wait(fs: &mut NfsFs, s: &mut TcpStream) -> (OpId, Result<Outcome, FsError>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if let Some(x) = fs.poll() {
            return x;
        }
        let q = fs.rpc().transmit_queue();
        if !q.is_empty() {
            let n = s.write(q).unwrap();
            fs.rpc().transmitted(n);
            continue;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "server closed the connection");
        fs.rpc().receive(&buf[..n]).unwrap();
    }
}

fn fs_do(fs: &mut NfsFs, s: &mut TcpStream, req: Request) -> Result<Outcome, FsError> {
    fs.start(1, req);
    let (id, r) = fs_wait(fs, s);
    assert_eq!(id, 1);
    r
}

fn p(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// `NfsFs`: the FS command set by path, many operations at once, checked on disk.
fn fs_operations() {
    let g = Ganesha::start("fsops");
    let (root, c) = mount_export(&g, auth_sys());
    let ex = g.export();
    let Conn { stream, rpc, .. } = c;
    let mut s = stream.unwrap();
    let mut fs = NfsFs::new(rpc, root);

    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Mkdir(p("a"))),
        Ok(Outcome::Done)
    );
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Mkdir(p("/a/b/"))),
        Ok(Outcome::Done)
    );
    assert!(ex.join("a/b").is_dir());
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Mkdir(p("a/b"))),
        Err(FsError::Nfs(status::EXIST))
    );
    let create = |path: &str, exclusive| Request::Create {
        path: p(path),
        mode: 0o644,
        exclusive,
    };
    let Ok(Outcome::Object(f, _)) = fs_do(&mut fs, &mut s, create("a/b/f.bin", true)) else {
        panic!("create")
    };
    assert_eq!(
        fs_do(&mut fs, &mut s, create("a/b/f.bin", true)),
        Err(FsError::Nfs(status::EXIST))
    );
    // Opening the existing file (not exclusive) gives the same handle.
    assert!(
        matches!(fs_do(&mut fs, &mut s, create("a/b/f.bin", false)), Ok(Outcome::Object(h, _)) if h == f)
    );

    // Writes in flight at once, completing in any order.
    let data = pattern(300_000, 21);
    for (i, part) in data.chunks(30_000).enumerate() {
        fs.start(
            100 + i as u64,
            Request::Write {
                fh: f,
                offset: (i * 30_000) as u64,
                data: part.to_vec(),
                stable: StableHow::Unstable,
            },
        );
    }
    let mut ids = BTreeSet::new();
    for _ in 0..10 {
        let (id, r) = fs_wait(&mut fs, &mut s);
        assert!(matches!(r, Ok(Outcome::Written(30_000, _, _))), "{r:?}");
        assert!(ids.insert(id));
    }
    assert_eq!(ids, (100..110).collect());
    assert!(matches!(
        fs_do(&mut fs, &mut s, Request::Commit(f)),
        Ok(Outcome::Committed(_))
    ));
    assert_eq!(std::fs::read(ex.join("a/b/f.bin")).unwrap(), data);
    let Ok(Outcome::Attr(a)) = fs_do(&mut fs, &mut s, Request::Stat(p("a/./b//f.bin"))) else {
        panic!("stat")
    };
    assert_eq!(a.size, data.len() as u64);
    let mut back = Vec::new();
    loop {
        let r = fs_do(
            &mut fs,
            &mut s,
            Request::Read {
                fh: f,
                offset: back.len() as u64,
                count: 65536,
            },
        );
        let Ok(Outcome::Data(d, eof)) = r else {
            panic!("{r:?}")
        };
        back.extend_from_slice(&d);
        if eof {
            break;
        }
    }
    assert_eq!(back, data);
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::SetSize(f, 10)),
        Ok(Outcome::Done)
    );
    assert_eq!(std::fs::metadata(ex.join("a/b/f.bin")).unwrap().len(), 10);
    let Ok(Outcome::Attr(a)) = fs_do(&mut fs, &mut s, Request::GetAttr(f)) else {
        panic!("getattr")
    };
    assert_eq!(a.size, 10);

    // Many creates at once; the listing pages through them.
    for i in 0..30 {
        fs.start(200 + i, create(&format!("a/many-{i:02}"), true));
    }
    for _ in 0..30 {
        let (id, r) = fs_wait(&mut fs, &mut s);
        assert!(
            (200..230).contains(&id) && matches!(r, Ok(Outcome::Object(..))),
            "{id} {r:?}"
        );
    }
    let Ok(Outcome::Object(adir, _)) = fs_do(&mut fs, &mut s, Request::Lookup(p("a"))) else {
        panic!("lookup")
    };
    let (mut names, mut cookie, mut verf) = (BTreeSet::new(), 0, [0; 8]);
    loop {
        let Ok(Outcome::Dir(page)) = fs_do(
            &mut fs,
            &mut s,
            Request::ReadDir {
                fh: adir,
                cookie,
                verf,
            },
        ) else {
            panic!("readdir")
        };
        for (n, c) in page.entries {
            names.insert(String::from_utf8(n).unwrap());
            cookie = c;
        }
        verf = page.verf;
        if page.eof {
            break;
        }
    }
    assert_eq!(names, disk_names(&ex.join("a")));
    assert_eq!(names.len(), 33);

    // Rename across directories, remove, rmdir; errors.
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Rename(p("a/b/f.bin"), p("g.bin"))),
        Ok(Outcome::Done)
    );
    assert!(ex.join("g.bin").is_file() && !ex.join("a/b/f.bin").exists());
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Stat(p("a/b/f.bin"))),
        Err(FsError::Nfs(status::NOENT))
    );
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Stat(p("g.bin/x"))),
        Err(FsError::Nfs(status::NOTDIR))
    );
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Rmdir(p("a"))),
        Err(FsError::Nfs(status::NOTEMPTY))
    );
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Remove(p("/"))),
        Err(FsError::InvalidPath)
    );
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Stat("x".repeat(256).into_bytes())),
        Err(FsError::InvalidPath)
    );
    for i in 0..30 {
        fs.start(300 + i, Request::Remove(p(&format!("a/many-{i:02}"))));
    }
    for _ in 0..30 {
        assert_eq!(fs_wait(&mut fs, &mut s).1, Ok(Outcome::Done));
    }
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Rmdir(p("a/b"))),
        Ok(Outcome::Done)
    );
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Rmdir(p("a"))),
        Ok(Outcome::Done)
    );
    assert_eq!(
        fs_do(&mut fs, &mut s, Request::Remove(p("g.bin"))),
        Ok(Outcome::Done)
    );
    assert_eq!(disk_names(&ex).len(), 2, "the export is empty again");
    let Ok(Outcome::FsStat(st)) = fs_do(&mut fs, &mut s, Request::FsStat) else {
        panic!("fsstat")
    };
    assert!(st.tbytes > 0);
    // Root itself: Lookup and Stat of "" and "/".
    assert!(
        matches!(fs_do(&mut fs, &mut s, Request::Lookup(p("/"))), Ok(Outcome::Object(h, Some(_))) if h == root)
    );
    assert!(
        matches!(fs_do(&mut fs, &mut s, Request::Stat(p(""))), Ok(Outcome::Attr(a)) if a.ftype == FileType::Dir)
    );
    assert_eq!(fs.in_progress(), 0);
}

/// Zeroed, page-aligned memory standing in for a shared region.
struct Region {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

impl Region {
    fn new(len: usize) -> Region {
        let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = std::ptr::NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        Region { ptr, layout }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The FS protocol's client end and the server under test, and the network under the server.
struct FsWire<'a> {
    server: DeferredServer<'a, NfsBackend>,
    client: FsClientQueues<'a>,
    share: ShareRegion<'a>,
    stream: TcpStream,
    next: u64,
    reconnects: u32,
}

impl FsWire<'_> {
    fn send(&mut self, c: FsCommand) -> u64 {
        self.next += 1;
        self.client.commands.push(c.encode(self.next)).unwrap();
        self.client.commands.publish();
        self.next
    }

    /// Run the server and its network until `n` completions arrived.
    fn wait(&mut self, n: usize) -> Vec<FsCmpl> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            self.server.process();
            while let Some(c) = self.client.completions.pop().unwrap() {
                out.push(c);
            }
            self.client.completions.release();
            if out.len() >= n {
                assert_eq!(out.len(), n, "more completions than requests");
                return out;
            }
            let rpc = self.server.backend_mut().fs().rpc();
            let q = rpc.transmit_queue();
            if !q.is_empty() {
                let k = self.stream.write(q).unwrap();
                rpc.transmitted(k);
                continue;
            }
            assert!(
                rpc.in_flight() > 0,
                "waiting for {n} completions with no NFS call in flight"
            );
            match self.stream.read(&mut buf) {
                Ok(k) if k > 0 => rpc.receive(&buf[..k]).unwrap(),
                // The server went away: connect again (it may take a while to come back), and
                // the client sends its unanswered calls again.
                _ => {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    self.stream = loop {
                        if let Ok(s) = TcpStream::connect(("127.0.0.1", NFS_PORT)) {
                            break s;
                        }
                        assert!(Instant::now() < deadline, "ganesha did not come back");
                        std::thread::sleep(Duration::from_millis(100));
                    };
                    self.stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    rpc.reconnected();
                    self.reconnects += 1;
                }
            }
        }
    }

    fn call(&mut self, c: FsCommand) -> FsCmpl {
        let t = c.command_type();
        let id = self.send(c);
        let r = self.wait(1)[0];
        assert_eq!(r.id, id, "{t:?}");
        r
    }

    fn status(&mut self, c: FsCommand) -> FsStatus {
        self.call(c).status().unwrap()
    }

    fn ok(&mut self, c: FsCommand) -> CompletionData {
        let t = c.command_type();
        let r = self.call(c);
        assert_eq!(r.status(), Ok(FsStatus::Success), "{t:?}");
        r.data(t)
    }

    fn put(&self, offset: u64, bytes: &[u8]) -> FsBuffer {
        let b = FsBuffer {
            offset,
            size: bytes.len() as u64,
        };
        self.share.write(b, 0, bytes).unwrap();
        b
    }

    fn path(&self, p: &str) -> FsBuffer {
        self.put(0, p.as_bytes())
    }

    fn path2(&self, p: &str) -> FsBuffer {
        self.put(8192, p.as_bytes())
    }

    fn get(&self, b: FsBuffer, len: u64) -> Vec<u8> {
        let mut v = vec![0; len as usize];
        self.share.read(b, 0, &mut v).unwrap();
        v
    }

    fn open(&mut self, p: &str, flags: OpenFlags) -> Result<u64, FsStatus> {
        let path = self.path(p);
        let r = self.call(FsCommand::FileOpen { path, flags });
        match (r.status().unwrap(), r.data(CommandType::FileOpen)) {
            (FsStatus::Success, CompletionData::Fd(fd)) => Ok(fd),
            (s, _) => Err(s),
        }
    }
}

/// The whole FS command set through `DeferredServer` + `NfsBackend` (the `fs_nfs` core),
/// against ganesha, checked on disk and with `nfs-ls`.
fn fs_protocol() {
    let mut g = Ganesha::start("fsproto");
    let ex = g.export();
    let (root, c) = mount_export(&g, auth_sys());
    let Conn { stream, rpc, .. } = c;
    let (cmd, cmpl, share) = (
        Region::new(FS_QUEUE_BYTES),
        Region::new(FS_QUEUE_BYTES),
        Region::new(4 << 20),
    );
    // SAFETY: the regions outlive the queues and the share region (dropped at the end of this
    // function, after `w`); one server and one client side each.
    let (sq, cq, sh, sh2) = unsafe {
        (
            FsServerQueues::new(cmd.ptr, FS_QUEUE_BYTES, cmpl.ptr, FS_QUEUE_BYTES).unwrap(),
            FsClientQueues::new(cmd.ptr, FS_QUEUE_BYTES, cmpl.ptr, FS_QUEUE_BYTES).unwrap(),
            ShareRegion::new(share.ptr, 4 << 20),
            ShareRegion::new(share.ptr, 4 << 20),
        )
    };
    let backend = NfsBackend::new(NfsFs::new(rpc, root));
    let mut w = FsWire {
        server: DeferredServer::new(sq, sh, lions_os::Channel::new(1), backend),
        client: cq,
        share: sh2,
        stream: stream.unwrap(),
        next: 0,
        reconnects: 0,
    };
    let rw_create = OpenFlags {
        access: AccessMode::ReadWrite,
        options: OpenOptions::CREATE,
    };
    let ro = OpenFlags::new(AccessMode::ReadOnly);

    let p = w.path("/d");
    assert_eq!(
        w.status(FsCommand::DirCreate { path: p }),
        FsStatus::Error,
        "not mounted"
    );
    w.ok(FsCommand::Initialise);
    w.ok(FsCommand::DirCreate { path: p });
    assert!(ex.join("d").is_dir());
    assert_eq!(
        w.status(FsCommand::DirCreate { path: p }),
        FsStatus::AlreadyExists
    );
    let fd = w.open("/d/f", rw_create).unwrap();
    assert_eq!(w.open("/d/none", ro), Err(FsStatus::NoFile));
    assert_eq!(
        w.open("/d", ro),
        Err(FsStatus::InvalidPath),
        "a directory is not a file"
    );

    // Three writes in flight at once, then sync: on disk.
    let data = pattern(300_000, 77);
    for i in 0..3u64 {
        let buf = w.put(
            1 << 20 | (i << 18),
            &data[(i * 100_000) as usize..][..100_000],
        );
        w.send(FsCommand::FileWrite {
            fd,
            offset: i * 100_000,
            buf,
        });
    }
    for c in w.wait(3) {
        assert_eq!(
            c.data(CommandType::FileWrite),
            CompletionData::LenWritten(100_000)
        );
    }
    w.ok(FsCommand::FileSync { fd });
    assert_eq!(std::fs::read(ex.join("d/f")).unwrap(), data);
    assert_eq!(
        w.ok(FsCommand::FileSize { fd }),
        CompletionData::Size(300_000)
    );
    // Two reads in flight; the data lands in the share region.
    let bufs = [
        FsBuffer {
            offset: 2 << 20,
            size: 150_000,
        },
        FsBuffer {
            offset: 3 << 20,
            size: 150_000,
        },
    ];
    for (i, b) in bufs.iter().enumerate() {
        w.send(FsCommand::FileRead {
            fd,
            offset: i as u64 * 150_000,
            buf: *b,
        });
    }
    for c in w.wait(2) {
        assert_eq!(
            c.data(CommandType::FileRead),
            CompletionData::LenRead(150_000)
        );
    }
    assert_eq!(
        [w.get(bufs[0], 150_000), w.get(bufs[1], 150_000)].concat(),
        data
    );
    // Read at the end: 0 bytes.
    assert_eq!(
        w.ok(FsCommand::FileRead {
            fd,
            offset: 300_000,
            buf: bufs[0]
        }),
        CompletionData::LenRead(0)
    );
    // STAT.
    let sp = w.path("/d/f");
    let sb = FsBuffer {
        offset: 16384,
        size: size_of::<FsStat>() as u64,
    };
    w.ok(FsCommand::Stat { path: sp, buf: sb });
    let st = <FsStat as zerocopy::FromBytes>::read_from_bytes(&w.get(sb, sb.size)).unwrap();
    assert_eq!((st.size, st.mode & 0o170_000), (300_000, 0o100_000));
    // TRUNCATE; CLOSE (commits).
    w.ok(FsCommand::FileTruncate { fd, length: 1000 });
    assert_eq!(std::fs::metadata(ex.join("d/f")).unwrap().len(), 1000);
    w.ok(FsCommand::FileClose { fd });
    assert_eq!(w.status(FsCommand::FileSize { fd }), FsStatus::InvalidFd);
    // RENAME out of the directory.
    let (a, b) = (w.path("/d/f"), w.path2("/g"));
    w.ok(FsCommand::Rename {
        old_path: a,
        new_path: b,
    });
    assert!(ex.join("g").is_file() && !ex.join("d/f").exists());

    // A directory of 5 files, listed, told, rewound, sought.
    for i in 0..5 {
        let fd = w.open(&format!("/d/file{i}"), rw_create).unwrap();
        w.ok(FsCommand::FileClose { fd });
    }
    let dp = w.path("/d");
    let CompletionData::Fd(dfd) = w.ok(FsCommand::DirOpen { path: dp }) else {
        panic!("dir fd")
    };
    let nb = FsBuffer {
        offset: 20000,
        size: 256,
    };
    let mut names = BTreeSet::new();
    loop {
        let r = w.call(FsCommand::DirRead { fd: dfd, buf: nb });
        match (r.status().unwrap(), r.data(CommandType::DirRead)) {
            (FsStatus::Success, CompletionData::PathLen(n)) => {
                names.insert(String::from_utf8(w.get(nb, n)).unwrap());
            }
            (FsStatus::EndOfDirectory, _) => break,
            (s, d) => panic!("{s:?} {d:?}"),
        }
    }
    let mut want = disk_names(&ex.join("d"));
    want.remove(".");
    want.remove("..");
    assert_eq!(names, want);
    assert_eq!(
        w.ok(FsCommand::DirTell { fd: dfd }),
        CompletionData::Location(5)
    );
    w.ok(FsCommand::DirSeek { fd: dfd, loc: 2 });
    let mut rest = 0;
    while w.status(FsCommand::DirRead { fd: dfd, buf: nb }) == FsStatus::Success {
        rest += 1;
    }
    assert_eq!(rest, 3, "after seeking to 2 of 5");
    w.ok(FsCommand::DirRewind { fd: dfd });
    assert_eq!(
        w.status(FsCommand::DirRead { fd: dfd, buf: nb }),
        FsStatus::Success
    );
    assert_eq!(
        w.ok(FsCommand::DirTell { fd: dfd }),
        CompletionData::Location(1)
    );
    w.ok(FsCommand::DirClose { fd: dfd });
    let gp = w.path("/g");
    assert_eq!(
        w.status(FsCommand::DirOpen { path: gp }),
        FsStatus::NotDirectory
    );

    // REMOVE, DIR_REMOVE.
    let dp = w.path("/d");
    assert_eq!(
        w.status(FsCommand::DirRemove { path: dp }),
        FsStatus::NotEmpty
    );
    for i in 0..5 {
        let p = w.path(&format!("/d/file{i}"));
        w.ok(FsCommand::FileRemove { path: p });
    }
    let dp = w.path("/d");
    w.ok(FsCommand::DirRemove { path: dp });
    assert!(!ex.join("d").exists());
    assert_eq!(
        w.status(FsCommand::FileRemove { path: dp }),
        FsStatus::NoFile
    );
    // ganesha restarted between unstable writes and their sync: the FS client's next command
    // is served after a reconnect, and the sync says the writes may be lost (new verifier).
    let fd = w.open("/r", rw_create).unwrap();
    let first = pattern(50_000, 1);
    let buf = w.put(1 << 20, &first);
    assert_eq!(
        w.ok(FsCommand::FileWrite { fd, offset: 0, buf }),
        CompletionData::LenWritten(50_000)
    );
    g.stop();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        g.run();
        g
    });
    let buf = w.put(2 << 20, &first);
    assert_eq!(
        w.ok(FsCommand::FileWrite {
            fd,
            offset: 50_000,
            buf
        }),
        CompletionData::LenWritten(50_000)
    );
    let g = restarter.join().unwrap();
    assert!(w.reconnects >= 1, "the server's connection was replaced");
    assert_eq!(
        w.status(FsCommand::FileSync { fd }),
        FsStatus::Error,
        "verifier changed"
    );
    assert_eq!(
        w.ok(FsCommand::FileSize { fd }),
        CompletionData::Size(100_000)
    );
    let buf = w.put(1 << 20, b"after");
    w.ok(FsCommand::FileWrite { fd, offset: 0, buf });
    w.ok(FsCommand::FileSync { fd });
    w.ok(FsCommand::FileClose { fd });
    assert_eq!(&std::fs::read(ex.join("r")).unwrap()[..5], b"after");
    let p = w.path("/r");
    w.ok(FsCommand::FileRemove { path: p });

    w.ok(FsCommand::Deinitialise);
    assert!(!w.server.mounted());

    // The second client sees the file written through the FS protocol.
    let out = Command::new("nfs-ls").arg(g.url("")).output().unwrap();
    let ls = String::from_utf8_lossy(&out.stdout);
    assert!(
        ls.lines()
            .any(|l| l.ends_with(" g") && l.split_whitespace().any(|x| x == "1000")),
        "{ls}"
    );
    drop(w);
}

/// Drive a `Mounter` over TcpStreams to its end.
fn run_mounter(m: &mut Mounter) -> MountState {
    let mut port = None;
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        if m.connect_to() != port {
            port = m.connect_to();
            stream = port.map(|p| TcpStream::connect(("127.0.0.1", p)).unwrap());
            if stream.is_some() {
                m.connected();
            }
        }
        match m.poll() {
            MountState::Working => {}
            s => return s,
        }
        if m.connect_to() != port {
            continue;
        }
        let s = stream.as_mut().unwrap();
        let q = m.rpc().transmit_queue();
        if !q.is_empty() {
            let n = s.write(q).unwrap();
            m.rpc().transmitted(n);
            continue;
        }
        if m.rpc().in_flight() > 0 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            m.rpc().receive(&buf[..n]).unwrap();
        }
    }
}

/// `Mounter`: through the portmapper or with configured ports, and a refused export.
fn mounter() {
    let g = Ganesha::start("mounter");
    let export = g.export_path();
    let mut m = Mounter::new(export.as_bytes(), auth_sys(), 77, None);
    let MountState::Mounted { root, nfs_port } = run_mounter(&mut m) else {
        panic!("mount")
    };
    assert_eq!(nfs_port, NFS_PORT);
    let mut c = Conn::new(nfs_port, auth_sys(), 4);
    let a = nfs3::decode_getattr(&c.nfs(proc::GETATTR, |e| nfs3::encode_fh(e, &root))).unwrap();
    assert_eq!(a.ftype, FileType::Dir);
    let mut m = Mounter::new(
        export.as_bytes(),
        auth_sys(),
        99,
        Some((MNT_PORT, NFS_PORT)),
    );
    assert_eq!(
        run_mounter(&mut m),
        MountState::Mounted {
            root,
            nfs_port: NFS_PORT
        }
    );
    let mut m = Mounter::new(b"/not/exported", auth_sys(), 5, None);
    assert!(matches!(
        run_mounter(&mut m),
        MountState::Failed(MountFailure::Refused(_))
    ));
}

fn not_runnable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "needs root (ganesha binds its ports and serves files as their owners)".into(),
        );
    }
    missing_tools(&[
        ("ganesha.nfsd", "nfs-ganesha nfs-ganesha-vfs"),
        ("rpcbind", "rpcbind"),
        ("nfs-ls", "libnfs-utils"),
        ("nfs-cp", "libnfs-utils"),
    ])
    .or_else(|| {
        (!Path::new("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so").exists()
            && !Path::new("/usr/lib/aarch64-linux-gnu/ganesha/libfsalvfs.so").exists()
            && !Path::new("/usr/lib64/ganesha/libfsalvfs.so").exists())
        .then(|| "missing ganesha's FSAL VFS (Debian package nfs-ganesha-vfs)".into())
    })
}

fn main() -> ExitCode {
    let not_run = not_runnable();
    common::harness::run(vec![
        Trial {
            name: "ganesha_every_procedure",
            run: every_procedure,
            not_run: not_run.clone(),
        },
        Trial {
            name: "ganesha_second_client_libnfs",
            run: second_client,
            not_run: not_run.clone(),
        },
        Trial {
            name: "ganesha_fs_operations",
            run: fs_operations,
            not_run: not_run.clone(),
        },
        Trial {
            name: "ganesha_fs_protocol_deferred_server",
            run: fs_protocol,
            not_run: not_run.clone(),
        },
        Trial {
            name: "ganesha_mounter",
            run: mounter,
            not_run: not_run.clone(),
        },
        Trial {
            name: "ganesha_server_restart",
            run: server_restart,
            not_run,
        },
    ])
}
