//! Chrome trace-event export (seed 001's "export as Chrome trace-event JSON"): a
//! [`gc::TraceSink`] that streams the runtime's trace buffers into a file Perfetto
//! (<https://ui.perfetto.dev>) and `chrome://tracing` open.
//!
//! Invariant: the destination file is either absent (or its previous contents, untouched) or a
//! complete, valid trace. Events stream into a temporary file created in the destination's
//! directory; only [`ChromeTraceWriter::finish`] — after the last buffer is read, the metadata
//! written and the file synced — renames it over the destination, in one step. A run that fails,
//! panics or is dropped before `finish` drops the temporary file with it, so no half-written
//! trace ever appears under the destination's name.
//!
//! Algorithm. The file is the "JSON Object Format": `{"traceEvents":[…], "displayTimeUnit":"ns",
//! "otherData":{…}}`. [`ChromeTraceWriter::create`] writes the opening of the object; each
//! buffer the runtime's reader hands to [`TraceSink::write`] is copied to an encoder thread,
//! which appends one JSON object per event, serialized by serde_json through a buffered writer
//! (no hand-rolled escaping, no per-event allocation); `finish` waits for the encoder, appends
//! the metadata events and closes the object. The mapping from [`TraceEvent`]:
//!
//! * slices ([`TraceEv::is_slice`]) become complete events, `"ph":"X"`, with `ts` and `dur` in
//!   microseconds (the format's unit; fractions keep the nanoseconds); instants become
//!   `"ph":"i"` with thread scope, `"s":"t"`;
//! * `name` is [`TraceEv::name`], except that a GC phase is named after the phase (`mark`,
//!   `sweep`), a pause after what it terminates (`STW sweep termination`, `STW mark
//!   termination`) and a goroutine's run slice after the goroutine (`G12`);
//! * `cat` groups events: `gc` (phases, pauses, mark workers, sweep), `stack` (scans, re-scans,
//!   copystack), `stkbar` (barrier install, hit, remove, unwind), `sched` (goroutines);
//! * `args` holds the event's arguments under [`TraceEv::arg_names`] (unused ones left out);
//! * everything is process 1; the thread is the event's [`Track`]: the GC track is `tid` 0, P
//!   `i` is `1 + i` and mark worker `i` is `1001 + i` ([`tid`]) — with one exception: GC phase
//!   slices get a thread of their own, `GC phases` (`tid` 1000, [`GC_PHASES_TID`]).
//!
//! Why phases have their own thread. The format requires the complete events of one thread to
//! nest (Perfetto drops a slice that overlaps its predecessor without nesting in it). The runtime
//! stamps the phases at the pauses' edges, so they never overlap, but a lane of its own keeps the
//! cycle readable at a glance: `GC phases` shows mark, sweep, mark, … and `GC` shows the pauses
//! with the re-scans and barrier removals nested in mark termination.
//!
//! Metadata (`"ph":"M"`): the process is named `stkbar`; every thread that carried an event gets
//! a `thread_name` (`GC phases`, `GC`, `P0`, `mark worker 0`, …) and a `thread_sort_index` (its
//! `tid`; −1 for `GC phases`), so viewers that honour it list the GC threads first, then the Ps,
//! then the mark workers. Ps are at most 256, so the ranges never meet.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use gc::trace::{
    PHASE_MARK, PHASE_SWEEP, STW_MARK_TERMINATION, STW_SWEEP_TERMINATION, TraceEv, Track,
};
use gc::{TraceEvent, TraceSink};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::cli;

/// The `pid` of every event.
pub const PID: u32 = 1;

/// The first `tid` of the mark-worker tracks (P tracks lie below [`GC_PHASES_TID`]).
pub const WORKER_TID_BASE: u32 = 1001;

/// The `tid` of the GC phase slices (see the module comment).
pub const GC_PHASES_TID: u32 = 1000;

/// The thread a track is drawn on: GC 0, `P(i)` `1 + i`, `Worker(i)` `1001 + i`.
pub fn tid(track: Track) -> u32 {
    match track {
        Track::Gc => 0,
        Track::P(i) => 1 + u32::from(i),
        Track::Worker(i) => WORKER_TID_BASE + u32::from(i),
    }
}

