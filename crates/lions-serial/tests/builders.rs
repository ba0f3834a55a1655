// SPDX-License-Identifier: BSD-2-Clause
//! Subsystem tests whose configs come from the config builders (through
//! [`SerialMemory`](lions_serial::testkit::SerialMemory)), not from zeroed structs: colour and
//! legend, a subsystem without Rx, back-pressure from a slow device, and a faulting driver.
#![allow(clippy::unwrap_used)]

use lions_os::Config;
use lions_serial::SerialDevice;
use lions_serial::testkit::{RigError, SerialMemory, SerialModel, SerialOptions, SerialRig};
use lions_serial::virt_tx::colour_code;

/// A device whose transmitter takes `room` bytes per tick, interrupting while the driver waits.
#[derive(Default)]
struct Slow {
    out: Vec<u8>,
    input: Vec<u8>,
    room: usize,
    per_tick: usize,
    tx_irq: bool,
    rx_irq: bool,
}

impl SerialDevice for Slow {
    fn tx_write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room);
        self.out.extend_from_slice(&bytes[..n]);
        self.room -= n;
        n
    }
    fn rx_read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.input.len());
        out[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        n
    }
    fn set_tx_irq(&mut self, on: bool) {
        self.tx_irq = on;
    }
    fn set_rx_irq(&mut self, on: bool) {
        self.rx_irq = on;
    }
}

impl SerialModel for Slow {
    fn take_transmitted(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
    fn receive(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }
    fn irq_pending(&self) -> bool {
        (self.tx_irq && self.room > 0) || (self.rx_irq && !self.input.is_empty())
    }
    fn tick(&mut self) -> bool {
        let moved = self.room < self.per_tick;
        self.room = self.per_tick;
        moved
    }
}

fn slow(per_tick: usize) -> Slow {
    Slow {
        room: per_tick,
        per_tick,
        ..Slow::default()
    }
}

#[test]
fn built_configs_pass_their_checks_and_say_what_was_asked() {
    let opts = SerialOptions {
        clients: 3,
        driver_queue: 1024,
        client_queue: 256,
        ..SerialOptions::default()
    };
    let mem = SerialMemory::new(&opts).unwrap();
    let drv = mem.driver_config();
    drv.check().unwrap();
    assert!(drv.rx_enabled());
    assert_eq!(drv.tx.data.size, 1024);
    let vtx = mem.virt_tx_config();
    vtx.check().unwrap();
    assert_eq!(vtx.clients().len(), 3);
    assert_eq!(vtx.clients()[2].name(), b"client2");
    assert_eq!(vtx.clients()[2].conn.id, 3);
    // Both ends of a queue name the same memory.
    assert_eq!(vtx.driver.queue, drv.tx.queue);
    assert_eq!(vtx.clients()[1].conn.data, mem.client_config(1).tx.data);
    let vrx = mem.virt_rx_config();
    vrx.check().unwrap();
    assert_eq!(vrx.clients()[0].data, mem.client_config(0).rx.data);
    assert_eq!(vrx.clients()[0].data.size, 256);
}

#[test]
fn colour_banner_and_legend() {
    let opts = SerialOptions {
        clients: 2,
        colour: true,
        begin_str: b"Begin input\r\n".to_vec(),
        ..SerialOptions::default()
    };
    let mut mem = SerialMemory::new(&opts).unwrap();
    let mut rig = SerialRig::new(&mut mem, slow(1 << 20)).unwrap();
    let mut expect = b"Begin input\r\n".to_vec();
    for c in 0..2 {
        expect.extend_from_slice(&colour_code(c));
        expect.extend_from_slice(format!("client{c}").as_bytes());
        expect.extend_from_slice(b"\x1b[0m ");
    }
    expect.extend_from_slice(b"\r\n");
    assert_eq!(rig.transmitted(), expect);
    rig.write(1, b"hi\n").unwrap();
    let mut line = colour_code(1).to_vec();
    line.extend_from_slice(b"hi\r\n\x1b[0m");
    assert_eq!(rig.transmitted(), line);
}

#[test]
fn without_rx_output_still_flows_and_input_goes_nowhere() {
    let opts = SerialOptions {
        rx: false,
        ..SerialOptions::default()
    };
    let mut mem = SerialMemory::new(&opts).unwrap();
    assert!(!mem.driver_config().rx_enabled());
    assert!(!mem.client_config(0).rx.is_connected());
    let mut rig = SerialRig::new(&mut mem, slow(1 << 20)).unwrap();
    assert!(rig.virt_rx().is_none());
    rig.write(0, b"out\n").unwrap();
    assert_eq!(rig.transmitted(), b"out\r\n");
    rig.receive(b"ignored").unwrap();
    assert_eq!(rig.received(0), b"");
}

#[test]
fn a_slow_device_back_pressures_every_queue_losslessly() {
    let opts = SerialOptions {
        clients: 2,
        driver_queue: 64,
        client_queue: 64,
        ..SerialOptions::default()
    };
    let mut mem = SerialMemory::new(&opts).unwrap();
    let mut rig = SerialRig::new(&mut mem, slow(3)).unwrap();
    let a: Vec<u8> = b"0123456789abcdef\n".repeat(40);
    rig.write(0, &a).unwrap();
    rig.write(1, b"second client\n").unwrap();
    let out = rig.transmitted();
    let mut expect: Vec<u8> = b"0123456789abcdef\r\n".repeat(40);
    expect.extend_from_slice(b"second client\r\n");
    assert_eq!(out, expect);
    assert_eq!(rig.virt_tx().faulty(), 0);
}

/// A device whose transmitter breaks: the driver PD faults, and the rig says so.
struct Broken;

impl SerialDevice for Broken {
    fn tx_write(&mut self, _: &[u8]) -> usize {
        panic!("transmitter on fire")
    }
    fn rx_read(&mut self, _: &mut [u8]) -> usize {
        0
    }
    fn set_tx_irq(&mut self, _: bool) {}
    fn set_rx_irq(&mut self, _: bool) {}
}

impl SerialModel for Broken {
    fn take_transmitted(&mut self) -> Vec<u8> {
        Vec::new()
    }
    fn receive(&mut self, _: &[u8]) {}
    fn irq_pending(&self) -> bool {
        false
    }
}

#[test]
fn a_faulting_driver_is_reported_not_hidden() {
    let mut mem = SerialMemory::new(&SerialOptions::default()).unwrap();
    let mut rig = SerialRig::new(&mut mem, Broken).unwrap();
    let err = rig.write(0, b"x\n").unwrap_err();
    match err {
        RigError::Fault(faults) => {
            assert_eq!(faults.len(), 1);
            assert_eq!(faults[0].pd, "serial_driver");
            assert!(
                faults[0].cause.contains("transmitter on fire"),
                "{faults:?}"
            );
        }
        other => panic!("expected a fault, got {other}"),
    }
    // More clients than the config arrays hold are refused up front.
    assert!(matches!(
        SerialMemory::new(&SerialOptions::clients(65)),
        Err(RigError::Config(_))
    ));
}
