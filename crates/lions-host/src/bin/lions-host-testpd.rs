// SPDX-License-Identifier: BSD-2-Clause
//! Test protection domains for lions-host's integration tests and round-trip benchmark. One image
//! serves every role; the PD name picks it (as Microkit test systems share one ELF).
//!
//! Shared regions are found at fixed addresses the tests' `.system` files use: `0x2000000` for the
//! first map of a PD, `0x3000000` for the second.

// Test code: a failed operation should panic (the PD faults, the test sees it).
#![allow(clippy::unwrap_used)]

use lions_os::host::register_irq_fd;
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, NullHandler, get_mr, pd_name, set_mr};
use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

lions_os::protection_domain!(role);

/// Word `i` of the region mapped at `base`.
fn word(base: usize, i: usize) -> &'static AtomicU64 {
    // SAFETY: the test systems map a shared, writable (for the writers) region of at least one page
    // at `base` in this PD before `init` runs; it is never unmapped, and every process touches it
    // only through atomics.
    unsafe { &*((base + 8 * i) as *const AtomicU64) }
}

const FIRST: usize = 0x200_0000;
const SECOND: usize = 0x300_0000;

/// Wait (bounded) until `f` holds; false on timeout.
fn wait_until(f: impl Fn() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

type Boxed = Box<dyn Handler<Error = Infallible>>;

/// The handler of the role this PD plays.
struct Role(Boxed);

impl Handler for Role {
    type Error = Infallible;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        self.0.notified(channels)
    }
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        self.0.protected(ch, msg)
    }
}

fn role() -> Role {
    Role(init())
}

fn init() -> Boxed {
    let name = pd_name();
    match name.as_str() {
        "coal_tx" => coal_tx(),
        "coal_rx" => {
            assert!(
                wait_until(|| word(FIRST, 0).load(Ordering::Acquire) == 1),
                "coal_tx never finished"
            );
            Box::new(Printer { name, count: 0 })
        }
        "ppc_client" => ppc_client(),
        "ppc_server" => Box::new(Server),
        "dying_client" => dying_client(),
        "def_a" => def_a(),
        "def_b" => Box::new(Deferred { flag: 0 }),
        "def_c" => Box::new(Deferred { flag: 1 }),
        "faulty" => faulty(),
        "survivor" => survivor(),
        "crashy" => crashy(),
        "doomed" => panic!("always"),
        "cannot_start" => lions_os::startup_failed("port 1234 is in use (try another port)"),
        "irq_pd" => irq_pd(),
        "irq_reuse" => irq_reuse(),
        "raw_term" => raw_term(),
        n if n.starts_with("idle") => {
            println!("{n}: ready pid {}", std::process::id());
            Box::new(NullHandler)
        }
        "swappable" => swappable(),
        "reopen" => {
            reopen();
            Box::new(NullHandler)
        }
        "mal" => Box::new(Mal { done: false }),
        "victim" => victim(),
        "honest" => honest(),
        "bench_a" => bench_a(),
        "bench_b" => Box::new(Echo),
        other => panic!("no test role named {other}"),
    }
}

/// Role `coal_tx`: Fifty notifications on channel 1 (they coalesce) and one on 2, then `FIRST[0]` = 1.
fn coal_tx() -> Boxed {
    for _ in 0..50 {
        Channel::new(1).notify().unwrap();
    }
    Channel::new(2).notify().unwrap();
    word(FIRST, 0).store(1, Ordering::Release);
    Box::new(NullHandler)
}

/// Role `dying_client`: A PPC into a PD that dies while serving it: prints the error it gets.
fn dying_client() -> Boxed {
    match Channel::new(3).pp_call(MessageInfo::new(99, 0)) {
        Ok(_) => println!("dying_client: answered?!"),
        Err(e) => println!("dying_client: {e}"),
    }
    Box::new(NullHandler)
}

/// Role `def_a`: Two deferred notifies in `init` (the second performs the first); reports ordering.
fn def_a() -> Boxed {
    Channel::new(1).deferred_notify().unwrap();
    Channel::new(2).deferred_notify().unwrap(); // performs the first deferral now
    if wait_until(|| word(FIRST, 0).load(Ordering::Acquire) == 1) {
        println!("def_a: def_b was notified before init returned");
    }
    word(FIRST, 1).store(1, Ordering::Release);
    Box::new(NullHandler)
}

