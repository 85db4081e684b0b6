//! The binaries' edges under hostile conditions (`experiments::cli`, `experiments::limits`): a
//! closed or full stdout, a closed stderr, outputs that are not regular files, bounds on every
//! flag that sizes work or memory, non-UTF-8 knobs, a paper without markers, Ctrl-C, and the
//! shape of error messages. Each case is bad input with one line and exit code 2, or a quiet end
//! on a closed pipe; never a panic, a hang or a lost file.

#[allow(dead_code)] // each test file uses a part of the shared helpers
mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::{EXPERIMENTS, bin_path};

/// A small `testbed` run: a few hundred milliseconds.
const SMALL: &[&str] = &[
    "--workload",
    "mixed",
    "--goroutines",
    "4",
    "--depth",
    "20",
    "--cycles",
    "2",
];

/// `bin args…` with no `STKBAR_DEBUG` and stdin closed.
fn command(bin: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin_path(bin));
    cmd.args(args)
        .env_remove("STKBAR_DEBUG")
        .stdin(Stdio::null());
    cmd
}

/// A pipe whose reading end is already closed: a write to the other end fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Stdio::from(writer)
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts `out` is bad input: exit code 2 and exactly one line on stderr, `bin: …` containing
/// `needle`.
fn assert_bad_input(bin: &str, out: &Output, needle: &str) {
    let err = stderr_of(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{bin}: exit code, stderr: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{bin}: one line, got: {err}");
    assert!(err.starts_with(&format!("{bin}: ")), "{bin}: prefix: {err}");
    assert!(
        !err.contains(&format!("{bin}: {bin}:")),
        "{bin}: one prefix: {err}"
    );
    assert!(err.contains(needle), "{bin}: expected {needle:?} in: {err}");
}

/// Waits for `child` at most `limit`; kills it and fails if it takes longer (the work the test
/// expects to be refused would have started).
fn wait_within(mut child: Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}: the check came after the work");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_exit_code_earned() {
    let cases: &[(&str, Vec<&str>)] = &[
        ("testbed", SMALL.to_vec()),
        ("testbed", [SMALL, &["--json"]].concat()),
        ("rescan_offsets", vec!["--quick", "--plan"]),
        ("soundness", vec!["--help"]),
    ];
    for (bin, args) in cases {
        let out = command(bin, args)
            .stdout(closed_pipe())
            .output()
            .expect("runs");
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(0), "{bin} {args:?}: {err}");
        assert!(err.is_empty(), "{bin} {args:?} said: {err}");
    }
    // An experiment's summary and plot's listing: their files are all written.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for (bin, args, file) in [
        (
            "rescan_offsets",
            vec!["--quick", "--scale", "0.01", "--quiet", "--out", d],
            "rescan_offsets.csv",
        ),
        (
            "plot",
            vec!["--results", fixtures, "--out", d],
            "figures/rescan_avoided_vs_offset.svg",
        ),
    ] {
        let out = command(bin, &args)
            .stdout(closed_pipe())
            .output()
            .expect("runs");
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(0), "{bin}: {err}");
        assert!(!err.contains("panicked"), "{bin}: {err}");
        assert!(dir.path().join(file).is_file(), "{bin} wrote {file}");
    }
    // A violation keeps its exit code when nobody reads the report.
    let violation = [
        "--workload",
        "mixed",
        "--goroutines",
        "8",
        "--depth",
        "50",
        "--cycles",
        "3",
        "--inject",
        "wb-drop=0.05",
        "--debug",
        "wbshadow=1",
    ];
    let out = command("testbed", &violation)
        .stdout(closed_pipe())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
}

#[test]
fn a_full_stdout_is_one_line_and_exit_1() {
    for (bin, args) in [
        ("testbed", SMALL.to_vec()),
        ("rescan_offsets", vec!["--quick", "--plan"]),
    ] {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = command(bin, &args).stdout(full).output().expect("runs");
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{bin}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("{bin}: cannot write to stdout: No space left on device (os error 28)"),
        );
    }
}

#[test]
fn a_closed_stderr_does_not_stop_the_run() {
    for knobs in ["gctrace=1", "allocfreetrace=1"] {
        let out = command("testbed", &[SMALL, &["--debug", knobs]].concat())
            .stderr(closed_pipe())
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(0), "{knobs}");
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(summary.contains("mark termination"), "{knobs}: {summary}");
    }
}

