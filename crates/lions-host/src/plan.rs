// SPDX-License-Identifier: BSD-2-Clause
//! From a checked [`System`] to what the launcher starts: the host board's own checks (images,
//! CPUs, channel ids, child PDs) with errors that name the element.

use crate::Error;
use lions_os::MAX_CHANNEL;
use lions_sdf::{ProtectionDomain, System};
use std::path::{Path, PathBuf};

/// One region mapping of a PD.
#[derive(Debug, Clone)]
pub(crate) struct MapPlan {
    pub region: usize,
    pub vaddr: u64,
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One channel end of a PD.
#[derive(Debug, Clone)]
pub(crate) struct ChannelPlan {
    pub id: u8,
    pub peer: usize,
    pub peer_id: u8,
    pub notify: bool,
    pub pp: bool,
    pub peer_pp: bool,
}

/// A PD ready to start.
#[derive(Debug, Clone)]
pub(crate) struct PdPlan {
    pub name: String,
    pub image: PathBuf,
    pub cpu: Option<u32>,
    pub priority: u8,
    pub maps: Vec<MapPlan>,
    pub channels: Vec<ChannelPlan>,
    pub irqs: Vec<(u8, u64)>,
}

/// The whole system, ready to start.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Regions: name and size.
    pub regions: Vec<(String, u64)>,
    pub pds: Vec<PdPlan>,
}

fn invalid(element: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Element {
        element: element.into(),
        message: message.into(),
    }
}

/// Find `image` in `dirs` (in order). A name ending in `.elf` also matches the same name without
/// the suffix (a host build of a PD has no `.elf`).
fn resolve(image: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(image);
    let candidates: Vec<&str> = match image.strip_suffix(".elf") {
        Some(stem) => vec![image, stem],
        None => vec![image],
    };
    if p.is_absolute() {
        return candidates
            .into_iter()
            .map(PathBuf::from)
            .find(|c| c.is_file());
    }
    dirs.iter()
        .flat_map(|d| candidates.iter().map(move |c| d.join(c)))
        .find(|c| c.is_file())
}

