//! What every binary does at its edges: turn a bad command line into one line on stderr and exit
//! code 2, and write result files atomically.
//!
//! Invariant: a result file on disk is always either the old complete file or the new complete
//! file. [`write_atomically`] writes into a temporary file in the destination's directory, flushes
//! and syncs it, and renames it over the destination, so an interrupted run loses nothing that was
//! there (ARCHITECTURE.md §7: results are written atomically).

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use tempfile::NamedTempFile;

/// Parses the command line of binary `bin`. `--help` and `--version` print and give
/// `Err(ExitCode::SUCCESS)`; any other error prints clap's message folded onto one line,
/// `bin: message`, and gives `Err(2)`.
pub fn parse_args<T: Parser>(bin: &str) -> Result<T, ExitCode> {
    parse_args_from(bin, std::env::args_os())
}

/// [`parse_args`] over an explicit argument list (the first item is the program name).
pub fn parse_args_from<T: Parser>(
    bin: &str,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<T, ExitCode> {
    T::try_parse_from(args).map_err(|e| {
        if !e.use_stderr() {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        eprintln!("{bin}: {}", one_line(&e.to_string()));
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

/// Writes `path` atomically: `fill` writes the contents into a temporary file beside it, which
/// then replaces `path` in one rename. Creates the directory if needed.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    fs::create_dir_all(dir_of(path))?;
    let mut tmp = temp_file_beside(path)?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    persist(tmp, path)
}

/// The directory `path` lies in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A temporary file in `path`'s directory, which must exist: what [`persist`] later renames over
/// `path` (a rename within one file system is atomic). Dropped without `persist`, it is deleted.
pub fn temp_file_beside(path: &Path) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".stkbar-")
        .suffix(".tmp")
        .tempfile_in(dir_of(path))
}

/// Makes `tmp` (from [`temp_file_beside`], fully written and flushed) readable by everyone, syncs
/// it and renames it over `path`.
pub fn persist(tmp: NamedTempFile, path: &Path) -> io::Result<()> {
    // Results are for everyone to read; the temporary file was created private (0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn clap_errors_fold_to_one_line() {
        let msg = "error: unexpected argument '--bogus' found\n\n  tip: something\n\nUsage: x\n";
        assert_eq!(one_line(msg), "unexpected argument '--bogus' found");
    }
}
