// SPDX-License-Identifier: BSD-2-Clause
//! The commands: `build`, `run` and `graph`, each a sequence of the steps in the crate docs.

use crate::assembly::{Assembled, Assembly, assemble};
use crate::cli::{Board, BuildArgs, Command};
use crate::elf::{Expect, PdElf};
use crate::microkit::{QEMU, Sdk, on_path, qemu_command};
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
            println!("{}", crate::cli::help(&meta::examples(&root)));
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
            regions,
        } => graph_cmd(&root, &example, board, output, regions),
        Command::BenchInsns(args) => crate::insns::run(&root, &args),
        Command::Fuzz(args) => crate::fuzz::run(&root, &args),
        Command::GuestImages => {
            let dir = crate::guest::make(root.as_path())?;
            println!("{}", dir.display());
            Ok(())
        }
        Command::Size { files } => {
            print!(
                "{}",
                crate::size::render(&crate::size::count(&root)?, files)
            );
            Ok(())
        }
        Command::Swap {
            example,
            pd,
            binary,
            release,
            control,
        } => swap(&root, &example, &pd, &binary, release, control),
        Command::Account {
            example,
            control,
            snapshot,
        } => account(&root, &example, control, snapshot),
    }
}

/// The control FIFO `run` gives the host launcher: `<output>/control.fifo`.
pub fn control_fifo(out: &Path) -> PathBuf {
    out.join("control.fifo")
}

/// `swap`: build `binary`, assemble it as `pd`'s image (`<pd>@<binary>.elf`, the PD's config
/// sections written) and send `swap <pd> <image>` to the running launcher's control FIFO.
fn swap(
    root: &Path,
    example: &str,
    pd: &str,
    binary: &str,
    release: bool,
    control: Option<PathBuf>,
) -> Result<(), Error> {
    let out = output_dir(root, example, Board::Host);
    let asm = Assembly::load(&out)?;
    let Some(entry) = asm.pds.iter().find(|p| p.name == pd) else {
        return Err(Error::missing(format!(
            "{}: no PD `{pd}` in this system (build and run it first)",
            out.display()
        )));
    };
    let package = entry
        .package
        .clone()
        .unwrap_or_else(|| "lions-components".into());
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["build", "--package", &package, "--bin", binary]);
    if release {
        cmd.arg("--release");
    }
    status_of(cmd, &format!("cargo build of {binary}"))?;
    let mut one = entry.clone();
    one.binary = binary.to_owned();
    one.image = format!("{pd}@{binary}.elf");
    let only = Assembly {
        pds: vec![one],
        ..asm.clone()
    };
    let done = assemble(&only, &[profile_dir(root, Board::Host, release)], &out)?;
    let image = &done[0].image;
    let fifo = control.unwrap_or_else(|| control_fifo(&out));
    send_control(&fifo, &format!("swap {pd} {}\n", image.display()))?;
    eprintln!(
        "xtask: asked the launcher ({}) to swap {pd} for {}",
        fifo.display(),
        image.display()
    );
    Ok(())
}

/// `account`: a snapshot of the running host build of `example` (or the saved snapshot folder
/// `saved`), every net buffer and blk unit accounted for ([`crate::account`]); an error when a
/// buffer is lost, doubled or stray.
fn account(
    root: &Path,
    example: &str,
    control: Option<PathBuf>,
    saved: Option<PathBuf>,
) -> Result<(), Error> {
    let out = output_dir(root, example, Board::Host);
    let started = std::time::Instant::now();
    let dir = match &saved {
        Some(dir) => dir.clone(),
        None => {
            let fifo = control.unwrap_or_else(|| control_fifo(&out));
            crate::account::request_snapshot(&out, &fifo)?
        }
    };
    let (account, blk) = crate::account::of_snapshot(&out, &dir)?;
    print!("{account}{blk}");
    let problems = account.problems().len() + blk.problems.len();
    for p in &blk.problems {
        println!("  blk: {p}");
    }
    println!(
        "(snapshot taken and accounted in {:.1} ms)",
        started.elapsed().as_secs_f64() * 1e3
    );
    if saved.is_none() {
        if problems == 0 {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!(
                "xtask: account: the snapshot is kept for inspection: {} (`--snapshot` accounts \
                 it again)",
                dir.display()
            );
        }
    }
    if problems > 0 {
        return Err(Error::invalid(
            format!("{example}: buffer account"),
            format!("{problems} problems (listed above)"),
        ));
    }
    Ok(())
}