/// Role `faulty`: Reads its read-only region, then writes it: SIGSEGV.
fn faulty() -> ! {
    let v = word(SECOND, 0).load(Ordering::Relaxed); // reading a read-only map is fine
    println!("faulty: read {v}, now writing to a read-only region");
    word(FIRST, 0).store(1, Ordering::Release);
    word(SECOND, 0).store(1, Ordering::Relaxed); // SIGSEGV
    unreachable!("the write to a read-only map did not fault");
}

/// Role `survivor`: Once `faulty` is about to die: a PPC into it and a notify to it, still alive.
fn survivor() -> Boxed {
    assert!(wait_until(|| word(FIRST, 0).load(Ordering::Acquire) == 1));
    std::thread::sleep(Duration::from_millis(50));
    match Channel::new(1).pp_call(MessageInfo::new(1, 0)) {
        Ok(_) => println!("survivor: PPC into faulty was answered?!"),
        Err(e) => println!("survivor: {e}"),
    }
    Channel::new(2).notify().unwrap();
    println!("survivor: notify to the dead PD ok; alive");
    Box::new(NullHandler)
}

/// Role `crashy`: Panics on its first two starts, then runs (its region counts the starts).
fn crashy() -> Boxed {
    let n = word(FIRST, 0).fetch_add(1, Ordering::AcqRel) + 1;
    if n <= 2 {
        panic!("crash number {n}");
    }
    println!("crashy: up after {} restarts", n - 1);
    Box::new(NullHandler)
}

/// Role `raw_term`: Makes the launching terminal raw, as a host serial driver does, and never undoes it.
fn raw_term() -> Boxed {
    // What a host serial driver does to the launching terminal; never undone here.
    // SAFETY: termios calls on fd 0 with a live, initialised struct.
    let ok = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(0, &mut t) == 0 && {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t) == 0
        }
    };
    println!("raw_term: terminal raw: {ok}");
    Box::new(NullHandler)
}

/// Role `swappable`: Prints its incarnation, its image and how many starts came before.
fn swappable() -> Boxed {
    let n = word(FIRST, 0).fetch_add(1, Ordering::AcqRel);
    let exe = std::env::current_exe().unwrap_or_default();
    println!(
        "swappable: incarnation {} image {} starts before {n}",
        lions_os::incarnation(),
        exe.file_name().unwrap_or_default().to_string_lossy()
    );
    Box::new(NullHandler)
}

/// Role `victim`: Prints its pid and counts what it is delivered (the malicious PD's target).
fn victim() -> Boxed {
    println!("victim: ready pid {}", std::process::id());
    Box::new(Victim { deliveries: 0 })
}

/// Try every way to write a region this PD maps read-only (at `SECOND`, named `ro`): through
/// the inherited descriptor (`pwrite`, a writable shared mapping), by reopening it read-write
/// through `/proc/self/fd`, and after `fchmod`ing it writable. Print each attempt that landed,
/// then the word's value as the owner (mapped read-write at `FIRST`) left it.
fn reopen() {
    let mut landed = Vec::new();
    let mut tried = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        if !link.to_string_lossy().contains("lions-region:ro") {
            continue;
        }
        let Ok(n) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        tried += 1;
        let value = 0xbad_u64.to_ne_bytes();
        // SAFETY: plain system calls on a descriptor this process holds, with live buffers.
        unsafe {
            if libc::pwrite(n, value.as_ptr().cast(), 8, 0) == 8 {
                landed.push("pwrite on the inherited descriptor");
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                n,
                0,
            );
            if p != libc::MAP_FAILED {
                landed.push("writable mapping of the inherited descriptor");
                libc::munmap(p, 4096);
            }
            let path = format!("/proc/self/fd/{n}\0");
            let rw = libc::open(path.as_ptr().cast(), libc::O_RDWR);
            if rw >= 0 {
                landed.push("reopened read-write through /proc/self/fd");
                libc::close(rw);
            }
            if libc::fchmod(n, 0o666) == 0 {
                let rw = libc::open(path.as_ptr().cast(), libc::O_RDWR);
                if rw >= 0 {
                    landed.push("reopened read-write after fchmod");
                    libc::close(rw);
                }
            }
        }
    }
    println!(
        "reopen: {tried} descriptor(s) tried; landed: [{}]; word {:#x}",
        landed.join(", "),
        word(SECOND, 0).load(Ordering::Acquire)
    );
}

