//! What every binary does at its edges: its command line, its output streams and its files.
//!
//! Invariants (ARCHITECTURE.md §7):
//! * Bad input is one line on stderr and exit code 2 ([`parse_args`], [`check_output_file`],
//!   [`check_output_dir`]), found before any work.
//! * A result file on disk is always either the old complete file or the new complete file.
//!   [`write_atomically`] writes into a temporary file in the destination's directory, flushes
//!   and syncs it, and renames it over the destination, so an interrupted run loses nothing that
//!   was there.
//! * Only regular files are written. An output path that names a directory, a FIFO, a device or
//!   a socket is refused; a symbolic link is followed, and the file it points to is replaced
//!   (the link stays a link).
//! * No temporary file outlives the process: each is registered while it exists, and the handler
//!   [`install_cleanup`] sets for SIGINT, SIGTERM and SIGHUP removes every registered one before
//!   the process exits with code 130. Creating, renaming and deleting one hold the registry's
//!   lock, so the handler never sees a file half-way between the registry and the disk.
//! * Writing to stdout or stderr never panics. A reader that went away (a closed pipe, as under
//!   `| head -1`) ends the output quietly with the exit code the run earned: its files are
//!   written already. Any other stdout error (a full disk) is one line on stderr and exit 1. An
//!   error writing stderr is dropped: there is nowhere left to say it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, MutexGuard, PoisonError};

use clap::Parser;
use tempfile::NamedTempFile;

/// Parses the command line of binary `bin`. `--help` and `--version` print and give
/// `Err(ExitCode::SUCCESS)`; any other error prints clap's message folded onto one line,
/// `bin: message`, and gives `Err(2)`. Installs [`install_cleanup`] first.
pub fn parse_args<T: Parser>(bin: &str) -> Result<T, ExitCode> {
    parse_args_from(bin, std::env::args_os())
}

/// [`parse_args`] over an explicit argument list (the first item is the program name).
pub fn parse_args_from<T: Parser>(
    bin: &str,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<T, ExitCode> {
    install_cleanup();
    T::try_parse_from(args).map_err(|e| {
        if !e.use_stderr() {
            // --help and --version: their text goes to stdout, which may be a closed pipe.
            return finish(bin, e.render().to_string().trim_end(), ExitCode::SUCCESS);
        }
        say(bin, one_line(&e.to_string()));
        ExitCode::from(2)
    })
}

/// clap's message up to its usage block, folded onto one line.
pub fn one_line(msg: &str) -> String {
    msg.lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}

/// Says `bin: msg` on stderr, one line. Never fails: an error writing stderr is dropped.
pub fn say(bin: &str, msg: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{bin}: {msg}");
}

/// Writes `text` and a newline to stdout and flushes it. A reader that went away gives an
/// error of kind [`io::ErrorKind::BrokenPipe`], which [`stdout_failed`] turns into a quiet end.
pub fn println_out(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Ends binary `bin`: prints `text` on stdout (nothing if it is empty) and gives `code`; see
/// [`stdout_failed`] for what a write error gives.
pub fn finish(bin: &str, text: &str, code: ExitCode) -> ExitCode {
    if text.is_empty() {
        return code;
    }
    match println_out(text) {
        Ok(()) => code,
        Err(e) => stdout_failed(bin, &e, code),
    }
}

/// The exit code of binary `bin` after writing stdout failed with `e`, where `code` is what the
/// run earned: `code` itself, quietly, if the reader went away (its files are written already,
/// and a reader that took what it wanted, as `head` does, wants no complaint); else one line on
/// stderr and 1.
pub fn stdout_failed(bin: &str, e: &io::Error, code: ExitCode) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return code;
    }
    say(bin, format_args!("cannot write to stdout: {e}"));
    ExitCode::from(1)
}