/// Linux's `O_NONBLOCK` (the same on every architecture the host board runs on): opening a FIFO
/// for writing fails at once (`ENXIO`) instead of waiting when nobody reads it.
const O_NONBLOCK: i32 = 0o4000;

/// Write one command line to a launcher's control FIFO; refused at once when no launcher reads
/// it.
pub(crate) fn send_control(fifo: &Path, line: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(fifo)
        .map_err(|e| {
            Error::missing(format!(
                "{}: {e} (is the system running? `cargo xtask run` creates it)",
                fifo.display()
            ))
        })?;
    f.write_all(line.as_bytes())
        .map_err(|e| Error::io("writing to", fifo, e))
}

/// `target/lions/<example>/<board>/`; for a system folder of its own, `<folder>/target/lions/<board>/`.
pub fn output_dir(root: &Path, example: &str, board: Board) -> PathBuf {
    if meta::is_system_path(example) {
        let dir = std::fs::canonicalize(example).unwrap_or_else(|_| PathBuf::from(example));
        return dir.join("target").join("lions").join(board.name());
    }
    target_dir(root)
        .join("lions")
        .join(example)
        .join(board.name())
}

fn cargo() -> Process {
    Process::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn status_of(mut cmd: Process, what: &str) -> Result<(), Error> {
    let status = cmd.status().map_err(|e| Error::start(what, e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::failed(what, status, ""))
    }
}

/// Steps 1–2: venv, then the metaprogram into a fresh output folder; returns the folder.
fn metaprogram(root: &Path, example: &str, board: Board) -> Result<PathBuf, Error> {
    meta::example_dir(root, example)?;
    let python = meta::ensure_venv(root)?;
    let out = output_dir(root, example, board);
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| Error::io("clearing", &out, e))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| Error::io("creating", &out, e))?;
    meta::run_metaprogram(&python, root, example, board, &out)?;
    Ok(out)
}

/// What `build` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The output folder (`target/lions/<example>/<board>/`).
    pub out: PathBuf,
    /// The `.system` file.
    pub system: PathBuf,
    /// Each PD's image.
    pub images: Vec<Assembled>,
    /// The Microkit system image (`loader.img`), on a seL4 board with `$MICROKIT_SDK` set.
    pub loader: Option<PathBuf>,
}

