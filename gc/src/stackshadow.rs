//! `stackshadow` (`--debug stackshadow=1`): a checker for the invariant stack barriers rely on —
//! every frame a mark-termination re-scan skips is unchanged since the concurrent scan saw it,
//! apart from stores the write barrier covered. Go never had one; a wrong re-scan shows there only
//! when an object is lost.
//!
//! Invariant: with the checker on, a cycle completes only if, for every goroutine scanned or
//! re-scanned in it, each frame on its stack at mark termination either was shaded by the
//! re-scan or matches, frame for frame, the record the concurrent scan made: the same position
//! (depth of its SP below the stack's top, which a stack move keeps), size, function and real
//! return PC, and the same value in every pointer slot (a value pointing into the goroutine's own
//! stack compared by its depth below the top, so a move does not change it). Otherwise the cycle
//! fails with [`RuntimeError::StackShadowViolation`] (exit 3), naming the goroutine, the frame,
//! the slot, both values, its traceback and its stkbar array with `stkbar_pos`.
//!
//! Algorithm. At each concurrent scan in a re-scanning design, record every frame of the stack
//! ([`StackShadow::record`]; the record replaces last cycle's). A write-barriered store into a
//! recorded frame — a store through a pointer to an outer frame — updates the record, as wbshadow's
//! shadow follows barriered heap stores: the barrier shaded the new value, so no re-scan needs to
//! see it. The re-scan notes the frames it shaded (a fault may shade fewer than it walks). After
//! mark termination's re-scans, with the world still stopped and outside the pause figure (like
//! checkmark), every goroutine with a record of this cycle, or re-scanned in it, is walked once:
//! frames not shaded are verified against the record, a frame with no record (new since the scan)
//! being a violation like a changed one. The same walk measures `content_rescan_bytes`, the content
//! oracle: for each re-scanned goroutine, the bytes from its SP to the top of the highest frame
//! that is new or differs from its record — the least any re-scan must cover (a goroutine not
//! scanned in the cycle counts whole). Cost: the record keeps 16 bytes per pointer slot and 40 per
//! frame of every scanned stack until the next cycle's scan (`stackshadow_bytes`); the scan walks
//! each stack twice and mark termination walks every scanned goroutine once more.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use stacks::{Addr, FuncId, GStack, Pc, Program, WORD};

use crate::error::RuntimeError;
use crate::runtime::Runtime;

/// A pointer-slot value as the record keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    /// Not an address in the goroutine's stack.
    Value(u64),
    /// An address in the goroutine's stack, as its depth below the stack's top.
    Stack(usize),
}

impl Word {
    fn of(gs: &GStack, v: u64) -> Word {
        let s = gs.stack();
        if (s.lo().0..s.hi().0).contains(&v) {
            Word::Stack((s.hi().0 - v) as usize)
        } else {
            Word::Value(v)
        }
    }

    fn show(self, gs: &GStack) -> String {
        match self {
            Word::Value(v) => format!("{v:#x}"),
            Word::Stack(d) => format!("{} (stack top - {d})", Addr(gs.stack().hi().0 - d as u64)),
        }
    }
}

/// One frame as the scan saw it.
#[derive(Clone, Copy, Debug)]
struct FrameRecord {
    /// Depth of the frame's SP below the stack's top.
    sp_depth: usize,
    size: usize,
    func: FuncId,
    /// The real return PC (through any barrier).
    lr: Pc,
    /// Its pointer slots' values: `words[first..first + count]`, in pointer-map order.
    first: usize,
}

/// What the concurrent scan of one goroutine saw, kept until mark termination.
#[derive(Clone, Debug)]
pub struct StackShadow {
    /// The cycle of the scan.
    cycle: u32,
    /// Frames, innermost (deepest) first.
    frames: Vec<FrameRecord>,
    words: Vec<Word>,
    /// SP depths of the frames the re-scan shaded, once it ran (`None`: not re-scanned).
    rescanned: Option<Vec<usize>>,
}

/// What verifying one goroutine found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Frames compared with the record (those the re-scan skipped).
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of them, frames that changed since the scan (violations).
    pub changed: u64,
    /// The content oracle for a re-scanned goroutine (0 for one not re-scanned).
    pub content_bytes: u64,
    /// The first violation's report.
    pub violation: Option<String>,
}