/// Checks, before any work, that output file `path` (given as `flag`) can be written: it names
/// a regular file or nothing yet (through any symbolic links), in a directory that exists and
/// takes a new file. The error is one line for exit code 2.
pub fn check_output_file(flag: &str, path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err(format!("{flag} needs a file name"));
    }
    let shown = path.display();
    let target = link_target(path).map_err(|e| format!("{flag} {shown}: {e}"))?;
    match fs::metadata(&target) {
        Ok(m) if !m.is_file() => {
            return Err(format!(
                "{flag} {shown} is {}, not a regular file",
                kind_of(&m)
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{flag} {shown}: {e}")),
    }
    let dir = dir_of(&target);
    if !dir.is_dir() {
        return Err(format!(
            "{flag} {shown}: directory {} does not exist",
            dir.display()
        ));
    }
    probe_dir(dir).map_err(|e| {
        format!(
            "{flag} {shown}: cannot create a file in {}: {e}",
            dir.display()
        )
    })
}

/// Checks, before any work, that output directory `dir` (given as `flag`) can take files: it is
/// a directory where a file can be created, or it does not exist yet and its nearest existing
/// ancestor is such a directory (the writes create the rest). Nothing is created here. The error
/// is one line for exit code 2.
pub fn check_output_dir(flag: &str, dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err(format!("{flag} needs a directory name"));
    }
    let shown = dir.display();
    let mut at = dir;
    loop {
        match fs::metadata(at) {
            Ok(m) if !m.is_dir() => {
                let what = if at == dir {
                    String::new()
                } else {
                    format!(": {}", at.display())
                };
                return Err(format!(
                    "{flag} {shown}{what} is {}, not a directory",
                    kind_of(&m)
                ));
            }
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                at = match at.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
            }
            Err(e) => return Err(format!("{flag} {shown}: {e}")),
        }
    }
    probe_dir(at).map_err(|e| {
        format!(
            "{flag} {shown}: cannot create a file in {}: {e}",
            at.display()
        )
    })
}

/// Creates and removes a temporary file in `dir`: whether a result could be written there.
fn probe_dir(dir: &Path) -> io::Result<()> {
    temp_file_in(dir).map(drop)
}