/// `build`: metaprogram, `cargo build` of the binaries the assembly names (for the board's
/// target), images with their config sections written; on a seL4 board every image checked
/// ([`PdElf::check`]) and, with `$MICROKIT_SDK` set, the system image made by the Microkit tool.
/// Without the SDK it says that no system image was made, and why.
pub fn build(root: &Path, args: &BuildArgs) -> Result<Built, Error> {
    let out = metaprogram(root, &args.example, args.board)?;
    let asm = Assembly::load(&out)?;
    let system = out.join(
        asm.system
            .clone()
            .unwrap_or_else(|| format!("{}.system", meta::system_name(&args.example))),
    );
    // Check the description before spending time on a build.
    lions_sdf::System::load(&system)
        .map_err(|e| Error::invalid(system.display().to_string(), e))?;

    // linux_vm's VMM embeds the guest: with an SDK (a system image will be made), make or find
    // its images before compiling. Without one the images are not needed (the ELF checks), and
    // a VMM built without them says so when it starts.
    let sdk_set = std::env::var_os(crate::microkit::SDK_ENV).is_some_and(|v| !v.is_empty());
    if args.example == "linux_vm" && args.board.is_sel4() && sdk_set {
        let dir = crate::guest::make(root)?;
        eprintln!("xtask: guest images in {}", dir.display());
    }
    let bin_dirs = compile(root, args, &asm)?;
    let images = assemble(&asm, &bin_dirs, &out)?;
    for done in &images {
        let mut line = format!("xtask: {} -> {}", done.pd, done.image.display());
        for (section, size) in &done.written {
            line.push_str(&format!(", {section} ({size} B)"));
        }
        for section in &done.skipped {
            line.push_str(&format!(", {section} skipped (empty blob)"));
        }
        eprintln!("{line}");
    }
    let mut built = Built {
        out,
        system,
        images,
        loader: None,
    };
    if args.board.is_sel4() {
        inspect_images(&built)?;
        match Sdk::from_env(args.board) {
            Ok(sdk) => {
                sdk.check_board_constants(args.board)?;
                built.loader = Some(sdk.make_image(args.board, &built.system, &built.out)?);
            }
            Err(e) if std::env::var_os(crate::microkit::SDK_ENV).is_some() => return Err(e),
            Err(e) => eprintln!("xtask: loader.img NOT made: {e}"),
        }
    }
    eprintln!("xtask: built {}", built.system.display());
    if let Some(loader) = &built.loader {
        eprintln!("xtask: system image {}", loader.display());
    }
    Ok(built)
}

/// Whether `package` is a member of this workspace (a folder `crates/<package>`).
/// `cargo build` of the binaries `asm` names: a system folder's own PDs in its own workspace,
/// then the example's package and this workspace's component packages. Returns the folders to
/// look for binaries in, the system folder's first.
fn compile(root: &Path, args: &BuildArgs, asm: &Assembly) -> Result<Vec<PathBuf>, Error> {
    let product =
        meta::is_system_path(&args.example).then(|| meta::example_dir(root, &args.example));
    let mut bin_dirs = Vec::new();
    let workspace = Packages::load(root)?;
    let mut packages: Vec<&str> = Vec::new();
    if product.is_none() {
        let dir = meta::example_dir(root, &args.example)?;
        let own = workspace.in_dir(&dir).ok_or_else(|| {
            Error::missing(format!(
                "example `{}` has no Cargo package of this workspace in {} (its PDs' crate)",
                args.example,
                dir.display()
            ))
        })?;
        packages.push(own);
    }
    for pd in &asm.pds {
        let ours = pd.package.as_deref().filter(|p| workspace.contains(p));
        if let Some(p) = ours.filter(|p| !packages.contains(p)) {
            packages.push(p);
        }
    }
    if let Some(dir) = product {
        // A system folder of its own: its Cargo workspace builds its PDs, with the lions crates
        // as ordinary dependencies; our component binaries come from this checkout below.
        let dir = dir?;
        let theirs: Vec<&str> = asm
            .pds
            .iter()
            .filter(|pd| !pd.package.as_deref().is_some_and(|p| workspace.contains(p)))
            .map(|pd| pd.binary.as_str())
            .collect();
        let mut cmd = cargo();
        cmd.arg("build")
            .current_dir(&dir)
            .env_remove("CARGO_TARGET_DIR");
        cmd.arg("--manifest-path").arg(dir.join("Cargo.toml"));
        build_args(&mut cmd, args, &theirs);
        status_of(cmd, &format!("cargo build in {}", dir.display()))?;
        bin_dirs.push(profile_dir(&dir, args.board, args.release));
    }
    if !packages.is_empty() {
        let mut cmd = cargo();
        cmd.arg("build").current_dir(root);
        for p in &packages {
            cmd.args(["--package", p]);
        }
        let bins: Vec<&str> = asm.pds.iter().map(|pd| pd.binary.as_str()).collect();
        build_args(&mut cmd, args, &bins);
        status_of(cmd, &format!("cargo build of {}", packages.join(", ")))?;
    }
    bin_dirs.push(profile_dir(root, args.board, args.release));
    Ok(bin_dirs)
}

