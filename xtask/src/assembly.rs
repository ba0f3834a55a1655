// SPDX-License-Identifier: BSD-2-Clause
//! `assembly.json`: what the metaprogram tells the build about each PD, and the step that turns
//! built binaries into per-PD images with their config sections written.
//!
//! `tools/lions_meta.py` writes it next to the `.system` file:
//!
//! ```json
//! {
//!   "example": "hello",
//!   "board": "host",
//!   "system": "hello.system",
//!   "pds": {
//!     "pong": {
//!       "binary": "pong",
//!       "package": "lions-example-hello",
//!       "image": "pong.elf",
//!       "patches": [{"section": ".hello_config", "blob": "hello_pong.data"}]
//!     }
//!   }
//! }
//! ```
//!
//! `binary` is a Cargo binary target; `package` (optional, default `lions-example-<example>`) is
//! the package that has it; `image` is the file name the `.system` file's `program_image` uses;
//! each patch names an ELF section and a blob file, both relative to the output folder. Only
//! `pds` and, per PD, `binary` and `image` are required.

use crate::Error;
use crate::patch::write_section;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One config blob to write into a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// ELF section name, with the leading dot.
    pub section: String,
    /// Blob file name, relative to the output folder.
    pub blob: String,
}

/// One PD's program image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdImage {
    /// PD name.
    pub name: String,
    /// Cargo binary target it is built from.
    pub binary: String,
    /// Cargo package holding `binary`, if not the example's own.
    pub package: Option<String>,
    /// Image file name (the SDF's `program_image`).
    pub image: String,
    /// Blobs to write into the image.
    pub patches: Vec<Patch>,
}

/// The whole `assembly.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assembly {
    /// `.system` file name, if given.
    pub system: Option<String>,
    /// PDs in file order.
    pub pds: Vec<PdImage>,
}

/// What [`assemble`] did for one PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// PD name.
    pub pd: String,
    /// Image written.
    pub image: PathBuf,
    /// Sections written, with their sizes.
    pub written: Vec<(String, usize)>,
    /// Sections skipped because their blob is empty.
    pub skipped: Vec<String>,
}

fn plain_file_name(what: &str, pd: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "assembly.json",
            format!("PD `{pd}`: {what} `{name}` must be a plain file name in the output folder"),
        ))
    }
}

impl Assembly {
    /// Parse the JSON text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |msg: String| Error::invalid("assembly.json", msg);
        let root: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let pds = root
            .get("pds")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no `pds` object".into()))?;
        let mut out = Self {
            system: root.get("system").and_then(Value::as_str).map(String::from),
            pds: Vec::with_capacity(pds.len()),
        };
        for (name, pd) in pds {
            let field = |key: &str| -> Result<String, Error> {
                pd.get(key)
                    .and_then(Value::as_str)
                    .map(String::from)
                    .ok_or_else(|| bad(format!("PD `{name}` has no string `{key}`")))
            };
            let binary = field("binary")?;
            let image = field("image")?;
            plain_file_name("image", name, &image)?;
            let package = pd.get("package").and_then(Value::as_str).map(String::from);
            let mut patches = Vec::new();
            if let Some(list) = pd.get("patches") {
                let list = list
                    .as_array()
                    .ok_or_else(|| bad(format!("PD `{name}`: `patches` is not an array")))?;
                for p in list {
                    let get = |key: &str| {
                        p.get(key)
                            .and_then(Value::as_str)
                            .map(String::from)
                            .ok_or_else(|| {
                                bad(format!("PD `{name}`: a patch has no string `{key}`"))
                            })
                    };
                    let patch = Patch {
                        section: get("section")?,
                        blob: get("blob")?,
                    };
                    plain_file_name("blob", name, &patch.blob)?;
                    patches.push(patch);
                }
            }
            out.pds.push(PdImage {
                name: name.clone(),
                binary,
                package,
                image,
                patches,
            });
        }
        Ok(out)
    }

    /// Read `<dir>/assembly.json`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("assembly.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        Self::parse(&text).map_err(|e| e.within(path.display()))
    }
}