/// What a file system object is, for messages: `a directory`, `a FIFO`, …
fn kind_of(m: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if m.is_dir() {
        "a directory"
    } else if m.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// The path a write to `path` replaces: `path` itself, or the end of the chain of symbolic
/// links it starts (a link is followed, not replaced). At most 40 links, as Linux's `open`.
pub fn link_target(path: &Path) -> io::Result<PathBuf> {
    let mut target = path.to_owned();
    for _ in 0..40 {
        match fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => {
                let next = fs::read_link(&target)?;
                target = dir_of(&target).join(next);
            }
            _ => return Ok(target),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Writes `path` atomically: `fill` writes the contents into a temporary file beside it, which
/// then replaces `path` in one rename. Creates the directory if needed. Follows a symbolic link;
/// refuses a path that names something other than a regular file.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let target = link_target(path)?;
    if let Ok(m) = fs::metadata(&target)
        && !m.is_file()
    {
        let why = format!("{} is {}, not a regular file", path.display(), kind_of(&m));
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    fs::create_dir_all(dir_of(&target))?;
    let mut tmp = temp_file_beside(&target)?;
    {
        let mut w = BufWriter::new(&mut tmp);
        fill(&mut w)?;
        w.flush()?;
    }
    persist(tmp, &target)
}

/// The directory `path` lies in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The temporary files that exist now, which a signal's cleanup removes.
static LIVE_TEMP_FILES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The registry, whatever a panicking holder left (a set of paths has no invariant to break).
fn live_temp_files() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    LIVE_TEMP_FILES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A temporary result file (`.stkbar-*.tmp`), registered for [`install_cleanup`] while it
/// exists: [`persist`] renames it over its destination; dropped, it is deleted.
#[derive(Debug)]
pub struct TempFile {
    /// `None` once persisted or deleted.
    file: Option<NamedTempFile>,
}

impl TempFile {
    fn file(&mut self) -> &mut NamedTempFile {
        self.file.as_mut().expect("a live temporary file")
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let mut live = live_temp_files();
            let path = file.path().to_owned();
            drop(file); // deletes it, with the registry held
            live.remove(&path);
        }
    }
}

/// A temporary file in `path`'s directory, which must exist: what [`persist`] later renames over
/// `path` (a rename within one file system is atomic). Dropped without `persist`, it is deleted.
pub fn temp_file_beside(path: &Path) -> io::Result<TempFile> {
    temp_file_in(dir_of(path))
}

fn temp_file_in(dir: &Path) -> io::Result<TempFile> {
    let mut live = live_temp_files();
    let file = tempfile::Builder::new()
        .prefix(".stkbar-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    live.insert(file.path().to_owned());
    Ok(TempFile { file: Some(file) })
}

/// Makes `tmp` (from [`temp_file_beside`], fully written and flushed) readable by everyone, syncs
/// it and renames it over `path`.
pub fn persist(mut tmp: TempFile, path: &Path) -> io::Result<()> {
    let file = tmp.file();
    // Results are for everyone to read; the temporary file was created private (0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    file.as_file().sync_all()?;
    let mut live = live_temp_files();
    let file = tmp.file.take().expect("a live temporary file");
    let temp_path = file.path().to_owned();
    match file.persist(path) {
        Ok(_) => {
            live.remove(&temp_path);
            Ok(())
        }
        Err(e) => {
            // Back under the guard, which deletes it when it drops.
            tmp.file = Some(e.file);
            drop(live);
            Err(e.error)
        }
    }
}

/// Sets, once per process, the handler that on SIGINT, SIGTERM or SIGHUP removes every
/// temporary file this process still has and exits with code 130 (interrupted).
pub fn install_cleanup() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Without a handler a signal still ends the process; it only leaves the files behind.
        let _ = ctrlc::set_handler(|| {
            let live = live_temp_files();
            for path in live.iter() {
                let _ = fs::remove_file(path);
            }
            // Exits with the registry held, so no thread creates another file.
            std::process::exit(130);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.csv");
        write_atomically(&path, |w: &mut dyn Write| w.write_all(b"old\n")).unwrap();
        let failed = write_atomically(&path, |w: &mut dyn Write| {
            w.write_all(b"half of the new")?;
            Err(io::Error::other("interrupted"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "old\n");
        write_atomically(&path, |w: &mut dyn Write| w.write_all(b"new\n")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o644,
                "readable by everyone, like any result file"
            );
        }
        // No temporary file is left behind, on disk or in the registry.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        assert!(!live_temp_files().iter().any(|p| p.starts_with(dir.path())));
    }

    #[cfg(unix)]
    #[test]
    fn a_write_follows_a_symlink_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.csv");
        let link = dir.path().join("link.csv");
        fs::write(&target, "old\n").unwrap();
        std::os::unix::fs::symlink("real.csv", &link).unwrap();
        check_output_file("--out", &link).unwrap();
        write_atomically(&link, |w: &mut dyn Write| w.write_all(b"new\n")).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_outputs() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = check_output_file("--trace", &fifo).unwrap_err();
        assert!(e.ends_with("is a FIFO, not a regular file"), "{e}");
        assert!(write_atomically(&fifo, |_: &mut dyn Write| Ok(())).is_err());
        assert!(
            fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
            "the FIFO is still there"
        );
        let e = check_output_file("--trace", dir.path()).unwrap_err();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        let e = check_output_file("--trace", Path::new("/dev/null")).unwrap_err();
        assert!(
            e.ends_with("is a character device, not a regular file"),
            "{e}"
        );
        let e = check_output_dir("--out", &fifo).unwrap_err();
        assert!(e.ends_with("is a FIFO, not a directory"), "{e}");
        let fresh = dir.path().join("a/b");
        check_output_dir("--out", &fresh).unwrap();
        assert!(
            !fresh.exists(),
            "a missing --out is left for the writes to create"
        );
        let e = check_output_dir("--out", &fifo.join("sub")).unwrap_err();
        assert!(e.ends_with("fifo is a FIFO, not a directory"), "{e}");
    }

    #[test]
    fn clap_errors_fold_to_one_line() {
        let msg = "error: unexpected argument '--bogus' found\n\n  tip: something\n\nUsage: x\n";
        assert_eq!(one_line(msg), "unexpected argument '--bogus' found");
    }
}