impl StackShadow {
    /// The record of `gs` as a scan in `cycle` sees it.
    pub fn record(rt: &Runtime, gs: &GStack, cycle: u32) -> Result<StackShadow, RuntimeError> {
        let prog = &rt.prog;
        let hi = gs.stack().hi();
        let mut shadow = StackShadow::empty(cycle);
        for frame in gs.frames(prog) {
            let frame = frame?;
            let first = shadow.words.len();
            let words = gs
                .stack()
                .words(frame.sp, frame.fp)
                .expect("the unwinder checked the frame");
            for &i in rt.ptr_slots(frame.func) {
                shadow
                    .words
                    .push(Word::of(gs, words[i as usize].load(Ordering::Relaxed)));
            }
            shadow.frames.push(FrameRecord {
                sp_depth: hi.offset_from(frame.sp),
                size: frame.size(),
                func: frame.func,
                lr: frame.lr,
                first,
            });
        }
        Ok(shadow)
    }

    /// A record with no frames: a goroutine the cycle's scan never saw (created during the
    /// mark), so every frame its re-scan skips is new.
    pub fn empty(cycle: u32) -> StackShadow {
        StackShadow {
            cycle,
            frames: Vec::new(),
            words: Vec::new(),
            rescanned: None,
        }
    }

    /// The cycle this record belongs to.
    pub fn cycle(&self) -> u32 {
        self.cycle
    }

    /// Bytes the record occupies.
    pub fn bytes(&self) -> usize {
        self.frames.len() * std::mem::size_of::<FrameRecord>()
            + self.words.len() * std::mem::size_of::<Word>()
    }

    /// The record's frame whose SP lies `sp_depth` below the stack's top.
    fn frame_at(&self, sp_depth: usize) -> Option<&FrameRecord> {
        // Innermost first: depths decrease along the vector.
        self.frames
            .binary_search_by(|f| sp_depth.cmp(&f.sp_depth))
            .ok()
            .map(|i| &self.frames[i])
    }

    /// A write-barriered store of `v` into the stack word `slot` of `gs`: a recorded frame's
    /// pointer slot follows it.
    pub fn note_store(&mut self, rt: &Runtime, gs: &GStack, slot: Addr, v: u64) {
        let hi = gs.stack().hi();
        let depth = hi.offset_from(slot);
        // The frame holding the slot: the innermost one whose SP lies at or below it.
        let i = self.frames.partition_point(|f| f.sp_depth >= depth);
        let Some(f) = i.checked_sub(1).map(|i| self.frames[i]) else {
            return;
        };
        if depth <= f.sp_depth.saturating_sub(f.size) {
            return;
        }
        let word = (f.sp_depth - depth) / WORD;
        if let Some(rank) = rt
            .ptr_slots(f.func)
            .iter()
            .position(|&w| w as usize == word)
        {
            self.words[f.first + rank] = Word::of(gs, v);
        }
    }

    /// The re-scan shaded the frames whose SPs lie at `sp_depths` below the top.
    pub fn note_rescanned(&mut self, mut sp_depths: Vec<usize>) {
        sp_depths.sort_unstable();
        self.rescanned = Some(sp_depths);
    }

    /// Compares every frame of `gs` the re-scan did not shade with the record, and measures the
    /// content oracle.
    pub fn verify(&self, rt: &Runtime, gs: &GStack) -> Result<Verified, RuntimeError> {
        let prog = &rt.prog;
        let hi = gs.stack().hi();
        let mut out = Verified::default();
        let mut content_top = 0;
        for (index, frame) in gs.frames(prog).enumerate() {
            let frame = frame?;
            let sp_depth = hi.offset_from(frame.sp);
            let differs = self.differs(rt, gs, index, &frame, sp_depth);
            if differs.is_some() {
                content_top = frame.fp.offset_from(gs.sp());
            }
            let shaded = self
                .rescanned
                .as_ref()
                .is_some_and(|d| d.binary_search(&sp_depth).is_ok());
            if shaded {
                continue;
            }
            out.frames += 1;
            out.bytes += frame.size() as u64;
            if let Some(what) = differs {
                out.changed += 1;
                if out.violation.is_none() {
                    out.violation = Some(self.report(prog, gs, index, &what));
                }
            }
        }
        if self.rescanned.is_some() {
            out.content_bytes = content_top as u64;
        }
        Ok(out)
    }

