// SPDX-License-Identifier: BSD-2-Clause
//! A test runner for tests that may not be able to run here (`harness = false` targets): each
//! [`Trial`] says at start-up, from this machine, whether it can run, and one that cannot is
//! reported as **ignored** with its reason (`test NAME ... ignored, not run: REASON`), counted
//! among the ignored, never among the passed, and never fails the run. Everything else is as
//! libtest does it: the same lines and closing summary (`test result: ok. 1 passed; 0 failed;
//! 1 ignored; ...`), exit status 101 when a test failed.
//!
//! Options: `--list`, `--ignored` (run only the trials that would not run: each then runs and
//! fails with what is missing, the opt-in way to see it), `--include-ignored`, `--exact`,
//! `--skip FILTER` and name filters, as libtest; libtest's display options (`--nocapture`,
//! `--test-threads N`, `--format F`, `--color C`, `-q`, ...) are accepted and have no effect:
//! trials run one after another, their output not captured.

use std::process::ExitCode;
use std::time::Instant;

/// One test.
pub struct Trial {
    /// Its name, as filters and the report use it.
    pub name: &'static str,
    /// The test: passes unless it panics.
    pub run: fn(),
    /// Why it cannot run on this machine (a missing privilege or tool), if it cannot.
    pub not_run: Option<String>,
}

#[derive(Default)]
struct Options {
    list: bool,
    ignored: bool,
    include_ignored: bool,
    exact: bool,
    filters: Vec<String>,
    skip: Vec<String>,
}

fn options() -> Options {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => o.list = true,
            "--ignored" => o.ignored = true,
            "--include-ignored" => o.include_ignored = true,
            "--exact" => o.exact = true,
            "--skip" => o.skip.extend(args.next()),
            // libtest's options that take a value: accepted, no effect here.
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                args.next();
            }
            f if f.starts_with('-') => {}
            _ => o.filters.push(a),
        }
    }
    o
}

impl Options {
    fn selects(&self, name: &str) -> bool {
        let hit = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(hit)) && !self.skip.iter().any(hit)
    }
}

/// Run `trials` as the options say; the process's exit status.
pub fn run(trials: Vec<Trial>) -> ExitCode {
    let o = options();
    let total = trials.len();
    let chosen: Vec<Trial> = trials.into_iter().filter(|t| o.selects(t.name)).collect();
    if o.list {
        for t in &chosen {
            println!("{}: test", t.name);
        }
        println!("\n{} tests, 0 benchmarks", chosen.len());
        return ExitCode::SUCCESS;
    }
    let filtered = total - chosen.len();
    println!(
        "\nrunning {} test{}",
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" }
    );
    let start = Instant::now();
    let (mut passed, mut ignored, mut failed) = (0, 0, Vec::new());
    for t in chosen {
        let runs = match &t.not_run {
            None => !o.ignored,
            Some(_) => o.ignored || o.include_ignored,
        };
        if !runs {
            ignored += 1;
            match &t.not_run {
                Some(why) => println!("test {} ... ignored, not run: {why}", t.name),
                None => println!("test {} ... ignored", t.name),
            }
            continue;
        }
        if let Some(why) = &t.not_run {
            eprintln!("{}: asked to run although it cannot here: {why}", t.name);
        }
        println!("test {} ...", t.name);
        // Its own thread, named as libtest names them (panic messages say which test).
        let f = t.run;
        let outcome = std::thread::Builder::new()
            .name(t.name.to_owned())
            .spawn(f)
            .map(|h| h.join().is_ok());
        if matches!(outcome, Ok(true)) {
            passed += 1;
            println!("test {} ... ok", t.name);
        } else {
            println!("test {} ... FAILED", t.name);
            failed.push(t.name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored; 0 measured; \
         {filtered} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

/// Whether `tool` is an executable on `PATH` or in `/usr/sbin` or `/sbin` (where Debian puts
/// `ip`, which an ordinary user's `PATH` may lack).
pub fn have_tool(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The tools of `needed` (`(tool, Debian package)`) that are missing, as a reason to not run, or
/// `None` when all are there.
pub fn missing_tools(needed: &[(&str, &str)]) -> Option<String> {
    let missing: Vec<String> = needed
        .iter()
        .filter(|(tool, _)| !have_tool(tool))
        .map(|(tool, pkg)| format!("`{tool}` (Debian package {pkg})"))
        .collect();
    (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
}