/// Prints each delivery.
struct Printer {
    name: String,
    count: u32,
}

impl Handler for Printer {
    type Error = Infallible;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        self.count += 1;
        println!(
            "{}: notified {channels} (delivery {})",
            self.name, self.count
        );
        Ok(())
    }
}

fn ppc_client() -> Boxed {
    let ch = Channel::new(3);
    for i in 0..6 {
        set_mr(i, 100 + i as u64);
    }
    let r = ch.pp_call(MessageInfo::new(42, 6)).unwrap();
    println!(
        "ppc_client: reply label {} count {} mrs [{}, {}, {}]",
        r.label(),
        r.count(),
        get_mr(0),
        get_mr(1),
        get_mr(2)
    );
    // All 120 registers, reversed by the server.
    for i in 0..120 {
        set_mr(i, 1000 + i as u64);
    }
    let r = ch.pp_call(MessageInfo::new(7, 120)).unwrap();
    let ok = r.count() == 120 && (0..120).all(|i| get_mr(i) == 1000 + 119 - i as u64);
    println!("ppc_client: 120 registers reversed: {ok}");
    for k in 0..1000u64 {
        set_mr(0, k);
        ch.pp_call(MessageInfo::new(1, 1)).unwrap();
        assert_eq!(get_mr(0), k + 1);
    }
    println!("ppc_client: 1000 calls ok");
    println!("ppc_client: {}", ch.notify().unwrap_err());
    println!(
        "ppc_client: {}",
        Channel::new(9).pp_call(MessageInfo::default()).unwrap_err()
    );
    Box::new(NullHandler)
}

/// label 42: sum and echo; label 7: reverse; label 99: panic; other labels: increment mr0.
struct Server;

impl Handler for Server {
    type Error = Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Infallible> {
        Ok(())
    }
    fn protected(&mut self, _ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        let n = msg.count();
        Ok(match msg.label() {
            42 => {
                let sum: u64 = (0..n).map(get_mr).sum();
                set_mr(0, sum);
                set_mr(1, msg.label());
                set_mr(2, n as u64);
                MessageInfo::new(43, 3)
            }
            7 => {
                let v: Vec<u64> = (0..n).map(get_mr).collect();
                for (i, x) in v.iter().rev().enumerate() {
                    set_mr(i, *x);
                }
                MessageInfo::new(8, n)
            }
            99 => panic!("asked to die while serving a call"),
            _ => {
                set_mr(0, get_mr(0) + 1);
                MessageInfo::new(0, 1)
            }
        })
    }
}

/// def_b sets word `flag` of the shared region... def_c reads word 1.
struct Deferred {
    flag: usize,
}

impl Handler for Deferred {
    type Error = Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Infallible> {
        if self.flag == 0 {
            word(FIRST, 0).store(1, Ordering::Release);
            println!("def_b: notified");
        } else {
            println!(
                "def_c: notified, y = {}",
                word(FIRST, 1).load(Ordering::Acquire)
            );
        }
        Ok(())
    }
}

fn eventfd() -> OwnedFd {
    // SAFETY: plain system call; the result is checked before it is owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn timerfd(period_ms: i64) -> OwnedFd {
    // SAFETY: plain system call; the result is checked before it is owned.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
        )
    };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let t = libc::timespec {
        tv_sec: 0,
        tv_nsec: period_ms * 1_000_000,
    };
    let spec = libc::itimerspec {
        it_interval: t,
        it_value: t,
    };
    // SAFETY: `spec` is a live itimerspec; the old value is not requested.
    let r = unsafe {
        libc::timerfd_settime(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            0,
            &spec,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0);
    fd
}

fn read8(fd: &OwnedFd) {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live local (the fd is non-blocking).
    unsafe { libc::read(std::os::fd::AsRawFd::as_raw_fd(fd), (&raw mut v).cast(), 8) };
}

fn write8(fd: &OwnedFd) {
    let v = 1u64;
    // SAFETY: writes 8 bytes from a live local.
    unsafe {
        libc::write(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            (&raw const v).cast(),
            8,
        )
    };
}

/// Channel 3: an eventfd (level: stays readable until read); channel 4: a 20 ms timerfd.
struct IrqPd {
    event: OwnedFd,
    timer: OwnedFd,
    events: u32,
    ticks: u32,
}