    /// How frame `index` of `gs` differs from the record, if it does.
    fn differs(
        &self,
        rt: &Runtime,
        gs: &GStack,
        index: usize,
        frame: &stacks::Frame,
        sp_depth: usize,
    ) -> Option<String> {
        let name = |f: FuncId| rt.prog.func(f).name.clone();
        let Some(rec) = self.frame_at(sp_depth) else {
            return Some(format!(
                "frame {index} ({} at sp={}) is new since the scan",
                name(frame.func),
                frame.sp
            ));
        };
        if rec.func != frame.func || rec.size != frame.size() || rec.lr != frame.lr {
            return Some(format!(
                "frame {index} at sp={} was {} returning to {}, is {} returning to {}",
                frame.sp,
                name(rec.func),
                rec.lr,
                name(frame.func),
                frame.lr
            ));
        }
        let words = gs
            .stack()
            .words(frame.sp, frame.fp)
            .expect("the unwinder checked the frame");
        for (k, &word) in rt.ptr_slots(frame.func).iter().enumerate() {
            let word = word as usize;
            let now = Word::of(gs, words[word].load(Ordering::Relaxed));
            let then = self.words[rec.first + k];
            if now != then {
                let slot = frame.sp.add(word * WORD);
                return Some(format!(
                    "frame {index} ({} at sp={}): pointer slot {slot} (word {word}) held {} at the scan, holds {} now",
                    name(frame.func),
                    frame.sp,
                    then.show(gs),
                    now.show(gs)
                ));
            }
        }
        None
    }

    fn report(&self, prog: &Program, gs: &GStack, index: usize, what: &str) -> String {
        let mut r = format!(
            "runtime: stackshadow: goroutine {} (cycle {}): the re-scan skipped a frame that changed since the concurrent scan: {what}",
            gs.goid(),
            self.cycle
        );
        let _ = write!(r, "\n  traceback (innermost first; * the frame):");
        // The frames up to a few past the one named; the rest counted.
        let shown = (index + 4).max(8);
        let total = gs.frames(prog).count();
        for (i, f) in gs.frames(prog).enumerate().take(shown) {
            match f {
                Ok(f) => {
                    let mark = if i == index { "*" } else { " " };
                    let _ = write!(
                        r,
                        "\n   {mark}{i:>3} {} sp={} fp={}{}",
                        prog.func(f.func).name,
                        f.sp,
                        f.fp,
                        f.stkbar.map_or(String::new(), |b| format!(" stkbar[{b}]"))
                    );
                }
                Err(e) => {
                    let _ = write!(r, "\n    {e}");
                    break;
                }
            }
        }
        if total > shown {
            let _ = write!(r, "\n    … {} more frames", total - shown);
        }
        let _ = write!(
            r,
            "\n  stkbar (stkbar_pos {}): {}",
            gs.stkbar_pos(),
            gs.stkbars_string(Some(gs.stkbar_pos()))
        );
        r
    }
}

/// What mark termination's stackshadow pass found over every goroutine.
#[derive(Clone, Debug, Default)]
pub struct ShadowPass {
    /// Frames and bytes verified, and the content oracle, summed.
    pub verified: Verified,
    /// Bytes the records of this cycle occupy.
    pub record_bytes: u64,
    /// The first violation's report.
    pub violation: Option<String>,
}

impl Runtime {
    /// Verifies, with the world stopped after the re-scans of `cycle`, every goroutine that has
    /// a record of `cycle` (scanned or re-scanned in it): see the module comment. Visits every
    /// goroutine, like checkmark, outside the pause figure.
    pub(crate) fn stackshadow_pass(&self, cycle: u32) -> Result<ShadowPass, RuntimeError> {
        let mut pass = ShadowPass::default();
        self.for_each_g_state(|st| -> Result<(), RuntimeError> {
            let Some(shadow) = st.shadow.as_ref().filter(|s| s.cycle == cycle) else {
                return Ok(());
            };
            pass.record_bytes += shadow.bytes() as u64;
            let v = shadow.verify(self, &st.gs)?;
            pass.verified.frames += v.frames;
            pass.verified.bytes += v.bytes;
            pass.verified.changed += v.changed;
            pass.verified.content_bytes += v.content_bytes;
            if pass.violation.is_none() {
                pass.violation = v.violation;
            }
            Ok(())
        })?;
        Ok(pass)
    }
}