#[test]
fn only_regular_files_are_written_and_symlinks_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    for (flag, path, why) in [
        ("--trace", fifo, "is a FIFO, not a regular file"),
        ("--profile", d, "is a directory, not a regular file"),
        (
            "--trace",
            "/dev/null",
            "is a character device, not a regular file",
        ),
    ] {
        let out = command("testbed", &[SMALL, &[flag, path]].concat())
            .output()
            .unwrap();
        assert_bad_input("testbed", &out, why);
    }
    let out = command("paper_tables", &["--paper", fifo])
        .output()
        .unwrap();
    assert_bad_input("paper_tables", &out, "is a FIFO, not a regular file");
    // A symlink: its target is replaced, the link stays a link.
    let target = dir.path().join("trace.json");
    fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("trace.json", &link).unwrap();
    let out = command(
        "testbed",
        &[SMALL, &["--trace", link.to_str().unwrap()]].concat(),
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let trace = fs::read_to_string(&target).unwrap();
    assert!(
        trace.starts_with("{\"traceEvents\""),
        "the trace went to the target"
    );
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        3,
        "fifo, link, target: no temporary file left"
    );
}

#[test]
fn every_output_is_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let under_file = file.join("sub");
    let file = file.to_str().unwrap();
    let under_file = under_file.to_str().unwrap();
    // The full sweep at a thousand seeds would run for hours: the refusal must come first.
    for (bin, out_dir, why) in [
        ("rescan_offsets", file, "is a regular file, not a directory"),
        (
            "soundness",
            under_file,
            "a-file is a regular file, not a directory",
        ),
        (
            "wbshadow_faults",
            file,
            "is a regular file, not a directory",
        ),
    ] {
        let err_file = dir.path().join(format!("{bin}.stderr"));
        let child = command(bin, &["--full", "--seeds", "1000", "--out", out_dir])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err_file).unwrap())
            .spawn()
            .unwrap();
        let status = wait_within(child, Duration::from_secs(60), bin);
        let err = fs::read_to_string(&err_file).unwrap();
        assert_eq!(status.code(), Some(2), "{bin}: {err}");
        assert!(err.contains(why), "{bin}: {err}");
    }
    for (bin, args, why) in [
        (
            "merge",
            vec!["--out", file, "."],
            "is a regular file, not a directory",
        ),
        (
            "plot",
            vec!["--results", ".", "--out", under_file],
            "a-file is a regular file, not a directory",
        ),
    ] {
        let out = command(bin, &args).output().unwrap();
        assert_bad_input(bin, &out, why);
    }
    let out = command("testbed", &[SMALL, &["--profile", under_file]].concat())
        .output()
        .unwrap();
    assert_bad_input("testbed", &out, "Not a directory");
    // A directory that takes no file (as root every directory takes one: then there is no case).
    let read_only = dir.path().join("read-only");
    fs::create_dir(&read_only).unwrap();
    let mut perms = fs::metadata(&read_only).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    fs::set_permissions(&read_only, perms).unwrap();
    if fs::write(read_only.join("probe"), "").is_err() {
        let out = command(
            "rescan_offsets",
            &["--full", "--out", read_only.to_str().unwrap()],
        )
        .output()
        .unwrap();
        assert_bad_input("rescan_offsets", &out, "cannot create a file in");
    }
}