fn irq_pd() -> Boxed {
    let event = eventfd();
    let timer = timerfd(20);
    println!(
        "irq_pd: {}",
        register_irq_fd(Channel::new(7), event.as_fd()).unwrap_err()
    );
    println!("irq_pd: {}", Channel::new(7).irq_ack().unwrap_err());
    register_irq_fd(Channel::new(3), event.as_fd()).unwrap();
    register_irq_fd(Channel::new(4), timer.as_fd()).unwrap();
    write8(&event);
    Box::new(IrqPd {
        event,
        timer,
        events: 0,
        ticks: 0,
    })
}

/// Register an eventfd on channel 3, close it, and make another readable one that (very likely)
/// gets the same descriptor number; a timer on channel 4 reports after 3 ticks how often
/// channel 3 fired (its registered eventfd was never written: it must not).
fn irq_reuse() -> Boxed {
    let first = eventfd();
    let number = first.as_raw_fd();
    register_irq_fd(Channel::new(3), first.as_fd()).unwrap();
    drop(first);
    let second = eventfd();
    write8(&second);
    let reused = second.as_raw_fd() == number;
    let timer = timerfd(20);
    register_irq_fd(Channel::new(4), timer.as_fd()).unwrap();
    Box::new(IrqReuse {
        _second: second,
        timer,
        reused,
        fired: 0,
        ticks: 0,
    })
}

struct IrqReuse {
    _second: OwnedFd,
    timer: OwnedFd,
    reused: bool,
    fired: u32,
    ticks: u32,
}

impl Handler for IrqReuse {
    type Error = Infallible;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        if channels.contains(Channel::new(3)) {
            self.fired += 1;
            Channel::new(3).irq_ack().unwrap();
        }
        if channels.contains(Channel::new(4)) {
            read8(&self.timer);
            self.ticks += 1;
            Channel::new(4).irq_ack().unwrap();
            if self.ticks == 3 {
                println!(
                    "irq_reuse: number reused {}, channel 3 fired {} times",
                    self.reused, self.fired
                );
            }
        }
        Ok(())
    }
}

impl Handler for IrqPd {
    type Error = Infallible;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        if channels.contains(Channel::new(3)) {
            // Neither read nor acknowledged yet: it must not fire again until tick 3.
            self.events += 1;
        }
        if channels.contains(Channel::new(4)) {
            read8(&self.timer);
            self.ticks += 1;
            Channel::new(4).irq_ack().unwrap();
            if self.ticks == 3 {
                println!("irq_pd: after 3 ticks, eventfd IRQs = {}", self.events);
                read8(&self.event);
                write8(&self.event);
                Channel::new(3).deferred_irq_ack().unwrap();
            }
            if self.ticks == 6 {
                println!("irq_pd: after 6 ticks, eventfd IRQs = {}", self.events);
            }
        }
        Ok(())
    }
}