/// The packages of this workspace, as `cargo metadata` names them, with their folders.
struct Packages(Vec<(String, PathBuf)>);

impl Packages {
    /// `cargo metadata --no-deps` of the workspace at `root`.
    fn load(root: &Path) -> Result<Self, Error> {
        let what = "cargo metadata --no-deps --format-version 1";
        let out = cargo()
            .current_dir(root)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::start(what, e))?;
        if !out.status.success() {
            return Err(Error::failed(what, out.status, ""));
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| Error::invalid(what, e))?;
        let packages = meta["packages"].as_array().map_or(&[][..], Vec::as_slice);
        Ok(Self(
            packages
                .iter()
                .filter_map(|p| {
                    let name = p["name"].as_str()?;
                    let dir = Path::new(p["manifest_path"].as_str()?).parent()?;
                    Some((name.to_owned(), dir.to_path_buf()))
                })
                .collect(),
        ))
    }

    /// Whether `name` is one of them.
    fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The package whose manifest is in `dir`.
    fn in_dir(&self, dir: &Path) -> Option<&str> {
        let dir = std::fs::canonicalize(dir).ok()?;
        self.0
            .iter()
            .find(|(_, d)| std::fs::canonicalize(d).is_ok_and(|d| d == dir))
            .map(|(n, _)| n.as_str())
    }
}

/// The target, features, binaries and profile of a PD build: on a seL4 board only the binaries
/// the system names (host-only components do not build for seL4), on the host every binary.
fn build_args(cmd: &mut Process, args: &BuildArgs, bins: &[&str]) {
    match args.board.target() {
        Some(target) => {
            cmd.args(["--target", target, "--features", "lions-os/debug-print"]);
            let mut bins = bins.to_vec();
            bins.sort_unstable();
            bins.dedup();
            for b in bins {
                cmd.args(["--bin", b]);
            }
        }
        None => {
            cmd.arg("--bins");
        }
    }
    if args.release {
        cmd.arg("--release");
    }
}

/// What a seL4 PD image must satisfy: the system's `setvar` symbols for the PD and the config
/// sections the build wrote, with their sizes.
pub fn expectations(system: &lions_sdf::System, pd: &Assembled) -> Expect {
    let mut setvars = Vec::new();
    if let Some(p) = system.pd(&pd.pd) {
        for m in &p.maps {
            setvars.extend(m.setvar_vaddr.iter().chain(&m.setvar_size).cloned());
        }
        setvars.extend(p.setvars.iter().map(|s| s.symbol.clone()));
    }
    let sections = pd
        .written
        .iter()
        .map(|(name, size)| (name.clone(), *size as u64))
        .collect();
    Expect { setvars, sections }
}

/// Check every PD image of a seL4 system ([`PdElf::check`]) and print its sizes.
fn inspect_images(built: &Built) -> Result<(), Error> {
    let system = lions_sdf::System::load(&built.system)
        .map_err(|e| Error::invalid(built.system.display().to_string(), e))?;
    let mut problems = Vec::new();
    for pd in &built.images {
        let bytes = std::fs::read(&pd.image).map_err(|e| Error::io("reading", &pd.image, e))?;
        let elf =
            PdElf::parse(&bytes).map_err(|e| Error::invalid(pd.image.display().to_string(), e))?;
        let found = elf.check(&expectations(&system, pd));
        let sizes = elf.sizes();
        eprintln!(
            "xtask: {}: text {} B, data {} B, bss {} B{}",
            pd.pd,
            sizes.text,
            sizes.data,
            sizes.bss,
            if found.is_empty() {
                ""
            } else {
                ": NOT a valid PD image"
            }
        );
        problems.extend(
            found
                .into_iter()
                .map(|p| format!("{}: {p}", pd.image.display())),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "PD images the Microkit tool would refuse",
            format!("\n  {}", problems.join("\n  ")),
        ))
    }
}