#[test]
fn bounds_refuse_with_their_reason() {
    let too_many_jobs = (experiments::limits::max_jobs() + 1).to_string();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "rescan_offsets",
            &["--seeds", "1000000"],
            "--seeds 1000000 must lie between 1 and 1000",
        ),
        (
            "sanitizer_leak",
            &["--seeds", "1001"],
            "--seeds 1001 must lie between 1 and 1000",
        ),
        (
            "trace_overhead",
            &["--reps", "4294967295"],
            "--reps 4294967295 must lie between 1 and 1000",
        ),
        ("rescan_offsets", &["--jobs", &too_many_jobs], "per CPU"),
        (
            "goroutine_sweep",
            &["--quick", "--scale", "100"],
            "--scale 100 must lie in (0, 5]",
        ),
        (
            "depth_sweep",
            &["--scale", "0"],
            "--scale 0 must lie in (0, 5]",
        ),
        (
            "barrier_designs",
            &["--scale", "1e300"],
            "--scale 1e300 must",
        ),
        (
            "scan_stall",
            &["--heap-minimum", "18446744073709551615"],
            "half of a run's 1 GiB heap limit",
        ),
    ];
    for (bin, args, needle) in cases {
        let out = command(bin, args).output().unwrap();
        assert_bad_input(bin, &out, needle);
    }
    // --procs is 1–256 on every experiment binary, whether its runs use it or not.
    for bin in EXPERIMENTS {
        for procs in ["0", "257"] {
            let out = command(bin, &["--quick", "--procs", procs, "--plan"])
                .output()
                .unwrap();
            assert_bad_input(
                bin,
                &out,
                &format!("--procs {procs} must lie between 1 and 256"),
            );
        }
    }
    // So are the flags that choose what a suite runs.
    let shared: &[(&[&str], &str)] = &[
        (
            &["--workloads", "nope"],
            "--workloads: unknown workload \"nope\"",
        ),
        (
            &["--offsets", "0"],
            "--offsets: \"0\" is not a first offset",
        ),
        (&["--gogc", "0"], "--gogc 0 must be a positive percentage"),
        (&["--gc-share", "1"], "--gc-share 1 must lie in [0.001, 1)"),
        (
            &["--seeds", "600", "--sched-seeds", "2"],
            "--seeds × --sched-seeds 1200 must lie between 1 and 1000",
        ),
    ];
    for bin in EXPERIMENTS {
        for (args, needle) in shared {
            let out = command(bin, &[&["--quick", "--plan"], *args].concat())
                .output()
                .unwrap();
            assert_bad_input(bin, &out, needle);
        }
    }
    // A workload an experiment does not run, and offsets for one that compares none.
    for (bin, args, needle) in [
        (
            "depth_sweep",
            ["--workloads", "mixed"],
            "keeps none of depth_sweep's workloads (deep-oscillate)",
        ),
        (
            "sanitizer_leak",
            ["--offsets", "512"],
            "sanitizer_leak runs one stack-barrier setting",
        ),
        (
            "trace_overhead",
            ["--offsets", "512"],
            "trace_overhead runs one stack-barrier setting",
        ),
    ] {
        let out = command(bin, &[&["--quick", "--plan"], &args[..]].concat())
            .output()
            .unwrap();
        assert_bad_input(bin, &out, needle);
    }
    let testbed_cases: &[(&[&str], &str)] = &[
        (
            &["--gc-share", "1e-300"],
            "--gc-share 1e-300 must lie in [0.001, 1)",
        ),
        (
            &["--procs", "257"],
            "--procs 257 must lie between 1 and 256 (Go's most Ps)",
        ),
        (
            &["--heap-minimum", "18446744073709551615"],
            "half of a run's 1 GiB heap limit",
        ),
        (
            &["--engine", "threaded", "--time-limit", "1e300"],
            "--time-limit 1e300 must be a number of seconds",
        ),
        // A million goroutines, each with a 32 MiB stack: no machine holds that.
        (
            &[
                "--workload",
                "many-shallow",
                "--goroutines",
                "1000000",
                "--depth",
                "200000",
            ],
            "(an upper estimate), over this machine's",
        ),
    ];
    for (args, needle) in testbed_cases {
        let base = if args.contains(&"--workload") {
            &[][..]
        } else {
            SMALL
        };
        let out = command("testbed", &[base, args].concat()).output().unwrap();
        assert_bad_input("testbed", &out, needle);
    }
}

#[test]
fn the_scale_range_fits_24_gib() {
    // The documented --scale range (experiments::limits::MAX_SCALE) holds on a 24 GiB machine:
    // at the largest scale, every experiment's --full sweep, two jobs at once, fits by the
    // estimate that refuses what does not.
    use clap::Parser;
    use experiments::testbed::{TestbedArgs, estimate_peak_bytes, resolve};
    let scale = experiments::limits::MAX_SCALE.to_string();
    let repo = env!("CARGO_MANIFEST_DIR").trim_end_matches("/experiments");
    for bin in EXPERIMENTS {
        let out = command(
            bin,
            &["--full", "--seeds", "1", "--scale", &scale, "--plan"],
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{bin}: {}", stderr_of(&out));
        let mut det = Vec::new();
        let mut alone = 0u64;
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let command = v["command"].as_str().unwrap();
            let Some(testbed) = command.strip_prefix("testbed ") else {
                continue; // the write-barrier probe: no testbed run
            };
            let testbed = testbed.split(" &&").next().unwrap();
            let testbed = testbed.split("  #").next().unwrap();
            // Commands name the shipped traces from the repository root.
            let testbed =
                testbed.replace(" experiments/data/", &format!(" {repo}/experiments/data/"));
            // A pasted `''` is an empty argument.
            let argv = std::iter::once("testbed")
                .chain(testbed.split(' ').map(|a| if a == "''" { "" } else { a }));
            let args = TestbedArgs::try_parse_from(argv).unwrap();
            let r = resolve(&args).unwrap_or_else(|e| panic!("{bin}: {e}: {testbed}"));
            let bytes = estimate_peak_bytes(&r);
            if v["engine"] == "threaded" {
                alone = alone.max(bytes);
            } else {
                det.push(bytes);
            }
        }
        det.sort_unstable_by(|a, b| b.cmp(a));
        let two: u64 = det.iter().take(2).sum();
        let peak = two.max(alone);
        assert!(
            peak <= 24 << 30,
            "{bin} --full --scale {scale}: {} GiB",
            peak >> 30
        );
    }
}