fn iterations() -> usize {
    std::env::var("LIONS_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

/// Measures notify round trips (A -> B -> A) in its event loop, then PPC round trips.
struct BenchA {
    samples: Vec<u64>,
    start: Instant,
    n: usize,
}

fn bench_a() -> Boxed {
    // Let bench_b reach its event loop first.
    std::thread::sleep(Duration::from_millis(100));
    let n = iterations();
    let start = Instant::now();
    Channel::new(1).notify().unwrap();
    Box::new(BenchA {
        samples: Vec::with_capacity(n),
        start,
        n,
    })
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

impl Handler for BenchA {
    type Error = Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Infallible> {
        let now = Instant::now();
        self.samples
            .push(u64::try_from((now - self.start).as_nanos()).unwrap_or(u64::MAX));
        if self.samples.len() < self.n {
            self.start = Instant::now();
            Channel::new(1).notify().unwrap();
            return Ok(());
        }
        let notify = median(&mut self.samples);
        let mut ppc = Vec::with_capacity(self.n);
        for i in 0..self.n {
            set_mr(0, i as u64);
            let t = Instant::now();
            Channel::new(1).pp_call(MessageInfo::new(1, 1)).unwrap();
            ppc.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        println!(
            "bench: iterations={} notify_rtt_median_ns={notify} ppc_rtt_median_ns={}",
            self.n,
            median(&mut ppc)
        );
        std::process::exit(0);
    }
}

/// Echoes notifications and answers PPCs.
struct Echo;

impl Handler for Echo {
    type Error = Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Infallible> {
        Channel::new(1).notify().unwrap();
        Ok(())
    }
    fn protected(&mut self, _: Channel, _msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        set_mr(0, get_mr(0) + 1);
        Ok(MessageInfo::new(0, 1))
    }
}

/// The victim of the forgery test: serves `honest`'s calls on channel 2 (increment mr0; label 77
/// answers the number of deliveries seen), takes notifications from `honest` (channel 4) and
/// `mal` (channel 3, the only right `mal` holds), and reports anything else as forged.
struct Victim {
    deliveries: u64,
}

impl Handler for Victim {
    type Error = Infallible;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        let allowed = (1 << 3) | (1 << 4);
        if channels.bits() & !allowed != 0 || channels.bits() == 0 {
            println!("victim: FORGED notification {channels}");
        }
        self.deliveries += 1;
        Channel::new(1).notify().unwrap();
        Ok(())
    }
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        if ch.index() != 2 || !(msg.label() == 1 || msg.label() == 77) || msg.count() != 1 {
            println!(
                "victim: FORGED call on channel {} label {} count {}",
                ch.index(),
                msg.label(),
                msg.count()
            );
        }
        if msg.label() == 77 {
            set_mr(0, self.deliveries);
        } else {
            set_mr(0, get_mr(0) + 1);
        }
        Ok(MessageInfo::new(0, 1))
    }
}

/// The honest client of the forgery test: once the victim answered, tells `mal` to attack
/// (channel 5), then calls the victim (channel 2) and notifies it (channel 4) for about a second,
/// checking every reply.
fn honest() -> Boxed {
    let call = |k: u64| {
        set_mr(0, k);
        let r = Channel::new(2).pp_call(MessageInfo::new(1, 1)).unwrap();
        r.label() == 0 && r.count() == 1 && get_mr(0) == k + 1
    };
    assert!(call(0), "first call");
    Channel::new(5).notify().unwrap();
    let (mut good, mut bad) = (0, 0);
    for k in 1..=500u64 {
        if call(k * 1000) {
            good += 1;
        } else {
            bad += 1;
        }
        if k % 10 == 0 {
            Channel::new(4).notify().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    set_mr(0, 0);
    Channel::new(2).pp_call(MessageInfo::new(77, 1)).unwrap();
    println!(
        "honest: {good} calls answered by the victim, {bad} wrong; victim saw {} deliveries",
        get_mr(0)
    );
    Box::new(Honest)
}

struct Honest;

impl Handler for Honest {
    type Error = Infallible;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        println!("honest: FORGED notification {channels}");
        Ok(())
    }
}

/// The malicious PD of the forgery test: when `honest` tells it the others run, it tries every
/// forgery it can think of and reports each one that lands.
struct Mal {
    done: bool,
}

impl Handler for Mal {
    type Error = Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Infallible> {
        if !self.done {
            self.done = true;
            attack();
        }
        Ok(())
    }
}

/// The descriptors of this process (number, link target), stdio excluded.
fn own_fds() -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let l = std::fs::read_link(e.path()).ok()?;
            Some((n, l.to_string_lossy().into_owned()))
        })
        .filter(|(n, l)| *n > 2 && !l.starts_with("/proc/"))
        .collect();
    v.sort();
    v
}

/// This process's shared-memory mappings: start, end, writable, name.
fn memfd_maps() -> Vec<(usize, usize, bool, String)> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/memfd:"))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (s, e) = f.next()?.split_once('-')?;
            let perms = f.next()?;
            let name = l[l.find("/memfd:")?..].to_owned();
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
                perms.contains('w'),
                name,
            ))
        })
        .collect()
}

/// The launcher's other children whose name (comm) is one of `names` (other systems may run on
/// the machine at the same time).
fn pids_named(names: &[&str]) -> Vec<(String, i32)> {
    // SAFETY: getppid cannot fail.
    let launcher = unsafe { libc::getppid() };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            let c = c.trim().to_owned();
            // The parent is the 4th field of /proc/<pid>/stat, after "(comm)".
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse::<i32>()
                        .ok()
                });
            if names.contains(&c.as_str()) && ppid == Some(launcher) {
                out.push((c, pid));
            }
        }
    }
    out
}

/// What the malicious PD tried and which attempts landed.
#[derive(Default)]
struct Tally {
    tried: u32,
    landed: Vec<String>,
}

impl Tally {
    /// One attempt at `what`; it landed unless `refused`.
    fn check(&mut self, what: String, refused: bool) {
        self.tried += 1;
        if !refused {
            self.landed.push(what);
        }
    }
}

