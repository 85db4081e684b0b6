//! Where a results directory's files came from: `OUT/provenance.json`.
//!
//! Invariant: every experiment whose files are in a results directory has an entry in that
//! directory's `provenance.json`, written after its files and describing the run that wrote them:
//! the command that reproduces it, the commit of the source it was built from and whether that
//! source had uncommitted changes, the compiler, the build profile, the machine (CPU model, cores,
//! memory, OS) and when it ran. An entry is replaced whole when its experiment runs again; the
//! others are left as they are, so a directory filled by several invocations (`run-all.sh`, or one
//! experiment re-run alone) says which run produced which file. `merge` writes the entry of a
//! merged experiment with the provenance of every shard it joined, so a sweep spread over machines
//! names each of them.
//!
//! Algorithm: read the file (a missing or unreadable one starts empty), replace the entry, write
//! it back atomically, all under an exclusive lock on the directory so that experiments finishing
//! at once into one directory do not lose each other's entries. The commit and the dirty flag come
//! from `git` in the repository the binary was built from, read when the run starts (what the
//! source was when it was built, as near as a run can tell: edits made while it runs are not in
//! the binary); results files and `paper.md` do not count as changes (a suite rewrites them as it
//! goes). Everything that
//! cannot be found (no `git`, no `/proc`) is recorded as unknown rather than failing the run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::cli;
use crate::suite::SuiteError;

/// The file every results directory holds.
pub const FILE_NAME: &str = "provenance.json";

/// The version of [`ProvenanceFile`]'s layout.
const FORMAT: u32 = 1;

/// One run's origin: how to repeat it and what it ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The command, shell-quoted, as it was typed (from the repository root).
    pub command: String,
    /// When the run started, RFC 3339, UTC.
    pub started: String,
    /// How long the run took, seconds.
    pub wall_s: f64,
    /// `git rev-parse HEAD` of the repository the binary was built from; `None` where there is
    /// no git or no repository.
    pub commit: Option<String>,
    /// Whether that repository's source differed from `commit` (results and `paper.md` aside).
    pub dirty: Option<bool>,
    /// `rustc --version` of the compiler that built the binary.
    pub rustc: String,
    /// `release` or `debug`.
    pub profile: String,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// CPUs this process may run on.
    pub cores: usize,
    /// Physical memory, bytes.
    pub memory_bytes: Option<u64>,
    /// The OS (`PRETTY_NAME` of `/etc/os-release`) and kernel release.
    pub os: String,
    /// For an experiment `merge` joined: each shard's own provenance, in shard order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<Provenance>,
}

/// `OUT/provenance.json`: one entry per experiment, by name.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ProvenanceFile {
    format: u32,
    experiments: BTreeMap<String, Provenance>,
}

/// A run being timed: [`Run::start`] when it begins, [`Run::finish`] when its files are written.
#[derive(Debug)]
pub struct Run {
    command: String,
    started: SystemTime,
    clock: Instant,
}

impl Run {
    /// Starts timing the run `argv` (program name first) describes, and reads the source's
    /// commit and state now, before anything can change them while it runs.
    pub fn start(argv: &[String]) -> Run {
        machine();
        Run {
            command: shell_command(argv),
            started: SystemTime::now(),
            clock: Instant::now(),
        }
    }

    /// The provenance of the run, now that it has finished.
    pub fn finish(&self) -> Provenance {
        Provenance {
            command: self.command.clone(),
            started: humantime::format_rfc3339_seconds(self.started).to_string(),
            wall_s: (self.clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            shards: Vec::new(),
            ..machine().clone()
        }
    }
}

/// Writes `provenance` as `experiment`'s entry of `out/provenance.json`, keeping every other
/// entry.
pub fn record(out: &Path, experiment: &str, provenance: Provenance) -> Result<(), SuiteError> {
    let path = out.join(FILE_NAME);
    let failed = |e: &dyn std::fmt::Display| {
        SuiteError::Failed(format!("cannot write {}: {e}", path.display()))
    };
    fs::create_dir_all(out).map_err(|e| failed(&e))?;
    let _lock = DirLock::take(out);
    let mut file: ProvenanceFile = fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    file.format = FORMAT;
    file.experiments.insert(experiment.to_owned(), provenance);
    cli::write_atomically(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, &file).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
    .map_err(|e| failed(&e))
}

/// The entries of `dir/provenance.json`, by experiment (empty when there is none).
pub fn read(dir: &Path) -> BTreeMap<String, Provenance> {
    fs::read(dir.join(FILE_NAME))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ProvenanceFile>(&bytes).ok())
        .map(|f| f.experiments)
        .unwrap_or_default()
}