/// A program image for a control command's swap: an executable file.
pub(crate) fn check_image(p: &Path) -> Result<(), String> {
    if !p.is_file() {
        Err(format!("{}: no such file", p.display()))
    } else if !is_executable(p) {
        Err(format!("{} is not executable", p.display()))
    } else {
        Ok(())
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Check `sys` for the host board and resolve its images in `dirs`; `cpus` are the CPUs the
/// launcher may use.
pub(crate) fn plan(sys: &System, dirs: &[PathBuf], cpus: &[u32]) -> Result<Plan, Error> {
    if sys.pds.is_empty() {
        return Err(invalid("system", "no protection domains"));
    }
    let regions: Vec<(String, u64)> = sys
        .memory_regions
        .values()
        .map(|r| (r.name.clone(), r.size))
        .collect();
    let pds = sys
        .pds
        .iter()
        .map(|pd| plan_pd(sys, pd, &regions, dirs, cpus))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Plan { regions, pds })
}

/// One PD: its own element's checks, then its maps, channels and IRQs.
fn plan_pd(
    sys: &System,
    pd: &ProtectionDomain,
    regions: &[(String, u64)],
    dirs: &[PathBuf],
    cpus: &[u32],
) -> Result<PdPlan, Error> {
    let el = format!("protection_domain \"{}\"", pd.name);
    if let Some(parent) = &pd.parent {
        return Err(invalid(
            el,
            format!(
                "child protection domains (of \"{parent}\") are not supported on the host board yet"
            ),
        ));
    }
    if pd.name.contains(['\n', '\r']) || pd.name.is_empty() {
        return Err(invalid(el, "a PD name must be one non-empty line"));
    }
    let image = find_image(&el, &pd.program_image, dirs)?;
    if let Some(cpu) = pd.cpu
        && !cpus.contains(&cpu)
    {
        let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
        return Err(invalid(
            el,
            format!(
                "cpu {cpu} is not available here (this launcher may use CPUs {})",
                list.join(", ")
            ),
        ));
    }
    Ok(PdPlan {
        name: pd.name.clone(),
        image,
        cpu: pd.cpu,
        priority: pd.priority,
        maps: plan_maps(&el, pd, regions)?,
        channels: plan_channels(sys, pd)?,
        irqs: plan_irqs(&el, pd)?,
    })
}

/// The PD's program image, found in `dirs` and executable.
fn find_image(el: &str, program_image: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    let img_el = format!("{el} > program_image path=\"{program_image}\"");
    let image = resolve(program_image, dirs).ok_or_else(|| {
        let mut list: Vec<String> = Vec::new();
        for d in dirs {
            let d = d.display().to_string();
            if !list.contains(&d) {
                list.push(d);
            }
        }
        invalid(
            &img_el,
            format!(
                "not found in the search path ({}); build the PD's binary, or give the directory \
                 that holds it with --search-path DIR",
                list.join(", ")
            ),
        )
    })?;
    if !is_executable(&image) {
        return Err(invalid(
            img_el,
            format!(
                "{} is not executable (is it the PD's binary? then chmod +x it)",
                image.display()
            ),
        ));
    }
    Ok(image)
}

/// The PD's maps, each naming a region by its index in `regions`.
fn plan_maps(
    el: &str,
    pd: &ProtectionDomain,
    regions: &[(String, u64)],
) -> Result<Vec<MapPlan>, Error> {
    pd.maps
        .iter()
        .map(|m| {
            let region = regions
                .iter()
                .position(|(n, _)| *n == m.mr)
                .ok_or_else(|| {
                    invalid(
                        format!("{el} > map mr=\"{}\"", m.mr),
                        "no memory region of that name",
                    )
                })?;
            Ok(MapPlan {
                region,
                vaddr: m.vaddr,
                read: m.perms.read,
                write: m.perms.write,
                execute: m.perms.execute,
            })
        })
        .collect()
}

/// The PD's channel ends: ids in range, a PPC only into a higher priority, a known peer.
fn plan_channels(sys: &System, pd: &ProtectionDomain) -> Result<Vec<ChannelPlan>, Error> {
    let mut channels = Vec::new();
    for (mine, theirs) in sys.channels_of(&pd.name) {
        for e in [mine, theirs] {
            if e.id > MAX_CHANNEL {
                return Err(invalid(
                    format!("channel > end pd=\"{}\" id=\"{}\"", e.pd, e.id),
                    format!("channel ids above {MAX_CHANNEL} are not supported"),
                ));
            }
        }
        if mine.pp
            && let Some(callee) = sys.pd(&theirs.pd)
            && callee.priority <= pd.priority
        {
            // As the Microkit tool: a PPC must go to a higher priority, so calls cannot form
            // a cycle (which would deadlock two PDs waiting on each other).
            return Err(invalid(
                format!(
                    "channel > end pd=\"{}\" id=\"{}\" pp=\"true\"",
                    mine.pd, mine.id
                ),
                format!(
                    "a PPC needs the callee \"{}\" (priority {}) above the caller (priority {})",
                    theirs.pd, callee.priority, pd.priority
                ),
            ));
        }
        let peer = sys
            .pds
            .iter()
            .position(|p| p.name == theirs.pd)
            .ok_or_else(|| {
                invalid(
                    format!("channel > end pd=\"{}\"", theirs.pd),
                    "no protection domain of that name",
                )
            })?;
        channels.push(ChannelPlan {
            id: mine.id,
            peer,
            peer_id: theirs.id,
            notify: mine.notify,
            pp: mine.pp,
            peer_pp: theirs.pp,
        });
    }
    Ok(channels)
}

/// The PD's IRQs as (channel id, IRQ number), ids in range.
fn plan_irqs(el: &str, pd: &ProtectionDomain) -> Result<Vec<(u8, u64)>, Error> {
    pd.irqs
        .iter()
        .map(|irq| {
            if irq.id > MAX_CHANNEL {
                return Err(invalid(
                    format!("{el} > irq irq=\"{}\"", irq.irq),
                    format!("channel id {} is above {MAX_CHANNEL}", irq.id),
                ));
            }
            Ok((irq.id, irq.irq))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(xml: &str) -> System {
        System::parse(xml).unwrap()
    }

    fn dir_with_image() -> PathBuf {
        // The test binary itself is a fine executable to "find".
        std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn image() -> String {
        std::env::current_exe()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn resolves_images_and_wires_channels() {
        let xml = format!(
            r#"<system>
              <memory_region name="m" size="0x1000"/>
              <protection_domain name="a" priority="200" cpu="0">
                <program_image path="{img}.elf"/>
                <map mr="m" vaddr="0x2000000" perms="r"/>
                <irq irq="33" id="5"/>
              </protection_domain>
              <protection_domain name="b" priority="201"><program_image path="{img}"/></protection_domain>
              <channel><end pd="a" id="1" pp="true"/><end pd="b" id="7" notify="false"/></channel>
            </system>"#,
            img = image()
        );
        let p = plan(&sys(&xml), &[dir_with_image()], &[0, 1]).unwrap();
        assert_eq!(p.pds.len(), 2);
        let a = &p.pds[0];
        assert!(a.image.is_file(), ".elf suffix falls back to the bare name");
        assert_eq!(
            (a.cpu, a.priority, a.irqs.clone()),
            (Some(0), 200, vec![(5, 33)])
        );
        assert!(a.maps[0].read && !a.maps[0].write);
        let (ca, cb) = (&a.channels[0], &p.pds[1].channels[0]);
        assert_eq!(
            (ca.id, ca.peer, ca.peer_id, ca.pp, ca.peer_pp),
            (1, 1, 7, true, false)
        );
        assert_eq!((cb.id, cb.peer, cb.notify, cb.peer_pp), (7, 0, false, true));
    }

    #[test]
    fn refusals_name_the_element() {
        let img = image();
        let cases = [
            (
                r#"<protection_domain name="a"><program_image path="nope"/></protection_domain>"#
                    .to_owned(),
                "protection_domain \"a\" > program_image path=\"nope\": not found",
            ),
            (
                format!(
                    r#"<protection_domain name="a" cpu="4000"><program_image path="{img}"/></protection_domain>"#
                ),
                "protection_domain \"a\": cpu 4000 is not available",
            ),
            (
                format!(
                    r#"<protection_domain name="a"><program_image path="{img}"/>
                       <protection_domain name="kid" id="1"><program_image path="{img}"/></protection_domain>
                     </protection_domain>"#
                ),
                "protection_domain \"kid\": child protection domains",
            ),
            (
                format!(
                    r#"<protection_domain name="a"><program_image path="{img}"/></protection_domain>
                       <protection_domain name="b"><program_image path="{img}"/></protection_domain>
                       <channel><end pd="a" id="62"/><end pd="b" id="0"/></channel>"#
                ),
                "channel > end pd=\"a\" id=\"62\": channel ids above 61",
            ),
            (
                format!(
                    r#"<protection_domain name="a" priority="9"><program_image path="{img}"/></protection_domain>
                       <protection_domain name="b" priority="9"><program_image path="{img}"/></protection_domain>
                       <channel><end pd="a" id="0" pp="true"/><end pd="b" id="0"/></channel>"#
                ),
                "channel > end pd=\"a\" id=\"0\" pp=\"true\": a PPC needs the callee \"b\" (priority 9) above the caller (priority 9)",
            ),
        ];
        for (body, want) in cases {
            let s = sys(&format!("<system>{body}</system>"));
            let e = plan(&s, &[dir_with_image()], &[0, 1])
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
        let e = plan(&System::default(), &[], &[0]).unwrap_err().to_string();
        assert!(e.contains("no protection domains"), "{e}");
    }
}