/// The thread an event is drawn on: its track's, except GC phases ([`GC_PHASES_TID`]).
pub fn event_tid(e: &TraceEvent) -> u32 {
    if e.ev == TraceEv::GcPhase {
        GC_PHASES_TID
    } else {
        tid(e.track)
    }
}

/// A thread's name in the viewer: `GC`, `GC phases`, `P3`, `mark worker 0`.
pub fn thread_name(tid: u32) -> String {
    match tid {
        0 => "GC".to_owned(),
        GC_PHASES_TID => "GC phases".to_owned(),
        t if t >= WORKER_TID_BASE => format!("mark worker {}", t - WORKER_TID_BASE),
        t => format!("P{}", t - 1),
    }
}

/// A thread's place in the viewer's list: its `tid`, and `GC phases` before everything.
pub fn thread_sort_index(tid: u32) -> i64 {
    if tid == GC_PHASES_TID {
        -1
    } else {
        i64::from(tid)
    }
}

/// An event's category.
pub fn category(ev: TraceEv) -> &'static str {
    match ev {
        TraceEv::GcPhase | TraceEv::Stw | TraceEv::MarkWorker | TraceEv::Sweep => "gc",
        TraceEv::StackScan | TraceEv::Rescan | TraceEv::CopyStack => "stack",
        TraceEv::BarrierInstall
        | TraceEv::BarrierHit
        | TraceEv::BarrierRemove
        | TraceEv::BarrierUnwind => "stkbar",
        TraceEv::GoRun | TraceEv::GoCreate => "sched",
    }
}

/// An event's name: see the module comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventName {
    /// A fixed name.
    Static(&'static str),
    /// A goroutine's run slice: `G<goid>`.
    Goroutine(u64),
}

impl EventName {
    /// The name of `e`.
    pub fn of(e: &TraceEvent) -> EventName {
        match (e.ev, e.args[0]) {
            (TraceEv::GcPhase, PHASE_MARK) => EventName::Static("mark"),
            (TraceEv::GcPhase, PHASE_SWEEP) => EventName::Static("sweep"),
            (TraceEv::Stw, STW_SWEEP_TERMINATION) => EventName::Static("STW sweep termination"),
            (TraceEv::Stw, STW_MARK_TERMINATION) => EventName::Static("STW mark termination"),
            (TraceEv::GoRun, goid) => EventName::Goroutine(goid),
            (ev, _) => EventName::Static(ev.name()),
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventName::Static(s) => f.write_str(s),
            EventName::Goroutine(goid) => write!(f, "G{goid}"),
        }
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EventName::Static(name) => s.serialize_str(name),
            EventName::Goroutine(_) => s.collect_str(self),
        }
    }
}

