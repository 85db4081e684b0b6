//! The `plot` binary and `experiments::plot` end to end on the fixture CSVs in `tests/fixtures/`:
//! every figure is written as a PNG that decodes and an SVG that carries its axis labels; bad
//! input exits 2 with one stderr line naming the file (and the line) and writes no figure; a CSV
//! that does not exist only skips its figures.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use experiments::plot::{self, Event, PlotArgs, PlotError};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Every figure the fixtures produce, with axis-label text its SVG must contain.
const EXPECTED: &[(&str, &[&str])] = &[
    ("rescan_avoided_vs_offset", &["stack re-scan avoided (%)"]),
    (
        "offset_tradeoff",
        &[
            "(b) barriers installed + hit per cycle",
            "stack re-scan left",
        ],
    ),
    ("rescan_vs_depth", &["stack depth (frames)"]),
    ("pause_vs_depth", &["mark-termination pause, p50 (µs)"]),
    ("pause_vs_goroutines", &["goroutines"]),
    (
        "mmu",
        &[
            "window (ms)",
            "deep-oscillate",
            "mixed",
            "replay:web-handler",
            "dashed: the pauses alone",
        ],
    ),
    (
        "scan_stall",
        &[
            "(a) scan stall max (µs)",
            "(b) scan stall p99 or max (µs)",
            "goroutines, depth 500",
            "(c) mark phase/cycle (ms)",
            "(d) mutator ops/s ÷ hybrid",
            "hybrid-lazy",
            "max (here: 32 of 48 runs)",
        ],
    ),
    (
        "sanitizer_leak",
        &[
            "step (GC cycle)",
            "sanitizer metadata (MiB)",
            "live objects",
        ],
    ),
    (
        "wbshadow_detection_vs_drop",
        &[
            "write barriers dropped (fraction of heap stores)",
            "detected (% of runs with a dropped barrier)",
        ],
    ),
    (
        "wbshadow_delay_vs_drop",
        &[
            "write barriers dropped (fraction of heap stores)",
            "stores to report (p50, bar to max)",
        ],
    ),
    (
        "profiler_switch",
        &[
            "go1.7 det, samples (%)",
            "seed003 thr, samples (%)",
            "malformed per 10⁶ samples",
            "switch-heavy",
        ],
    ),
];

/// A scratch results directory holding copies of the fixtures, less `leave_out`.
fn results_copy(leave_out: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in fs::read_dir(FIXTURES).expect("fixtures") {
        let entry = entry.expect("fixture entry");
        let name = entry.file_name();
        if leave_out.iter().any(|l| name == *l) {
            continue;
        }
        fs::copy(entry.path(), dir.path().join(&name)).expect("copy fixture");
    }
    dir
}

fn plot_bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plot"))
        .args(args)
        .output()
        .expect("plot runs")
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The PNG at `path` decodes, has the size of a figure, and is not one flat colour.
fn assert_real_png(path: &Path) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} lacks the PNG signature",
        path.display()
    );
    assert!(
        bytes.len() > 20_000,
        "{} is suspiciously small",
        path.display()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("PNG header decodes");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG image decodes");
    assert!(info.width >= 1000, "{}", path.display());
    assert!(info.height >= 600, "{}", path.display());
    let pixels = &buf[..info.buffer_size()];
    let white = pixels.iter().filter(|&&b| b == 255).count();
    assert!(
        white < pixels.len() && white > pixels.len() / 2,
        "{} should be mostly white background with a drawing on it",
        path.display()
    );
}

fn assert_figures(dir: &Path, expected: &[(&str, &[&str])]) {
    for (name, axis_texts) in expected {
        assert_real_png(&dir.join(format!("figures/{name}.png")));
        let svg = fs::read_to_string(dir.join(format!("figures/{name}.svg")))
            .unwrap_or_else(|e| panic!("{name}.svg: {e}"));
        assert!(svg.contains("<svg"), "{name}.svg is not an SVG");
        assert!(svg.contains("font-family"), "{name}.svg has no text");
        for axis_text in *axis_texts {
            assert!(
                svg.contains(axis_text),
                "{name}.svg lacks its axis label `{axis_text}`"
            );
        }
    }
}

