//! `replay`: goroutines that replay a call/return/alloc trace recorded from a real program, so the
//! results include the stack-depth behaviour of real code (ARCHITECTURE.md §5).
//!
//! Invariant: the trace is validated when it is read — every function is declared once before its
//! first call with a frame size the runtime accepts, the first event is a call, and no `ret` takes
//! the depth below zero — so a goroutine replaying it always has exactly
//! `base + trace depth` frames, where `base` is the `--depth` frames the workload puts below the
//! trace. A malformed line is an error naming the file and the line, never a panic.
//!
//! The algorithm. Goroutine `i` of `G` starts `i/G` of the way into the trace: it first calls the
//! `base` frames below the trace (the trace then runs as a parser called deep inside a program
//! would), then calls the chain of functions open at its starting event (the trace's own call
//! stack there, "fast-forward"), then replays event by event — `call F` is a call of `F`, `ret` a
//! return, `alloc N` an allocation into a local pointer slot (a 512-byte table for `N > 256`, a
//! leaf for `N ≤ 16`, a node otherwise). Between events it draws from [`HeapMix`] as every
//! workload does (mutating the heap and hiding objects on its stack) and stores through `&local`
//! into outer frames. At the trace's end it returns to the base and starts the trace again. The
//! trace fixes the call shape; the seed fixes only the heap work between events, so every seed
//! sees the same depth profile.
//!
//! Scheduling. The format records no scheduling events (a traced C program has no goroutines), so
//! a replaying goroutine is CPU-bound: it calls `runtime.Gosched()` once, right after it has
//! built its base frames and fast-forwarded (one [`Op::Yield`]), so that every goroutine builds
//! its stack early instead of waiting for a time slice or a stop-the-world to get a P — like a
//! benchmark whose goroutines yield once when set up — and then replays without yielding, across
//! restarts of the trace too: only the scheduler's time slice takes its P away.
//!
//! Blocking ([`Workload::blocking`], defaults [`common::CPU_BOUND`]): `block_every` (default 0,
//! never) makes a goroutine block between events — a channel receive, with probability
//! `1/block_every` per operation once replay has begun ([`common::Blocker`]) — and `wakes_per_ms`
//! (default 0) is the rate at which the network poller wakes parked goroutines, which
//! `block_every` needs. `running` and `burst` do not apply (ignored).
//!
//! The format, `stkbar-replay 1`, one item a line (blank lines and `#` comments ignored):
//!
//! ```text
//! stkbar-replay 1            the header, the first line that is not a comment
//! func NAME FRAME_BYTES      declares NAME: a frame of FRAME_BYTES (return-PC word included)
//! call NAME                  calls a declared function
//! ret                        returns from the innermost frame
//! alloc BYTES                the running function allocates BYTES of heap
//! ```
//!
//! Real C frames carry no pointer map; a replayed frame's first half of words (return-PC word
//! excluded) are its pointer slots, as in the synthetic workloads. `experiments/data/README.md`
//! says how the shipped traces were recorded (uftrace on real programs, `-fstack-usage` for frame
//! sizes) and `scripts/uftrace2replay.py` converts a recording.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gc::{Behaviour, Ctx, Op, Rng, WorkloadImage};
use rand::RngExt;
use stacks::code::{MAX_FRAME_SIZE, MIN_FRAME_SIZE};
use stacks::{FuncId, Program};

use super::common::{self, Blocker, HeapMix, LEAF, NODE, TABLE};
use super::{Blocking, Workload, WorkloadParams};

/// The format's header line.
pub const HEADER: &str = "stkbar-replay 1";

/// The frame of each of the `--depth` frames below the trace.
const BASE_FRAME_BYTES: usize = 64;
/// The name of the function of the frames below the trace.
const BASE_FUNC: &str = "replay.base";

/// One trace event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Call the trace's function number `0`.
    Call(u32),
    /// Return.
    Ret,
    /// Allocate this many bytes.
    Alloc(u32),
}