/// An event's arguments as a JSON object, the unused ones left out.
struct Args([&'static str; 2], [u64; 2]);

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let used = self.0.iter().filter(|n| !n.is_empty()).count();
        let mut map = s.serialize_map(Some(used))?;
        for (name, value) in self.0.iter().zip(&self.1) {
            if !name.is_empty() {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// One trace event as the format spells it.
#[derive(Serialize)]
struct ChromeEvent {
    name: EventName,
    cat: &'static str,
    ph: &'static str,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    pid: u32,
    tid: u32,
    args: Args,
}

impl ChromeEvent {
    fn of(e: &TraceEvent) -> ChromeEvent {
        let us = |ns: u64| ns as f64 / 1000.0;
        let slice = e.ev.is_slice();
        ChromeEvent {
            name: EventName::of(e),
            cat: category(e.ev),
            ph: if slice { "X" } else { "i" },
            ts: us(e.ts_ns),
            dur: slice.then(|| us(u64::from(e.dur_ns))),
            s: (!slice).then_some("t"),
            pid: PID,
            tid: event_tid(e),
            args: Args(e.ev.arg_names(), e.args),
        }
    }
}

/// A metadata event (`"ph":"M"`).
#[derive(Serialize)]
struct Metadata<A: Serialize> {
    name: &'static str,
    ph: &'static str,
    pid: u32,
    tid: u32,
    args: A,
}

#[derive(Serialize)]
struct NameArg {
    name: String,
}

#[derive(Serialize)]
struct SortIndexArg {
    sort_index: i64,
}

/// The JSON encoder: owns the temporary file and what the metadata needs.
struct Encoder {
    out: BufWriter<cli::TempFile>,
    /// The `tid` of every thread that carried an event.
    threads: BTreeSet<u32>,
    events: u64,
}

/// The temporary file's buffer: as large as one trace buffer, so a buffer's events cost a
/// handful of `write` calls.
const BUF_BYTES: usize = 64 << 10;

impl Encoder {
    fn new(tmp: cli::TempFile) -> io::Result<Encoder> {
        let mut out = BufWriter::with_capacity(BUF_BYTES, tmp);
        out.write_all(b"{\"traceEvents\":[")?;
        Ok(Encoder {
            out,
            threads: BTreeSet::new(),
            events: 0,
        })
    }

    /// Writes one JSON element of the `traceEvents` array, after a separator unless it is the
    /// first.
    fn element(&mut self, v: &impl Serialize, first: bool) -> io::Result<()> {
        self.out.write_all(if first { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut self.out, v).map_err(io::Error::other)
    }

    fn events(&mut self, events: &[TraceEvent]) -> io::Result<()> {
        for e in events {
            let first = self.events == 0;
            self.element(&ChromeEvent::of(e), first)?;
            self.threads.insert(event_tid(e));
            self.events += 1;
        }
        Ok(())
    }

    /// The metadata events, the end of the object, and the rename over `dest`.
    fn finish(mut self, other_data: &serde_json::Value, dest: &Path) -> io::Result<()> {
        let first = self.events == 0;
        self.element(
            &Metadata {
                name: "process_name",
                ph: "M",
                pid: PID,
                tid: 0,
                args: NameArg {
                    name: "stkbar".to_owned(),
                },
            },
            first,
        )?;
        for tid in std::mem::take(&mut self.threads) {
            self.element(
                &Metadata {
                    name: "thread_name",
                    ph: "M",
                    pid: PID,
                    tid,
                    args: NameArg {
                        name: thread_name(tid),
                    },
                },
                false,
            )?;
            self.element(
                &Metadata {
                    name: "thread_sort_index",
                    ph: "M",
                    pid: PID,
                    tid,
                    args: SortIndexArg {
                        sort_index: thread_sort_index(tid),
                    },
                },
                false,
            )?;
        }
        self.out
            .write_all(b"\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":")?;
        serde_json::to_writer(&mut self.out, other_data).map_err(io::Error::other)?;
        self.out.write_all(b"}\n")?;
        let tmp = self.out.into_inner().map_err(|e| e.into_error())?;
        cli::persist(tmp, dest)
    }
}

/// Streams trace events into a Chrome trace-event JSON file (see the module comment).
///
/// The encoding runs on a thread of its own ("trace writer"): [`TraceSink::write`] only copies
/// the buffer's events onto a channel, as Go's `ReadTrace` hands a buffer to its caller and
/// returns. The runtime's reader runs on an engine's coordinator, between the steps that start
/// and end cycles, so encoding there would delay them by the time JSON takes; and
/// [`gc::Trace::read`] drains the full queue until it finds it empty, so a reader slower than
/// the Ps filling buffers would never return (the threaded engine's coordinator would stop
/// starting and ending cycles while idle mark workers fill ever more buffers). A write error
/// stops the thread; later writes fail, and [`ChromeTraceWriter::finish`] returns the first
/// error.
pub struct ChromeTraceWriter {
    dest: PathBuf,
    tx: Option<mpsc::Sender<Vec<TraceEvent>>>,
    encoder: Option<JoinHandle<io::Result<Encoder>>>,
    events: u64,
}

impl fmt::Debug for ChromeTraceWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChromeTraceWriter")
            .field("dest", &self.dest)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl ChromeTraceWriter {
    /// A writer whose trace will become `dest`: creates the temporary file in `dest`'s directory
    /// (which must exist), writes the opening of the JSON object and starts the encoder thread.
    /// Nothing appears at `dest` until [`ChromeTraceWriter::finish`].
    pub fn create(dest: &Path) -> io::Result<ChromeTraceWriter> {
        // A symbolic link is followed: the file it names is replaced, the link stays.
        let dest = &cli::link_target(dest)?;
        let mut encoder = Encoder::new(cli::temp_file_beside(dest)?)?;
        let (tx, rx) = mpsc::channel::<Vec<TraceEvent>>();
        let thread = std::thread::Builder::new()
            .name("trace writer".into())
            .spawn(move || {
                for events in rx {
                    encoder.events(&events)?;
                }
                Ok(encoder)
            })?;
        Ok(ChromeTraceWriter {
            dest: dest.to_owned(),
            tx: Some(tx),
            encoder: Some(thread),
            events: 0,
        })
    }

    /// Where the trace will be.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Events handed to the writer so far (metadata excluded).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Waits for the encoder to write every event handed to it, then writes the metadata
    /// events, closes the JSON object with `displayTimeUnit` and `other_data`, syncs the file
    /// and renames it over the destination.
    pub fn finish(mut self, other_data: serde_json::Value) -> io::Result<()> {
        let encoder = self.join()?;
        encoder.finish(&other_data, &self.dest)
    }

    /// Closes the channel and waits for the encoder thread.
    fn join(&mut self) -> io::Result<Encoder> {
        drop(self.tx.take());
        match self.encoder.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the trace writer thread panicked")),
            None => Err(io::Error::other("the trace writer has already finished")),
        }
    }
}

impl Drop for ChromeTraceWriter {
    /// Unfinished: the encoder stops and its temporary file is deleted before this returns.
    fn drop(&mut self) {
        if self.encoder.is_some() {
            let _ = self.join();
        }
    }
}

impl TraceSink for ChromeTraceWriter {
    fn write(&mut self, events: &[TraceEvent]) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(events.to_vec()).is_ok());
        if !sent {
            // The encoder stopped at an error; `finish` reports it.
            return Err(io::Error::other("the trace writer stopped"));
        }
        self.events += events.len() as u64;
        Ok(())
    }
}

/// A sink the caller keeps a handle on: the runtime owns the `Box<dyn TraceSink>` it is given,
/// so the writer is shared, and [`SharedSink::take`] gets it back after the run to finish it.
#[derive(Debug)]
pub struct SharedSink<S>(Arc<Mutex<Option<S>>>);

impl<S> Clone for SharedSink<S> {
    fn clone(&self) -> Self {
        SharedSink(Arc::clone(&self.0))
    }
}

impl<S> SharedSink<S> {
    /// Shares `sink`.
    pub fn new(sink: S) -> SharedSink<S> {
        SharedSink(Arc::new(Mutex::new(Some(sink))))
    }

    /// Takes the sink out; every handle then drops what it is given (with an error).
    pub fn take(&self) -> Option<S> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl<S: TraceSink> TraceSink for SharedSink<S> {
    fn write(&mut self, events: &[TraceEvent]) -> io::Result<()> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(s) => s.write(events),
            None => Err(io::Error::other("the trace sink was already taken")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gc::trace::{LEFT_YIELD, PHASE_MARK};
    use serde_json::{Value, json};
    use std::fs;

    fn event(ev: TraceEv, track: Track, ts_ns: u64, dur_ns: u32, args: [u64; 2]) -> TraceEvent {
        TraceEvent {
            ts_ns,
            dur_ns,
            ev,
            track,
            args,
        }
    }

    /// Writes `events` in two buffers, finishes, and parses the file back.
    fn export(events: &[TraceEvent]) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t.json");
        let mut w = ChromeTraceWriter::create(&dest).unwrap();
        let (a, b) = events.split_at(events.len() / 2);
        w.write(a).unwrap();
        w.write(b).unwrap();
        w.finish(json!({"config": {"workload": "mixed"}})).unwrap();
        let text = fs::read_to_string(&dest).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"))
    }

    fn by_ph<'a>(v: &'a Value, ph: &str) -> Vec<&'a Value> {
        v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == ph)
            .collect()
    }

    #[test]
    fn a_slice_is_a_complete_event_in_microseconds() {
        let v = export(&[event(
            TraceEv::StackScan,
            Track::Worker(2),
            1_234_567,
            8_901,
            [7, 4096],
        )]);
        let x = by_ph(&v, "X");
        assert_eq!(x.len(), 1, "{v}");
        assert_eq!(
            *x[0],
            json!({"name": "stack scan", "cat": "stack", "ph": "X", "ts": 1234.567,
                   "dur": 8.901, "pid": 1, "tid": 1003, "args": {"goid": 7, "bytes": 4096}})
        );
    }

    #[test]
    fn an_instant_has_thread_scope_and_only_named_args() {
        let v = export(&[
            event(TraceEv::BarrierHit, Track::P(0), 5_000, 0, [3, 2]),
            event(TraceEv::Sweep, Track::P(1), 6_000, 10, [4, 99]),
        ]);
        let i = by_ph(&v, "i");
        assert_eq!(
            *i[0],
            json!({"name": "stkbar hit", "cat": "stkbar", "ph": "i", "ts": 5.0, "s": "t",
                   "pid": 1, "tid": 1, "args": {"goid": 3, "stkbar_pos": 2}})
        );
        // Sweep's second argument has no name: it is left out.
        assert_eq!(by_ph(&v, "X")[0]["args"], json!({"spans": 4}));
    }

    #[test]
    fn phases_pauses_and_goroutines_are_named_after_what_they_are() {
        let v = export(&[
            event(TraceEv::GcPhase, Track::Gc, 0, 5, [PHASE_MARK, 1]),
            event(TraceEv::GcPhase, Track::Gc, 10, 5, [PHASE_SWEEP, 1]),
            event(TraceEv::Stw, Track::Gc, 20, 5, [STW_SWEEP_TERMINATION, 2]),
            event(TraceEv::Stw, Track::Gc, 30, 5, [STW_MARK_TERMINATION, 2]),
            event(TraceEv::GoRun, Track::P(3), 40, 5, [42, LEFT_YIELD]),
            event(TraceEv::MarkWorker, Track::Worker(0), 50, 5, [0, 0]),
        ]);
        let names: Vec<&str> = by_ph(&v, "X")
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "mark",
                "sweep",
                "STW sweep termination",
                "STW mark termination",
                "G42",
                "mark worker"
            ]
        );
        let cats: Vec<&str> = by_ph(&v, "X")
            .iter()
            .map(|e| e["cat"].as_str().unwrap())
            .collect();
        assert_eq!(cats, ["gc", "gc", "gc", "gc", "sched", "gc"]);
        let tids: Vec<u64> = by_ph(&v, "X")
            .iter()
            .map(|e| e["tid"].as_u64().unwrap())
            .collect();
        assert_eq!(
            tids,
            [1000, 1000, 0, 0, 4, 1001],
            "phases on their own thread"
        );
    }

    #[test]
    fn tids_put_gc_first_then_ps_then_workers() {
        assert_eq!(tid(Track::Gc), 0);
        assert_eq!(tid(Track::P(0)), 1);
        assert_eq!(tid(Track::P(255)), 256);
        assert_eq!(tid(Track::Worker(0)), 1001);
        assert_eq!(tid(Track::Worker(7)), 1008);
        let mut tracks = vec![Track::Worker(1), Track::P(2), Track::Gc, Track::P(0)];
        tracks.sort_by_key(|&t| tid(t));
        assert_eq!(
            tracks,
            [Track::Gc, Track::P(0), Track::P(2), Track::Worker(1)]
        );
    }

    #[test]
    fn thread_names_and_sort_order_follow_the_tids() {
        assert_eq!(thread_name(0), "GC");
        assert_eq!(thread_name(GC_PHASES_TID), "GC phases");
        assert_eq!(thread_name(tid(Track::P(0))), "P0");
        assert_eq!(thread_name(tid(Track::P(255))), "P255");
        assert_eq!(thread_name(tid(Track::Worker(3))), "mark worker 3");
        let mut tids = vec![1002, 5, GC_PHASES_TID, 0, 1];
        tids.sort_by_key(|&t| thread_sort_index(t));
        assert_eq!(tids, [GC_PHASES_TID, 0, 1, 5, 1002]);
    }

    #[test]
    fn metadata_names_the_process_and_every_track_seen() {
        let v = export(&[
            event(TraceEv::GcPhase, Track::Gc, 0, 9, [PHASE_MARK, 1]),
            event(TraceEv::GoCreate, Track::P(1), 1, 0, [1, 0]),
            event(TraceEv::Rescan, Track::Gc, 2, 3, [1, 64]),
            event(TraceEv::StackScan, Track::Worker(0), 3, 3, [1, 64]),
            event(TraceEv::CopyStack, Track::P(1), 4, 0, [1, 8192]),
        ]);
        let m = by_ph(&v, "M");
        let process: Vec<_> = m.iter().filter(|e| e["name"] == "process_name").collect();
        assert_eq!(process.len(), 1);
        assert_eq!(process[0]["args"]["name"], "stkbar");
        assert_eq!(process[0]["pid"], 1);
        let names: Vec<(u64, &str)> = m
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| {
                (
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (0, "GC"),
                (2, "P1"),
                (1000, "GC phases"),
                (1001, "mark worker 0")
            ]
        );
        let sort: Vec<(u64, i64)> = m
            .iter()
            .filter(|e| e["name"] == "thread_sort_index")
            .map(|e| {
                (
                    e["tid"].as_u64().unwrap(),
                    e["args"]["sort_index"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(sort, [(0, 0), (2, 2), (1000, -1), (1001, 1001)]);
        assert_eq!(v["displayTimeUnit"], "ns");
        assert_eq!(v["otherData"]["config"]["workload"], "mixed");
    }

    #[test]
    fn an_empty_trace_is_still_valid_json() {
        let v = export(&[]);
        assert_eq!(by_ph(&v, "M").len(), 1, "only the process name: {v}");
        assert_eq!(v["traceEvents"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn the_file_appears_only_at_finish_and_a_dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t.json");
        let entries = || fs::read_dir(dir.path()).unwrap().count();
        let mut w = ChromeTraceWriter::create(&dest).unwrap();
        w.write(&[event(TraceEv::BarrierHit, Track::P(0), 1, 0, [1, 0])])
            .unwrap();
        assert!(!dest.exists(), "no trace before finish");
        assert_eq!(entries(), 1, "just the temporary file");
        drop(w);
        assert!(!dest.exists());
        assert_eq!(entries(), 0, "a dropped writer removes its temporary file");

        // An old trace stays whole until the new one is finished.
        fs::write(&dest, "old").unwrap();
        let w = ChromeTraceWriter::create(&dest).unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old");
        w.finish(Value::Null).unwrap();
        let v: Value = serde_json::from_str(&fs::read_to_string(&dest).unwrap()).unwrap();
        assert!(v["traceEvents"].is_array());
        assert_eq!(entries(), 1, "no temporary file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_at_create() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("no/such/dir/t.json");
        assert!(ChromeTraceWriter::create(&dest).is_err());
        assert!(!dir.path().join("no").exists(), "nothing is created");
    }

    #[test]
    fn a_shared_sink_hands_the_writer_back() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t.json");
        let shared = SharedSink::new(ChromeTraceWriter::create(&dest).unwrap());
        let mut boxed: Box<dyn TraceSink> = Box::new(shared.clone());
        boxed
            .write(&[event(TraceEv::GoCreate, Track::P(0), 1, 0, [1, 0])])
            .unwrap();
        let w = shared.take().expect("the writer");
        assert_eq!(w.events(), 1);
        assert!(boxed.write(&[]).is_err(), "a taken sink refuses events");
        w.finish(Value::Null).unwrap();
        assert!(dest.exists());
    }
}