/// For each PD: copy `<bin_dir>/<binary>` to `<out_dir>/<image>`, write every blob into its
/// section, and make the image executable. Errors name the PD, the section and the sizes.
pub fn assemble(
    asm: &Assembly,
    bin_dirs: &[PathBuf],
    out_dir: &Path,
) -> Result<Vec<Assembled>, Error> {
    let mut done = Vec::with_capacity(asm.pds.len());
    for pd in &asm.pds {
        // The first folder holding the binary (a system folder's own build, then this
        // workspace's).
        let candidates = bin_dirs.iter().map(|d| d.join(&pd.binary));
        let bin = candidates
            .clone()
            .find(|b| b.is_file())
            .or_else(|| candidates.clone().next_back())
            .unwrap_or_else(|| PathBuf::from(&pd.binary));
        let mut elf = std::fs::read(&bin).map_err(|e| {
            let doing = format!("PD `{}`: reading its binary `{}` at", pd.name, pd.binary);
            Error::io(&doing, &bin, e)
        })?;
        let mut written = Vec::new();
        let mut skipped = Vec::new();
        for patch in &pd.patches {
            let blob_path = out_dir.join(&patch.blob);
            let blob = std::fs::read(&blob_path).map_err(|e| {
                let doing = format!(
                    "PD `{}`: reading the blob for section `{}` at",
                    pd.name, patch.section
                );
                Error::io(&doing, &blob_path, e)
            })?;
            if blob.is_empty() {
                skipped.push(patch.section.clone());
                continue;
            }
            write_section(&mut elf, &patch.section, &blob).map_err(|e| {
                Error::invalid(
                    format!("PD `{}` (binary `{}`)", pd.name, pd.binary),
                    format!(
                        "section `{}` <- {} ({} bytes): {e}",
                        patch.section,
                        patch.blob,
                        blob.len()
                    ),
                )
            })?;
            written.push((patch.section.clone(), blob.len()));
        }
        let image = out_dir.join(&pd.image);
        write_executable(&image, &elf)?;
        done.push(Assembled {
            pd: pd.name.clone(),
            image,
            written,
            skipped,
        });
    }
    Ok(done)
}

/// Write `bytes` to `path` with mode 0755, through a temporary file and a rename, so an image that
/// is still running (`ETXTBSY`) is replaced rather than written over.
fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("making executable", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming to", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format() {
        let a = Assembly::parse(
            r#"{"example": "hello", "system": "hello.system", "pds": {
                "pong": {"binary": "pong", "package": "lions-example-hello", "image": "pong.elf",
                         "patches": [{"section": ".hello_config", "blob": "hello_pong.data"}]},
                "ping": {"binary": "ping", "image": "ping.elf"}}}"#,
        )
        .unwrap();
        assert_eq!(a.system.as_deref(), Some("hello.system"));
        assert_eq!(
            a.pds,
            vec![
                PdImage {
                    name: "pong".into(),
                    binary: "pong".into(),
                    package: Some("lions-example-hello".into()),
                    image: "pong.elf".into(),
                    patches: vec![Patch {
                        section: ".hello_config".into(),
                        blob: "hello_pong.data".into()
                    }],
                },
                PdImage {
                    name: "ping".into(),
                    binary: "ping".into(),
                    package: None,
                    image: "ping.elf".into(),
                    patches: vec![],
                },
            ]
        );
    }

    #[test]
    fn refuses_bad_entries() {
        let e = |t: &str| Assembly::parse(t).unwrap_err().to_string();
        assert!(e("{}").contains("no `pds`"));
        assert!(
            e(r#"{"pds": {"a": {"image": "a.elf"}}}"#).contains("PD `a` has no string `binary`")
        );
        assert!(
            e(r#"{"pds": {"a": {"binary": "a", "image": "../a.elf"}}}"#).contains("plain file")
        );
        assert!(
            e(r#"{"pds": {"a": {"binary": "a", "image": "a.elf", "patches": [{"blob": "x"}]}}}"#)
                .contains("no string `section`")
        );
    }

    #[test]
    fn errors_name_pd_section_and_sizes() {
        let dir = std::env::temp_dir().join(format!("xtask-assemble-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("short.data"), [1u8; 10]).unwrap();
        std::fs::write(dir.join("empty.data"), []).unwrap();
        let exe = std::env::current_exe().unwrap();
        let bin_dir = exe.parent().unwrap();
        let binary = exe.file_name().unwrap().to_str().unwrap().to_owned();
        let pd = |patches: Vec<Patch>| Assembly {
            system: None,
            pds: vec![PdImage {
                name: "client0".into(),
                binary: binary.clone(),
                package: None,
                image: "client0.elf".into(),
                patches,
            }],
        };
        // The test binary holds `.device_resources` (patch.rs's tests declare it): 1608 bytes.
        let err = assemble(
            &pd(vec![Patch {
                section: ".device_resources".into(),
                blob: "short.data".into(),
            }]),
            &[bin_dir.to_path_buf()],
            &dir,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("PD `client0`")
                && err.contains("`.device_resources`")
                && err.contains("1608 bytes")
                && err.contains("10 bytes"),
            "{err}"
        );
        let err = assemble(
            &pd(vec![Patch {
                section: ".no_such".into(),
                blob: "short.data".into(),
            }]),
            &[bin_dir.to_path_buf()],
            &dir,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`.no_such`") && err.contains("no such section"),
            "{err}"
        );
        // An empty blob (sdfgen's `fat_config.data`) is skipped, even for a missing section.
        let done = assemble(
            &pd(vec![Patch {
                section: ".fat_config".into(),
                blob: "empty.data".into(),
            }]),
            &[bin_dir.to_path_buf()],
            &dir,
        )
        .unwrap();
        assert_eq!(done[0].skipped, vec![".fat_config".to_owned()]);
        let meta = std::fs::metadata(dir.join("client0.elf")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o755
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