/// A function the trace declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFunc {
    /// Its name.
    pub name: String,
    /// Its frame size in bytes, return-PC word included.
    pub frame_bytes: usize,
}

/// A validated trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayTrace {
    /// The file's stem (`lua-json` for `data/lua-json.trace`), as results name the trace.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The declared functions, in declaration order.
    pub funcs: Vec<TraceFunc>,
    /// The events.
    pub events: Vec<Event>,
    /// The deepest call depth the trace reaches.
    pub max_depth: usize,
}

/// Why a trace could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, `None` for the file as a whole.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "replay file {}:{line}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "replay file {}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ReplayError {}

impl ReplayTrace {
    /// Reads and validates the trace at `path`.
    pub fn load(path: &Path) -> Result<ReplayTrace, ReplayError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReplayError {
            path: path.to_owned(),
            line: None,
            message: format!("cannot read it: {e}"),
        })?;
        let name = path
            .file_stem()
            .map_or_else(|| "trace".to_owned(), |s| s.to_string_lossy().into_owned());
        ReplayTrace::parse(&text, &name, path)
    }

    /// Parses and validates `text`, naming it `name`; errors name `path`.
    pub fn parse(text: &str, name: &str, path: &Path) -> Result<ReplayTrace, ReplayError> {
        let err = |line: Option<usize>, message: String| ReplayError {
            path: path.to_owned(),
            line,
            message,
        };
        let mut funcs: Vec<TraceFunc> = Vec::new();
        let mut by_name: HashMap<String, u32> = HashMap::new();
        let mut events = Vec::new();
        let (mut depth, mut max_depth) = (0usize, 0usize);
        let mut header = false;
        for (i, raw) in text.lines().enumerate() {
            let lineno = Some(i + 1);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !header {
                if line.split_whitespace().collect::<Vec<_>>() != ["stkbar-replay", "1"] {
                    return Err(err(
                        lineno,
                        format!("expected the header {HEADER:?}, found {line:?}"),
                    ));
                }
                header = true;
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let event = match words.as_slice() {
                ["func", fname, bytes] => {
                    let frame_bytes = parse_number(bytes).ok_or_else(|| {
                        err(lineno, format!("frame size {bytes:?} is not a number"))
                    })?;
                    if !frame_bytes.is_multiple_of(8)
                        || !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&frame_bytes)
                    {
                        return Err(err(
                            lineno,
                            format!(
                                "frame size {frame_bytes} of {fname} must be a multiple of 8 in {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE}"
                            ),
                        ));
                    }
                    if *fname == BASE_FUNC || fname.starts_with("runtime.") {
                        return Err(err(
                            lineno,
                            format!("function name {fname:?} is reserved for the runtime"),
                        ));
                    }
                    let id = funcs.len() as u32;
                    if by_name.insert((*fname).to_owned(), id).is_some() {
                        return Err(err(lineno, format!("function {fname} declared twice")));
                    }
                    funcs.push(TraceFunc {
                        name: (*fname).to_owned(),
                        frame_bytes,
                    });
                    continue;
                }
                ["call", fname] => {
                    let id = *by_name.get(*fname).ok_or_else(|| {
                        err(
                            lineno,
                            format!("call of {fname}, which no func line declared"),
                        )
                    })?;
                    depth += 1;
                    max_depth = max_depth.max(depth);
                    Event::Call(id)
                }
                ["ret"] => {
                    if depth == 0 {
                        return Err(err(lineno, "ret with no frame to return from".into()));
                    }
                    depth -= 1;
                    Event::Ret
                }
                ["alloc", bytes] => {
                    let n = parse_number(bytes)
                        .filter(|&n| (1..=u32::MAX as usize).contains(&n))
                        .ok_or_else(|| {
                            err(
                                lineno,
                                format!("alloc size {bytes:?} is not a positive number"),
                            )
                        })?;
                    if depth == 0 {
                        return Err(err(lineno, "alloc outside any function".into()));
                    }
                    Event::Alloc(n as u32)
                }
                [kw, ..] if ["func", "call", "ret", "alloc"].contains(kw) => {
                    return Err(err(
                        lineno,
                        format!(
                            "wrong number of fields in {line:?} (expected: func NAME FRAME_BYTES | call NAME | ret | alloc BYTES)"
                        ),
                    ));
                }
                _ => {
                    return Err(err(
                        lineno,
                        format!("unknown event {line:?} (expected: func, call, ret or alloc)"),
                    ));
                }
            };
            events.push(event);
        }
        if !header {
            return Err(err(
                None,
                format!("no {HEADER:?} header: not a replay trace"),
            ));
        }
        match events.first() {
            None => return Err(err(None, "the trace has no events".into())),
            Some(Event::Call(_)) => {}
            Some(_) => return Err(err(None, "the first event must be a call".into())),
        }
        Ok(ReplayTrace {
            name: name.to_owned(),
            path: path.to_owned(),
            funcs,
            events,
            max_depth,
        })
    }

    /// The program: the trace's functions plus the base function.
    fn program(&self) -> Result<Program, stacks::code::CodeError> {
        let pointers = |frame_bytes: usize| -> Vec<usize> {
            let words = frame_bytes / 8 - 1;
            (0..words.div_ceil(2)).collect()
        };
        self.funcs
            .iter()
            .fold(
                Program::builder().func_with_pointers(
                    BASE_FUNC,
                    BASE_FRAME_BYTES,
                    &pointers(BASE_FRAME_BYTES),
                ),
                |b, f| b.func_with_pointers(&f.name, f.frame_bytes, &pointers(f.frame_bytes)),
            )
            .build()
    }

    /// The chain of functions open just before event `offset`, outermost first, for each offset
    /// in `offsets` (ascending).
    fn open_chains(&self, offsets: &[usize]) -> Vec<Vec<u32>> {
        let mut chains = Vec::with_capacity(offsets.len());
        let mut stack = Vec::new();
        let mut next = offsets.iter().peekable();
        for (i, e) in self.events.iter().enumerate() {
            while next.next_if(|&&o| o == i).is_some() {
                chains.push(stack.clone());
            }
            match *e {
                Event::Call(f) => stack.push(f),
                Event::Ret => {
                    stack.pop();
                }
                Event::Alloc(_) => {}
            }
        }
        chains.resize(offsets.len(), stack);
        chains
    }
}