/// An exclusive lock on a directory, held until dropped (none where the OS cannot lock one:
/// then concurrent writers may lose an entry, and nothing else goes wrong).
struct DirLock(Option<fs::File>);

impl DirLock {
    fn take(dir: &Path) -> DirLock {
        DirLock(fs::File::open(dir).ok().filter(|f| f.lock().is_ok()))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Some(f) = &self.0 {
            let _ = f.unlock();
        }
    }
}

/// The machine's part of a [`Provenance`], found once per process.
fn machine() -> &'static Provenance {
    static MACHINE: std::sync::OnceLock<Provenance> = std::sync::OnceLock::new();
    MACHINE.get_or_init(|| {
        let repo = repository();
        Provenance {
            command: String::new(),
            started: String::new(),
            wall_s: 0.0,
            commit: git(&repo, &["rev-parse", "HEAD"]),
            dirty: git(
                &repo,
                &[
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    ".",
                    ":(exclude)results",
                    ":(exclude)paper.md",
                ],
            )
            .map(|changes| !changes.is_empty()),
            rustc: env!("STKBAR_RUSTC_VERSION").to_owned(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_owned(),
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: crate::limits::physical_memory(),
            os: os(),
            shards: Vec::new(),
        }
    })
}

/// The repository the binary was built from.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// `git -C repo ARGS`'s trimmed output, or `None` if git is absent or fails.
fn git(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

fn os() -> String {
    let name = fs::read_to_string("/etc/os-release").ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
    });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_owned());
    match (name, kernel) {
        (Some(n), Some(k)) => format!("{n}, {} {k}", std::env::consts::OS),
        (Some(n), None) => n,
        (None, Some(k)) => format!("{} {k}", std::env::consts::OS),
        (None, None) => std::env::consts::OS.to_owned(),
    }
}

/// `argv` as one shell command line: the program by its file name, every argument quoted where
/// the shell would need it.
pub fn shell_command(argv: &[String]) -> String {
    let mut words = argv.iter().map(String::as_str);
    let program = words
        .next()
        .map(|p| {
            Path::new(p)
                .file_name()
                .map_or(p.into(), |f| f.to_string_lossy())
        })
        .unwrap_or_default()
        .into_owned();
    std::iter::once(program)
        .chain(words.map(|w| shlex::try_quote(w).map_or_else(|_| w.to_owned(), Into::into)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(words: &[&str]) -> Provenance {
        let argv: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        Run::start(&argv).finish()
    }

    #[test]
    fn an_entry_replaces_its_experiments_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), "a", run_of(&["a", "--quick"])).unwrap();
        record(dir.path(), "b", run_of(&["b", "--full"])).unwrap();
        record(dir.path(), "a", run_of(&["a", "--seed", "7"])).unwrap();
        let entries = read(dir.path());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries["a"].command, "a --seed 7");
        assert_eq!(entries["b"].command, "b --full");
        assert_eq!(entries["a"].rustc, env!("STKBAR_RUSTC_VERSION"));
        assert!(entries["a"].rustc.starts_with("rustc "));
    }

    #[test]
    fn a_damaged_file_is_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "{ not json").unwrap();
        record(dir.path(), "a", run_of(&["a"])).unwrap();
        assert_eq!(read(dir.path()).len(), 1);
    }

    #[test]
    fn the_command_is_quoted_for_the_shell_and_names_the_program_by_its_file() {
        let argv = [
            "target/release/testbed",
            "--paper",
            "my paper.md",
            "--seed",
            "3",
        ];
        let argv: Vec<String> = argv.iter().map(|w| (*w).to_owned()).collect();
        assert_eq!(
            shell_command(&argv),
            "testbed --paper 'my paper.md' --seed 3"
        );
    }
}