/// The malicious PD: every forgery of notifications, calls, replies and the board table it can
/// think of, through its own descriptors and mappings and into the other processes; it prints
/// each that landed and the totals.
fn attack() {
    let mut t = Tally::default();
    let fds = own_fds();
    println!(
        "mal: my descriptors: {}",
        fds.iter()
            .map(|(n, l)| format!("{n}={l}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Only objects of my own channels (every channel page names `mal` as an end), my stats page
    // and the board table.
    for (n, l) in &fds {
        let mine = l.contains("lions-host-channel:") && l.contains("mal:")
            || l.contains("lions-host-stats:mal")
            || l.contains("lions-host-board")
            || l.starts_with("pipe:")
            || l.contains("[eventpoll]");
        t.check(format!("holds descriptor {n} = {l}"), mine);
    }
    // Two wake-up pipe ends per channel (the inbound read end, the outbound write end).
    let pipes = fds.iter().filter(|(_, l)| l.starts_with("pipe:")).count();
    t.check(format!("holds {pipes} pipe ends, not 6"), pipes == 6);
    jam_wake_ups(&fds);
    let maps = memfd_maps();
    println!(
        "mal: my shared mappings: {}",
        maps.iter()
            .map(|m| format!("{}{}", m.3, if m.2 { "(rw)" } else { "(r)" }))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for round in 0..100 {
        forge_round(&mut t, &fds, &maps, round);
        std::thread::sleep(Duration::from_millis(5));
    }
    attack_processes(&mut t);
    for l in &t.landed {
        println!("mal: LANDED: {l}");
    }
    println!(
        "mal: {} forgeries tried, {} landed",
        t.tried,
        t.landed.len()
    );
}

/// Try to make a peer's wake-up write block (a full counter or pipe, a blocking descriptor):
/// fill everything I can write, then clear O_NONBLOCK on every descriptor I hold. The victim
/// notifies me on channel 1 after every notification from honest, so a blocked write would
/// stop it serving honest's calls.
fn jam_wake_ups(fds: &[(i32, String)]) {
    for (n, _) in fds {
        let full = u64::MAX - 1;
        // SAFETY: writes 8 bytes from a live local.
        unsafe { libc::write(*n, (&raw const full).cast(), 8) };
        let buf = [0u8; 4096];
        for _ in 0..64 {
            // SAFETY: writes from a live local buffer.
            if unsafe { libc::write(*n, buf.as_ptr().cast(), buf.len()) } <= 0 {
                break;
            }
        }
        // SAFETY: plain fcntl with integer arguments.
        unsafe { libc::fcntl(*n, libc::F_SETFL, 0) };
    }
}

/// What every shared mapping I can make writable is filled with, each pattern a forgery could
/// use: all bits (every channel bit, every call state), PENDING, a waiting call, a reply.
const PATTERNS: [u64; 5] = [!0, 1, (5 << 2) | 1, (5 << 2) | 2, 0x5555_5555_5555_5555];

/// One round of forgeries with `PATTERNS[round]` through my mappings and my descriptors.
fn forge_round(
    t: &mut Tally,
    fds: &[(i32, String)],
    maps: &[(usize, usize, bool, String)],
    round: usize,
) {
    let pattern = PATTERNS[round % PATTERNS.len()];
    for &(start, end, writable, ref name) in maps {
        let board = name.contains("lions-host-board");
        if writable {
            t.check(format!("writable mapping of {name}"), !board);
            for a in (start..end).step_by(8) {
                // SAFETY: inside a shared mapping of this process (from /proc/self/maps).
                unsafe { &*(a as *const AtomicU64) }.store(pattern, Ordering::SeqCst);
            }
        } else {
            // SAFETY: changes the protection of a shared mapping only this test writes.
            let r = unsafe {
                libc::mprotect(
                    start as *mut libc::c_void,
                    end - start,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            t.check(format!("mprotect of the mapping of {name}"), r != 0);
        }
    }
    for (n, l) in fds {
        if !l.starts_with("/memfd:") {
            if l.starts_with("pipe:") {
                continue; // Filled above; now blocking, a write would hang this PD itself.
            }
            // Signal through it (a wake-up pipe's write end; anything else refuses).
            // SAFETY: writes 8 bytes from a live local.
            unsafe { libc::write(*n, (&raw const round).cast(), 8) };
            continue;
        }
        let board = l.contains("lions-host-board");
        // SAFETY: fstat into a live local.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::fstat(*n, &raw mut st) };
        let len = usize::try_from(st.st_size).unwrap_or(0).max(8);
        // SAFETY: a fresh mapping chosen by the kernel; only this function touches it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                *n,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            t.check(format!("writable map of {l}"), board);
        } else {
            t.check(format!("writable map of {l}"), !board);
            let words = p.cast::<AtomicU64>();
            for i in 0..len / 8 {
                // SAFETY: within the mapping just made.
                unsafe { &*words.add(i) }.store(pattern, Ordering::SeqCst);
            }
            // SAFETY: unmaps exactly the mapping above.
            unsafe { libc::munmap(p, len) };
        }
        if board {
            board_table_writes(t, *n, len);
        }
    }
}

/// A read-only map of the board table made writable, a write through its descriptor `n`, and
/// a write through the descriptor re-opened read-write.
fn board_table_writes(t: &mut Tally, n: i32, len: usize) {
    // SAFETY: a fresh read-only mapping chosen by the kernel.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            n,
            0,
        )
    };
    if p != libc::MAP_FAILED {
        // SAFETY: changes the protection of the mapping just made only.
        let r = unsafe { libc::mprotect(p, len, libc::PROT_READ | libc::PROT_WRITE) };
        t.check("mprotect of the board table".into(), r != 0);
        // SAFETY: unmaps exactly the mapping above.
        unsafe { libc::munmap(p, len) };
    }
    let gone = [2u8; 4];
    // SAFETY: writes 4 bytes from a live local at offset 64 (PD 0's state).
    let r = unsafe { libc::pwrite(n, gone.as_ptr().cast(), 4, 64) };
    t.check("pwrite to the board table".into(), r < 0);
    let re = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{n}"));
    if let Ok(f) = re {
        use std::os::unix::fs::FileExt as _;
        t.check(
            "write to the board table re-opened".into(),
            f.write_at(&gone, 64).is_err(),
        );
    }
}

/// The other PDs' and the launcher's memory and descriptors.
fn attack_processes(t: &mut Tally) {
    // The other PDs' and the launcher's memory and descriptors.
    let mut targets = pids_named(&["victim", "honest"]);
    // SAFETY: getppid cannot fail.
    targets.push(("launcher".into(), unsafe { libc::getppid() }));
    t.check(
        format!("found the other PDs: {targets:?}"),
        targets.len() == 3,
    );
    for (who, pid) in &targets {
        for mode in [true, false] {
            let r = std::fs::OpenOptions::new()
                .read(true)
                .write(mode)
                .open(format!("/proc/{pid}/mem"));
            t.check(format!("open /proc/{pid}/mem of {who}"), r.is_err());
        }
        // Root may list the numbers (the directory is root's once the PD is non-dumpable), but
        // neither read where an entry leads nor open it.
        for dir in ["fd", "map_files"] {
            let entries: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/{dir}"))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            for e in entries {
                let link = std::fs::read_link(&e);
                t.check(
                    format!("read link {} of {who}: {link:?}", e.display()),
                    link.is_err(),
                );
                let f = std::fs::File::open(&e);
                t.check(format!("open {} of {who}", e.display()), f.is_err());
            }
        }
        for fd in 0..64 {
            let r = std::fs::File::open(format!("/proc/{pid}/fd/{fd}"));
            t.check(format!("open /proc/{pid}/fd/{fd} of {who}"), r.is_err());
        }
        // SAFETY: plain system calls with integer arguments.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, *pid, 0) };
        if pidfd >= 0 {
            for fd in 0..64 {
                // SAFETY: as above; a descriptor it returned is closed at once.
                let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
                if r >= 0 {
                    // SAFETY: closes the descriptor just obtained.
                    unsafe { libc::close(i32::try_from(r).unwrap_or(-1)) };
                }
                t.check(format!("pidfd_getfd {fd} of {who}"), r < 0);
            }
            // SAFETY: closes the pidfd opened above.
            unsafe { libc::close(i32::try_from(pidfd).unwrap_or(-1)) };
        }
        // SAFETY: PTRACE_SEIZE does not stop the target; detached at once if it succeeded.
        let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, *pid, 0, 0) };
        if r == 0 {
            // SAFETY: as above.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, *pid, 0, 0) };
        }
        t.check(format!("ptrace {who}"), r != 0);
    }
}
