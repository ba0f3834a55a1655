// SPDX-License-Identifier: BSD-2-Clause
//! The commands: `build`, `run` and `graph`, each a sequence of the steps in the crate docs.

use crate::assembly::{Assembly, assemble};
use crate::cli::{Board, BuildArgs, Command};
use crate::{Error, graph, meta, target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

/// The launcher package and binary (`crates/lions-host`).
pub const LAUNCHER: &str = "lions-host";

/// Run a parsed command.
pub fn execute(cmd: Command) -> Result<(), Error> {
    let root = workspace_root();
    match cmd {
        Command::Help => {
            println!("{}", crate::cli::USAGE);
            Ok(())
        }
        Command::Build(args) => build(&root, &args).map(|_| ()),
        Command::Run {
            build: args,
            launcher_args,
        } => run(&root, &args, &launcher_args),
        Command::Graph {
            example,
            board,
            output,
        } => graph_cmd(&root, &example, board, output),
    }
}

/// `target/lions/<example>/<board>/`.
pub fn output_dir(root: &Path, example: &str, board: Board) -> PathBuf {
    target_dir(root)
        .join("lions")
        .join(example)
        .join(board.name())
}

fn cargo() -> Process {
    Process::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn status_of(mut cmd: Process, what: &str) -> Result<(), Error> {
    let status = cmd
        .status()
        .map_err(|e| Error(format!("{what}: cannot start: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error(format!("{what} failed ({status})")))
    }
}

/// Steps 1–2: venv, then the metaprogram into a fresh output folder; returns the folder.
fn metaprogram(root: &Path, example: &str, board: Board) -> Result<PathBuf, Error> {
    meta::example_dir(root, example)?;
    let python = meta::ensure_venv(root)?;
    let out = output_dir(root, example, board);
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| Error::io("clearing", &out, &e))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| Error::io("creating", &out, &e))?;
    meta::run_metaprogram(&python, root, example, board, &out)?;
    Ok(out)
}

/// `build`: metaprogram, `cargo build` of the binaries the assembly names, images with their
/// config sections written. Returns the output folder and the `.system` file.
pub fn build(root: &Path, args: &BuildArgs) -> Result<(PathBuf, PathBuf), Error> {
    args.board.check_buildable()?;
    let out = metaprogram(root, &args.example, args.board)?;
    let asm = Assembly::load(&out)?;
    let system = out.join(
        asm.system
            .clone()
            .unwrap_or_else(|| format!("{}.system", args.example)),
    );
    // Check the description before spending time on a build.
    lions_sdf::System::load(&system).map_err(|e| Error(format!("{}: {e}", system.display())))?;

    let own = format!("lions-example-{}", args.example);
    let mut packages: Vec<&str> = vec![&own];
    for pd in &asm.pds {
        if let Some(p) = pd.package.as_deref().filter(|p| !packages.contains(p)) {
            packages.push(p);
        }
    }
    let mut cmd = cargo();
    cmd.arg("build").current_dir(root);
    for p in &packages {
        cmd.args(["--package", p]);
    }
    cmd.arg("--bins");
    if args.release {
        cmd.arg("--release");
    }
    status_of(cmd, &format!("cargo build of {}", packages.join(", ")))?;

    let bin_dir = profile_dir(root, args.release);
    for done in assemble(&asm, &bin_dir, &out)? {
        let mut line = format!("xtask: {} -> {}", done.pd, done.image.display());
        for (section, size) in &done.written {
            line.push_str(&format!(", {section} ({size} B)"));
        }
        for section in &done.skipped {
            line.push_str(&format!(", {section} skipped (empty blob)"));
        }
        eprintln!("{line}");
    }
    eprintln!("xtask: built {}", system.display());
    Ok((out, system))
}

fn profile_dir(root: &Path, release: bool) -> PathBuf {
    target_dir(root).join(if release { "release" } else { "debug" })
}

/// `run`: build, build the launcher, then replace this process with
/// `lions-host <system> --search-path <output> ARGS...` (so Ctrl-C reaches the launcher directly).
pub fn run(root: &Path, args: &BuildArgs, launcher_args: &[String]) -> Result<(), Error> {
    let (out, system) = build(root, args)?;
    if !root
        .join("crates")
        .join(LAUNCHER)
        .join("Cargo.toml")
        .is_file()
    {
        return Err(Error(format!(
            "the host launcher crate crates/{LAUNCHER} is not in this tree; \
             the system is built in {}",
            out.display()
        )));
    }
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["build", "--package", LAUNCHER, "--bin", LAUNCHER]);
    if args.release {
        cmd.arg("--release");
    }
    status_of(cmd, "cargo build of the lions-host launcher")?;

    let launcher = profile_dir(root, args.release).join(LAUNCHER);
    let mut cmd = Process::new(&launcher);
    cmd.arg(&system)
        .arg("--search-path")
        .arg(&out)
        .args(launcher_args);
    eprintln!(
        "xtask: starting {} {} --search-path {}{}{} (Ctrl-C stops it)",
        launcher.display(),
        system.display(),
        out.display(),
        if launcher_args.is_empty() { "" } else { " " },
        launcher_args.join(" ")
    );
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    Err(Error::io("starting", &launcher, &e))
}

/// `graph`: metaprogram only, then the SVG (default `target/lions/<ex>/<ex>.svg`).
pub fn graph_cmd(
    root: &Path,
    example: &str,
    board: Board,
    output: Option<PathBuf>,
) -> Result<(), Error> {
    let out = metaprogram(root, example, board)?;
    let system_file = out.join(format!("{example}.system"));
    let sys = lions_sdf::System::load(&system_file)
        .map_err(|e| Error(format!("{}: {e}", system_file.display())))?;
    let svg = graph::render(&sys, &format!("{example} ({board})"));
    let file = output.unwrap_or_else(|| {
        target_dir(root)
            .join("lions")
            .join(example)
            .join(format!("{example}.svg"))
    });
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, &e))?;
    }
    std::fs::write(&file, svg).map_err(|e| Error::io("writing", &file, &e))?;
    eprintln!("xtask: wrote {}", file.display());
    Ok(())
}