fn figure_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir.join("figures")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_library_writes_every_figure_from_the_fixtures() {
    let out = tempfile::tempdir().expect("temp dir");
    let mut events = Vec::new();
    plot::plot_all(Path::new(FIXTURES), out.path(), &mut |e| {
        events.push(e.clone())
    })
    .expect("the fixtures plot");
    let written: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Written { figure, .. } => figure.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(n, _)| *n).collect();
    assert_eq!(written, expected);
    assert_figures(out.path(), EXPECTED);
    // Nothing else: no temporary files left behind.
    assert_eq!(figure_files(out.path()).len(), 2 * EXPECTED.len());
}

#[test]
fn pause_figures_take_pooled_medians_and_intervals_when_the_sweep_wrote_them() {
    let results = results_copy(&[]);
    let out = tempfile::tempdir().expect("temp dir");
    let plot = |results: &Path| {
        plot::plot_all(results, out.path(), &mut |_| ()).expect("plots");
        fs::read_to_string(out.path().join("figures/pause_vs_depth.svg")).unwrap()
    };
    // The fixtures' depth sweep alone: seeds' means with each seed drawn, and the 50 µs line.
    let before = plot(results.path());
    assert!(
        before.contains("circles: each seed"),
        "the caption says what the circles are"
    );
    assert!(before.contains("50 µs"));
    // A pooled file for the same sweep: its medians and intervals, and a caption saying so.
    fs::write(
        results.path().join("depth_sweep_pauses.csv"),
        "workload,replay,goroutines,depth,design,barrier_removal,procs,samples,mark_term_ns_p50,mark_term_ns_p50_lo,mark_term_ns_p50_hi\n\
         deep-oscillate,,16,10,hybrid,after-restart,2,201,31000,29000,35000\n\
         deep-oscillate,,16,100,hybrid,after-restart,2,201,33000,30000,36000\n",
    )
    .unwrap();
    let after = plot(results.path());
    assert!(
        after.contains("median of 201 cycles"),
        "the caption names the samples"
    );
    assert!(after.contains("bootstrap interval"));
    assert!(!after.contains("min–max over seeds"));
    assert!(after.contains("hybrid"));
}

#[test]
fn out_defaults_to_the_results_directory() {
    let results = results_copy(&[]);
    let args = PlotArgs {
        results: results.path().to_owned(),
        out: None,
        quiet: true,
    };
    plot::run(&args, &mut |_| {}).expect("the fixtures plot");
    assert_figures(results.path(), &EXPECTED[..1]);
}

#[test]
fn the_binary_prints_one_line_per_figure_and_exits_0() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = plot_bin(&["--results", FIXTURES, "--out", path_arg(out.path())]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stderr_lines(&run).is_empty(), "{:?}", stderr_lines(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(stdout.lines().count(), EXPECTED.len(), "{stdout}");
    for (name, _) in EXPECTED {
        assert!(stdout.contains(&format!("{name}.png")), "{stdout}");
    }
    assert_figures(out.path(), EXPECTED);

    let quiet = plot_bin(&[
        "--results",
        FIXTURES,
        "--out",
        path_arg(out.path()),
        "--quiet",
    ]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
}

/// Runs the binary on a copy of the fixtures with `csv` rewritten by `edit`; expects exit 2, one
/// stderr line, and no figure written.
fn expect_bad_input(csv: &str, edit: impl Fn(&str) -> String) -> String {
    let results = results_copy(&[]);
    let path = results.path().join(csv);
    let text = fs::read_to_string(&path).expect("fixture");
    fs::write(&path, edit(&text)).expect("write edited fixture");
    let out = tempfile::tempdir().expect("temp dir");
    let run = plot_bin(&[
        "--results",
        path_arg(results.path()),
        "--out",
        path_arg(out.path()),
    ]);
    let lines = stderr_lines(&run);
    assert_eq!(run.status.code(), Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("plot: "), "{lines:?}");
    assert!(lines[0].contains(csv), "{lines:?} should name {csv}");
    assert!(!lines[0].contains("panicked"), "{lines:?}");
    assert!(
        figure_files(out.path()).is_empty(),
        "bad input wrote figures"
    );
    lines[0].clone()
}

/// `text` with the column `name` removed from every row.
fn drop_column(text: &str, name: &str) -> String {
    let header: Vec<&str> = text.lines().next().expect("header").split(',').collect();
    let i = header.iter().position(|h| *h == name).expect("column");
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(i);
            cells.join(",") + "\n"
        })
        .collect()
}

