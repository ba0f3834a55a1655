// SPDX-License-Identifier: BSD-2-Clause
//! The Python side: the pinned sdfgen venv and the example metaprograms.

use crate::Error;
use crate::cli::Board;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The examples: folders under `<root>/examples` that hold a `meta.py`, sorted.
pub fn examples(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("examples"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("meta.py").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Whether a command-line `<example>` names a system folder (a product of its own, outside
/// `examples/`) rather than an example: it is a path (`./my-product`, `/src/product`, `..`).
pub fn is_system_path(example: &str) -> bool {
    example.contains('/') || example == "." || example == ".."
}

/// The system's name: the example's, or a system folder's last path component.
pub fn system_name(example: &str) -> String {
    if !is_system_path(example) {
        return example.to_owned();
    }
    let path = std::fs::canonicalize(example).unwrap_or_else(|_| PathBuf::from(example));
    path.file_name()
        .map_or_else(|| "system".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The folder of example `name`, or the system folder `name` names (a path holding a
/// `meta.py`); an unknown example is an error listing the known ones.
pub fn example_dir(root: &Path, name: &str) -> Result<PathBuf, Error> {
    if is_system_path(name) {
        let dir = std::fs::canonicalize(name)
            .map_err(|e| Error::io("opening the system folder", Path::new(name), e))?;
        if !dir.join("meta.py").is_file() {
            return Err(Error::missing(format!(
                "system folder {} has no meta.py (the metaprogram that describes the system; \
                 see templates/product)",
                dir.display()
            )));
        }
        return Ok(dir);
    }
    let known = examples(root);
    if known.iter().any(|k| k == name) {
        return Ok(root.join("examples").join(name));
    }
    Err(Error::missing(if known.is_empty() {
        format!(
            "unknown example `{name}`: no examples/<name>/meta.py under {}",
            root.display()
        )
    } else {
        format!(
            "unknown example `{name}`; known examples: {} (or give a path to a system folder \
             of your own, e.g. ./my-product)",
            known.join(", ")
        )
    }))
}

/// Make sure the sdfgen venv exists (creating it and installing the pinned packages the first
/// time, through `interop/setup-venv.sh`) and return its `python`.
pub fn ensure_venv(root: &Path) -> Result<PathBuf, Error> {
    let script = root.join("interop/setup-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io("running", &script, e))?;
    if !out.status.success() {
        return Err(Error::failed(
            script.display().to_string(),
            out.status,
            "the sdfgen venv needs python3 with the venv module \
             (Debian: apt-get install python3-venv) and network access to PyPI the first time",
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let python = stdout.lines().last().unwrap_or("").trim();
    if python.is_empty() {
        return Err(Error::invalid(
            script.display().to_string(),
            "printed no python path",
        ));
    }
    Ok(PathBuf::from(python))
}

/// Run `examples/<ex>/meta.py --board B --output OUT` with `python` (stdout passed through;
/// sdfgen's "failed to open sDDF driver directory" notes dropped from stderr).
pub fn run_metaprogram(
    python: &Path,
    root: &Path,
    example: &str,
    board: Board,
    out_dir: &Path,
) -> Result<(), Error> {
    let meta = example_dir(root, example)?.join("meta.py");
    let mut child = Command::new(python)
        .arg(&meta)
        .arg("--board")
        .arg(board.name())
        .arg("--output")
        .arg(out_dir)
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running", &meta, e))?;
    let mut last = None;
    if let Some(stderr) = child.stderr.take() {
        let mut err = std::io::stderr().lock();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !line.starts_with("info: failed to open sDDF driver directory") {
                let _ = writeln!(err, "{line}");
                last = Some(line);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for", &meta, e))?;
    if !status.success() {
        // A metaprogram's last word is usually why (an unsupported board, a Python error).
        return Err(Error::failed(
            format!("metaprogram {}", meta.display()),
            status,
            last.unwrap_or_default(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_example_lists_the_known_ones() {
        let root = crate::workspace_root();
        assert!(examples(&root).contains(&"hello".to_owned()));
        let e = example_dir(&root, "nope").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown example `nope`; known examples: "),
            "{e}"
        );
        assert!(e.contains("hello"), "{e}");
        assert!(example_dir(&root, "hello").is_ok());
    }

    #[test]
    fn a_path_is_a_system_folder() {
        let root = crate::workspace_root();
        assert!(is_system_path("./p") && is_system_path("/a/b") && is_system_path(".."));
        assert!(!is_system_path("hello"));
        let hello = root.join("examples/hello");
        let dir = example_dir(&root, hello.to_str().unwrap()).unwrap();
        assert_eq!(dir, std::fs::canonicalize(&hello).unwrap());
        assert_eq!(system_name(hello.to_str().unwrap()), "hello");
        let e = example_dir(&root, root.join("crates").to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no meta.py"), "{e}");
    }
}
