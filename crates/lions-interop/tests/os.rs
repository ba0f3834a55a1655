// SPDX-License-Identifier: BSD-2-Clause
//! Every `.device_resources` blob sdfgen 0.35.1 wrote for the reference systems in
//! `interop/fixtures`, checked against the `.system` it came with.

use lions_interop::{Blob, Sdf, fixture};
use lions_os::{Config, DeviceResources};

#[test]
fn device_resources_match_the_system() {
    let mut checked = 0;
    let mut systems: Vec<_> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    systems.sort();
    for dir in systems {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let sys = Sdf::load(&name);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_str().unwrap().to_owned();
            let Some(pd_name) = file.strip_suffix("_device_resources.data") else {
                continue;
            };
            let pd = sys
                .pd(pd_name)
                .unwrap_or_else(|| panic!("{name}: no PD {pd_name}"));
            let blob = Blob::load(&name, &file);
            assert_eq!(blob.bytes().len(), size_of::<DeviceResources>(), "{file}");
            let res = DeviceResources::from_blob(blob.bytes()).unwrap();
            assert!(
                !res.regions().is_empty() || !res.irqs().is_empty(),
                "{file}: a driver has registers or IRQs (the ARM generic timer has only an IRQ)"
            );
            for r in res.regions() {
                let (map, mr) = pd.map_at(&sys, r.region.vaddr).unwrap_or_else(|| {
                    panic!(
                        "{file}: vaddr {:#x} not mapped in {pd_name}",
                        r.region.vaddr
                    )
                });
                // sdfgen adds a sub-page device's offset to vaddr (virtio-mmio at 0xa003c00), while
                // size and io_addr stay those of the whole page-aligned region.
                let offset = r.region.vaddr - map.vaddr;
                assert!(
                    offset < 0x1000,
                    "{file}: region lies in the first page of its map"
                );
                if offset != 0 {
                    assert!(
                        mr.phys_addr.is_some(),
                        "{file}: only device regions have offsets"
                    );
                }
                assert_eq!(mr.size, r.region.size, "{file}: size of {}", mr.name);
                if let Some(paddr) = mr.phys_addr {
                    assert_eq!(
                        paddr, r.io_addr,
                        "{file}: io_addr of device region {}",
                        mr.name
                    );
                }
            }
            let irq_ids: Vec<u8> = pd.irqs.iter().map(|i| i.id).collect();
            let res_ids: Vec<u8> = res.irqs().iter().map(|i| i.id).collect();
            assert_eq!(res_ids, irq_ids, "{file}: IRQ channel ids");
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "expected a driver per reference system, checked {checked}"
    );
}