/// Where cargo puts the binaries for `board`.
pub fn profile_dir(root: &Path, board: Board, release: bool) -> PathBuf {
    let mut dir = target_dir(root);
    if let Some(target) = board.target() {
        dir.push(target);
    }
    dir.join(if release { "release" } else { "debug" })
}

/// `run`: build, then on the host board build the launcher and replace this process with
/// `lions-host <system> --search-path <output> ARGS...` (so Ctrl-C reaches the launcher
/// directly); on a seL4 board replace it with QEMU booting the system image.
pub fn run(root: &Path, args: &BuildArgs, launcher_args: &[String]) -> Result<(), Error> {
    let Built {
        out,
        system,
        loader,
        ..
    } = build(root, args)?;
    if args.board.is_sel4() {
        return boot_in_qemu(loader, launcher_args);
    }
    if !root
        .join("crates")
        .join(LAUNCHER)
        .join("Cargo.toml")
        .is_file()
    {
        return Err(Error::missing(format!(
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

    let launcher = profile_dir(root, Board::Host, args.release).join(LAUNCHER);
    let mut cmd = Process::new(&launcher);
    cmd.arg(&system).arg("--search-path").arg(&out);
    if !launcher_args.iter().any(|a| a == "--control") {
        cmd.arg("--control").arg(control_fifo(&out));
    }
    cmd.args(launcher_args);
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
    Err(Error::io("starting", &launcher, e))
}

/// Replace this process with QEMU booting `loader` (extra arguments go to QEMU).
fn boot_in_qemu(loader: Option<PathBuf>, qemu_args: &[String]) -> Result<(), Error> {
    let Some(loader) = loader else {
        let why = Sdk::from_env(Board::QemuVirtAarch64)
            .err()
            .unwrap_or_else(|| Error::missing("no system image was made"));
        return Err(Error::missing(format!(
            "cannot boot: there is no system image (loader.img): {why}"
        )));
    };
    if !on_path(QEMU) {
        return Err(Error::missing(format!(
            "cannot boot {}: {QEMU} is not on PATH (Debian/Ubuntu: apt-get install \
             qemu-system-arm ipxe-qemu)",
            loader.display()
        )));
    }
    let mut cmd = qemu_command(&loader);
    cmd.args(qemu_args);
    let shown: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!(
        "xtask: starting {QEMU} {} (Ctrl-A X quits)",
        shown.join(" ")
    );
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    Err(Error::start(QEMU, e))
}

/// `graph`: metaprogram only, then the SVG (default `target/lions/<ex>/<ex>.svg`).
pub fn graph_cmd(
    root: &Path,
    example: &str,
    board: Board,
    output: Option<PathBuf>,
    regions: graph::Regions,
) -> Result<(), Error> {
    let out = metaprogram(root, example, board)?;
    let name = meta::system_name(example);
    let system_file = out.join(
        Assembly::load(&out)
            .ok()
            .and_then(|a| a.system)
            .unwrap_or_else(|| format!("{name}.system")),
    );
    let sys = lions_sdf::System::load(&system_file)
        .map_err(|e| Error::invalid(system_file.display().to_string(), e))?;
    let svg = graph::render_with(&sys, &format!("{name} ({board})"), regions);
    let file = output.unwrap_or_else(|| match out.parent() {
        Some(dir) if meta::is_system_path(example) => dir.join(format!("{name}.svg")),
        _ => target_dir(root)
            .join("lions")
            .join(example)
            .join(format!("{name}.svg")),
    });
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    std::fs::write(&file, svg).map_err(|e| Error::io("writing", &file, e))?;
    eprintln!("xtask: wrote {}", file.display());
    Ok(())
}