#[test]
fn knob_strings_that_are_not_utf8_are_bad_input() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"gctrace=\xff");
    let out = command("testbed", SMALL)
        .env("STKBAR_DEBUG", bad)
        .output()
        .unwrap();
    assert_bad_input("testbed", &out, "STKBAR_DEBUG is not UTF-8");
    let out = command("testbed", SMALL)
        .arg("--debug")
        .arg(bad)
        .output()
        .unwrap();
    assert_bad_input("testbed", &out, "UTF-8");
}

#[test]
fn paper_tables_refuses_a_paper_without_its_markers() {
    let dir = tempfile::tempdir().unwrap();
    let paper = dir.path().join("paper.md");
    fs::write(&paper, "# A paper\n\nNo generated tables here.\n").unwrap();
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    let out = command(
        "paper_tables",
        &[
            "--results",
            results.to_str().unwrap(),
            "--paper",
            paper.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_bad_input(
        "paper_tables",
        &out,
        "has no <!-- generated:NAME --> marker",
    );
    assert_eq!(
        fs::read_to_string(&paper).unwrap(),
        "# A paper\n\nNo generated tables here.\n",
        "the paper is left as it was"
    );
}

#[test]
fn ctrl_c_leaves_no_temporary_file() {
    // A run that keeps its trace in a temporary file beside the destination until it ends.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let mut child = command(
        "testbed",
        &[
            "--workload",
            "switch-heavy",
            "--goroutines",
            "16",
            "--depth",
            "20",
            "--cycles",
            "100000",
            "--trace",
            trace.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let temporary = |d: &Path| {
        fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(".stkbar-"))
    };
    let start = Instant::now();
    while !temporary(dir.path()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before its trace"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_within(child, Duration::from_secs(30), "testbed after SIGINT");
    assert_eq!(status.code(), Some(130), "interrupted");
    assert!(!temporary(dir.path()), "the temporary trace is removed");
    assert!(!trace.exists(), "nothing half-written at the destination");
}

#[test]
fn help_and_defaults_tell_the_truth() {
    let help = |bin: &str| {
        let out = command(bin, &["--help"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let rescan = help("rescan_offsets");
    assert!(
        !rescan.contains(env!("CARGO_MANIFEST_DIR")),
        "no path fixed at build time in the help"
    );
    let procs_line = |h: &str| {
        h.lines()
            .find(|l| l.contains("--procs <PROCS>"))
            .unwrap()
            .to_owned()
    };
    assert!(procs_line(&help("profiler_switch")).contains("[default: 2]"));
    assert!(procs_line(&help("soundness")).contains("[default: 2]"));
    assert!(help("trace_overhead").contains("unused: the runs go one at a time"));
    // --scale shrinks the heap minimum with the sweep, so a smoke test is small.
    let out = command("rescan_offsets", &["--quick", "--scale", "0.01", "--plan"])
        .output()
        .unwrap();
    let plan = String::from_utf8(out.stdout).unwrap();
    assert!(
        plan.lines().all(|l| l.contains("--heap-minimum 65536")),
        "every run's heap minimum scaled (to the 64 KiB floor)"
    );
}

#[test]
fn a_trace_too_deep_for_any_stack_is_blamed_on_the_trace() {
    // 1100 nested calls of a 1 MiB frame: past a 1 GiB stack at any --depth.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("deep.trace");
    let mut text = String::from("stkbar-replay 1\nfunc main 1048576\n");
    text.push_str(&"call main\n".repeat(1100));
    text.push_str(&"ret\n".repeat(1100));
    fs::write(&trace, text).unwrap();
    let out = command(
        "testbed",
        &[
            "--workload",
            "replay",
            "--replay",
            trace.to_str().unwrap(),
            "--depth",
            "10",
            "--goroutines",
            "1",
        ],
    )
    .output()
    .unwrap();
    assert_bad_input(
        "testbed",
        &out,
        "(1110 frames at --depth 10: a replayed trace adds its own) of frames up to 1048576 bytes",
    );
}