/// `text` with the cell in column `name` on 1-based line `line` replaced by `value`.
fn set_cell(text: &str, line: usize, name: &str, value: &str) -> String {
    let header: Vec<&str> = text.lines().next().expect("header").split(',').collect();
    let i = header.iter().position(|h| *h == name).expect("column");
    text.lines()
        .enumerate()
        .map(|(n, l)| {
            let mut cells: Vec<&str> = l.split(',').collect();
            if n + 1 == line {
                cells[i] = value;
            }
            cells.join(",") + "\n"
        })
        .collect()
}

#[test]
fn a_missing_column_exits_2_naming_the_file_and_column() {
    let line = expect_bad_input("depth_sweep.csv", |t| drop_column(t, "oracle_rescan_bytes"));
    assert!(line.contains("oracle_rescan_bytes"), "{line}");
}

#[test]
fn a_non_numeric_value_exits_2_naming_the_file_and_line() {
    let line = expect_bad_input("goroutine_sweep.csv", |t| {
        set_cell(t, 5, "mark_term_ns_p50", "fast")
    });
    assert!(line.contains("goroutine_sweep.csv:5"), "{line}");
    assert!(
        line.contains("mark_term_ns_p50") && line.contains("fast"),
        "{line}"
    );

    let line = expect_bad_input("barrier_designs_mmu.csv", |t| set_cell(t, 3, "mmu", "n/a"));
    assert!(line.contains("barrier_designs_mmu.csv:3"), "{line}");

    let line = expect_bad_input("scan_stall.csv", |t| {
        set_cell(t, 4, "scan_stall_ns_p99", "slow")
    });
    assert!(line.contains("scan_stall.csv:4"), "{line}");
    assert!(line.contains("scan_stall_ns_p99"), "{line}");
}

#[test]
fn a_malformed_debug_mode_csv_exits_2_naming_the_file_column_and_line() {
    let line = expect_bad_input("sanitizer_leak.csv", |t| drop_column(t, "sanitizer_bytes"));
    assert!(line.contains("missing column `sanitizer_bytes`"), "{line}");
    let line = expect_bad_input("sanitizer_leak.csv", |t| {
        set_cell(t, 7, "live_objects", "12k")
    });
    assert!(line.contains("sanitizer_leak.csv:7"), "{line}");
    assert!(
        line.contains("live_objects") && line.contains("12k"),
        "{line}"
    );

    let line = expect_bad_input("wbshadow_faults.csv", |t| {
        drop_column(t, "delay_stores_p50")
    });
    assert!(line.contains("missing column `delay_stores_p50`"), "{line}");
    let line = expect_bad_input("wbshadow_faults.csv", |t| {
        set_cell(t, 4, "drop_fraction", "0.0o1")
    });
    assert!(line.contains("wbshadow_faults.csv:4"), "{line}");
    assert!(
        line.contains("drop_fraction") && line.contains("0.0o1"),
        "{line}"
    );

    let line = expect_bad_input("profiler_switch.csv", |t| drop_column(t, "refused_sets_sp"));
    assert!(line.contains("missing column `refused_sets_sp`"), "{line}");
    let line = expect_bad_input("profiler_switch.csv", |t| {
        set_cell(t, 3, "malformed", "none")
    });
    assert!(line.contains("profiler_switch.csv:3"), "{line}");
    assert!(
        line.contains("malformed") && line.contains("none"),
        "{line}"
    );
}