/// A decimal number.
fn parse_number(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `replay` workload over one trace.
#[derive(Debug, Clone)]
pub struct Replay {
    trace: Arc<ReplayTrace>,
}

impl Replay {
    /// The workload replaying `trace`.
    pub fn new(trace: ReplayTrace) -> Replay {
        Replay {
            trace: Arc::new(trace),
        }
    }

    /// Reads the trace at `path`.
    pub fn load(path: &Path) -> Result<Replay, ReplayError> {
        ReplayTrace::load(path).map(Replay::new)
    }

    /// The trace.
    pub fn trace(&self) -> &ReplayTrace {
        &self.trace
    }
}

impl Workload for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }
    fn about(&self) -> &'static str {
        "replay a recorded call/return/alloc trace (--replay FILE) on top of D base frames"
    }
    fn build(&self, params: &WorkloadParams) -> WorkloadImage {
        let params = &common::resolve(params, self.blocking());
        let blocker = Blocker::new(&params.blocking);
        let program = self
            .trace
            .program()
            .expect("a validated trace's functions form a valid program");
        let base_func = program.lookup(BASE_FUNC).expect("the base function");
        let ids: Arc<[FuncId]> = self
            .trace
            .funcs
            .iter()
            .map(|f| program.lookup(&f.name).expect("every declared function"))
            .collect();
        let n = self.trace.events.len();
        let offsets: Vec<usize> = (0..params.goroutines)
            .map(|i| i * n / params.goroutines)
            .collect();
        let chains = self.trace.open_chains(&offsets);
        let goroutines = offsets
            .into_iter()
            .zip(chains)
            .enumerate()
            .map(|(id, (cursor, chain))| {
                let mut mix = HeapMix::new(id, params.goroutines);
                mix.init();
                Box::new(Replayer {
                    trace: Arc::clone(&self.trace),
                    ids: Arc::clone(&ids),
                    base_func,
                    base: params.depth,
                    fast_forward: chain,
                    forwarded: 0,
                    cursor,
                    mix,
                    blocker,
                    built: false,
                }) as Box<dyn Behaviour>
            })
            .collect();
        WorkloadImage {
            wakes_per_ms: params.blocking.wakes_per_ms.expect("resolved blocking"),
            program,
            types: common::types(),
            globals: common::globals(params.goroutines),
            goroutines,
        }
    }
    fn max_depth(&self, params: &WorkloadParams) -> usize {
        params.depth + self.trace.max_depth
    }
    fn blocking(&self) -> Blocking {
        common::CPU_BOUND
    }
}