#[test]
fn a_missing_debug_mode_csv_skips_only_its_figures() {
    for (csv, skipped) in [
        ("sanitizer_leak.csv", &["sanitizer_leak"][..]),
        (
            "wbshadow_faults.csv",
            &["wbshadow_detection_vs_drop", "wbshadow_delay_vs_drop"][..],
        ),
        ("profiler_switch.csv", &["profiler_switch"][..]),
    ] {
        let results = results_copy(&[csv]);
        let out = tempfile::tempdir().expect("temp dir");
        let mut events = Vec::new();
        plot::plot_all(results.path(), out.path(), &mut |e| events.push(e.clone()))
            .expect("the other fixtures plot");
        let skips: Vec<&Event> = events.iter().filter(|e| e.is_skip()).collect();
        assert_eq!(
            skips,
            [&Event::MissingInput {
                csv: results.path().join(csv),
                figures: skipped.iter().map(|f| (*f).to_owned()).collect(),
            }]
        );
        let rest: Vec<(&str, &[&str])> = EXPECTED
            .iter()
            .copied()
            .filter(|(n, _)| !skipped.contains(n))
            .collect();
        assert_figures(out.path(), &rest);
        assert_eq!(figure_files(out.path()).len(), 2 * rest.len());
    }
}

#[test]
fn a_short_row_or_zero_cycles_exits_2_naming_the_line() {
    let line = expect_bad_input("rescan_offsets.csv", |t| {
        let mut lines: Vec<&str> = t.lines().collect();
        lines[3] = "mixed,,stkbar-all";
        lines.join("\n") + "\n"
    });
    assert!(line.contains("rescan_offsets.csv:4"), "{line}");

    let line = expect_bad_input("rescan_offsets.csv", |t| set_cell(t, 2, "cycles", "0"));
    assert!(line.contains("rescan_offsets.csv:2"), "{line}");
}

#[test]
fn a_missing_csv_skips_its_figures_and_exits_0() {
    let results = results_copy(&["depth_sweep.csv"]);
    let out = tempfile::tempdir().expect("temp dir");
    let run = plot_bin(&[
        "--results",
        path_arg(results.path()),
        "--out",
        path_arg(out.path()),
    ]);
    let lines = stderr_lines(&run);
    assert_eq!(run.status.code(), Some(0), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("plot: ") && lines[0].contains("depth_sweep.csv"));
    assert!(lines[0].contains("rescan_vs_depth") && lines[0].contains("pause_vs_depth"));
    let rest: Vec<(&str, &[&str])> = EXPECTED
        .iter()
        .copied()
        .filter(|(n, _)| !n.ends_with("_vs_depth"))
        .collect();
    assert_figures(out.path(), &rest);
    assert_eq!(figure_files(out.path()).len(), 2 * rest.len());

    let quiet = plot_bin(&[
        "--results",
        path_arg(results.path()),
        "--out",
        path_arg(out.path()),
        "--quiet",
    ]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(
        quiet.stderr.is_empty(),
        "--quiet still said {:?}",
        stderr_lines(&quiet)
    );
}

#[test]
fn no_csv_at_all_still_exits_0() {
    let empty = tempfile::tempdir().expect("temp dir");
    let run = plot_bin(&["--results", path_arg(empty.path())]);
    assert_eq!(run.status.code(), Some(0));
    assert_eq!(stderr_lines(&run).len(), 8, "one line per missing CSV");
}

#[test]
fn bad_flags_and_a_missing_results_dir_exit_2_with_one_line() {
    let run = plot_bin(&["--bogus"]);
    let lines = stderr_lines(&run);
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("plot: ") && lines[0].contains("--bogus"));

    let nowhere = PathBuf::from(FIXTURES).join("no-such-dir");
    let run = plot_bin(&["--results", path_arg(&nowhere)]);
    let lines = stderr_lines(&run);
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("no-such-dir"));
    assert!(matches!(
        plot::plot_all(&nowhere, &nowhere, &mut |_| {}),
        Err(e @ PlotError::NoResultsDir(_)) if e.is_bad_input()
    ));
}

#[test]
fn help_has_an_example() {
    let run = plot_bin(&["--help"]);
    assert_eq!(run.status.code(), Some(0));
    let help = String::from_utf8_lossy(&run.stdout);
    assert!(
        help.contains("Example:") && help.contains("plot --results"),
        "{help}"
    );
    for flag in ["--results", "--out", "--quiet"] {
        assert!(help.contains(flag), "{help}");
    }
}