/// One goroutine replaying the trace.
struct Replayer {
    trace: Arc<ReplayTrace>,
    ids: Arc<[FuncId]>,
    base_func: FuncId,
    /// Frames below the trace.
    base: usize,
    /// The trace's call chain open at the starting event, called before replay begins.
    fast_forward: Vec<u32>,
    /// How much of `fast_forward` has been called.
    forwarded: usize,
    /// The next event.
    cursor: usize,
    mix: HeapMix,
    blocker: Blocker,
    /// Whether the base and the fast-forward chain have been called (and the goroutine has
    /// yielded).
    built: bool,
}

impl fmt::Debug for Replayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayer")
            .field("trace", &self.trace.name)
            .field("base", &self.base)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Replayer {
    fn call(&self, f: u32) -> Op {
        Op::Call {
            func: self.ids[f as usize],
            // One return PC per callee in the caller: the same edge returns to the same place.
            site: (f % 4) as u8,
        }
    }
}

impl Behaviour for Replayer {
    fn next_op(&mut self, ctx: &Ctx, rng: &mut Rng) -> Op {
        if let Some(op) = self.mix.pending(ctx) {
            return op;
        }
        if ctx.depth < self.base {
            return Op::Call {
                func: self.base_func,
                site: 0,
            };
        }
        if let Some(&f) = self.fast_forward.get(self.forwarded) {
            self.forwarded += 1;
            return self.call(f);
        }
        if !self.built {
            // Set up: let the other goroutines build theirs (runtime.Gosched, once).
            self.built = true;
            return Op::Yield;
        }
        if let Some(op) = self.blocker.poll(rng) {
            return op;
        }
        // Heap work between the trace's events: about one operation in three.
        match rng.random_range(0..100) {
            0..29 => return self.mix.next(rng),
            29..30 => {
                if let Some(op) = self.mix.up_store(rng, ctx.depth, 2) {
                    return op;
                }
            }
            _ => {}
        }
        if self.cursor == self.trace.events.len() {
            // The trace is over: return to the base, then start it again.
            if ctx.depth > self.base {
                return Op::Ret;
            }
            self.cursor = 0;
        }
        let event = self.trace.events[self.cursor];
        self.cursor += 1;
        match event {
            Event::Call(f) => self.call(f),
            Event::Ret => Op::Ret,
            Event::Alloc(bytes) => Op::Alloc {
                ty: match bytes {
                    0..=16 => LEAF,
                    17..=256 => NODE,
                    _ => TABLE,
                },
                dst: rng.random_range(0..8),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ReplayTrace, ReplayError> {
        ReplayTrace::parse(text, "t", Path::new("t.trace"))
    }

    const GOOD: &str = "# a comment\n\nstkbar-replay 1\nfunc main 64\nfunc parse 128\ncall main\n\
                        alloc 24\ncall parse\ncall parse\nret\nalloc 300\nret\ncall parse\n";

    #[test]
    fn a_valid_trace_parses_with_its_depth() {
        let t = parse(GOOD).unwrap();
        assert_eq!(t.funcs.len(), 2);
        assert_eq!(t.events.len(), 8);
        assert_eq!(t.max_depth, 3);
        assert_eq!(t.events[1], Event::Alloc(24));
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("stkbar-replay 2\n", 1, "header"),
            ("stkbar-replay 1\nfunc f 12\n", 2, "multiple of 8"),
            ("stkbar-replay 1\nfunc f 8\n", 2, "multiple of 8"),
            ("stkbar-replay 1\nfunc f x\n", 2, "not a number"),
            (
                "stkbar-replay 1\nfunc f 16\nfunc f 32\n",
                3,
                "declared twice",
            ),
            ("stkbar-replay 1\ncall g\n", 2, "no func line declared"),
            (
                "stkbar-replay 1\nfunc f 16\ncall f\nret\nret\n",
                5,
                "no frame",
            ),
            (
                "stkbar-replay 1\nfunc f 16\nalloc 8\n",
                3,
                "outside any function",
            ),
            (
                "stkbar-replay 1\nfunc f 16\ncall f\nalloc 0\n",
                4,
                "positive",
            ),
            (
                "stkbar-replay 1\nfunc f 16\ncall f\nalloc -3\n",
                4,
                "positive",
            ),
            ("stkbar-replay 1\njump f\n", 2, "unknown event"),
            ("stkbar-replay 1\ncall\n", 2, "wrong number of fields"),
            ("stkbar-replay 1\nfunc runtime.gogo 16\n", 2, "reserved"),
        ];
        for &(text, line, what) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("replay file t.trace:{line}: "))
            );
        }
    }

    #[test]
    fn whole_file_problems_are_reported_without_a_line() {
        for (text, what) in [
            ("", "header"),
            ("# only comments\n", "header"),
            ("stkbar-replay 1\nfunc f 16\n", "no events"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, None);
            assert!(e.to_string().contains(what), "{e}");
        }
        let e = ReplayTrace::load(Path::new("/nonexistent/x.trace")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn open_chains_are_the_call_stack_at_each_offset() {
        let t = parse(GOOD).unwrap();
        // Events: call main, alloc, call parse, call parse, ret, alloc, ret, call parse.
        assert_eq!(
            t.open_chains(&[0, 1, 4, 5, 7, 8]),
            vec![
                vec![],
                vec![0],
                vec![0, 1, 1],
                vec![0, 1],
                vec![0],
                vec![0, 1]
            ]
        );
    }

    #[test]
    fn replayed_goroutines_run_the_trace_on_top_of_the_base() {
        let t = parse(GOOD).unwrap();
        let w = Replay::new(t);
        let params = WorkloadParams::new(3, 5, 1);
        assert_eq!(w.max_depth(&params), 8);
        let image = w.build(&params);
        assert_eq!(image.goroutines.len(), 3);
        let config = gc::GcConfig {
            force_gc_ops: Some(2_000),
            debug: gc::DebugKnobs {
                gccheckmark: true,
                ..Default::default()
            },
            ..gc::GcConfig::default()
        };
        let r = gc::Deterministic::new(config, image)
            .unwrap()
            .run(4, 10_000_000)
            .unwrap();
        assert_eq!(r.totals.sum.checkmark_failures, 0);
        assert_eq!(r.rescan_bound.outside_bound, 0);
    }

    #[test]
    fn replayers_yield_once_when_built_then_block_only_when_asked() {
        let w = Replay::new(parse(GOOD).unwrap());
        // Goroutine 0 starts at the trace's beginning: its stack is built at the base.
        let base = 6;
        common::testing::check_cpu_bound(
            |p| w.build(p).goroutines.swap_remove(0),
            WorkloadParams::new(3, base, 4),
            base,
        );
        // The others fast-forward first, and yield on top of the chain open where they start.
        let params = WorkloadParams::new(3, base, 4);
        let mut g = w.build(&params).goroutines.swap_remove(2);
        let steps = common::testing::run_alone(&mut *g, 4, 10_000);
        let yields = common::testing::positions(&steps, Op::Yield);
        assert_eq!(yields.len(), 1);
        assert_eq!(
            steps[yields[0]].depth,
            base + 2,
            "{:?}",
            &steps[..yields[0]]
        );
    }
}
