//! The sampling profiler (seed 003): signals that land at any micro-operation boundary of an M,
//! and a handler that unwinds the interrupted goroutine only when its state is consistent.
//!
//! Invariant: with the checks on, the handler never unwinds a stack whose registers or barriers
//! are half updated, so every traceback it records is exactly the goroutine's frames (up to
//! [`ProfileConfig::max_frames`]); a sample it cannot take safely is recorded as `System`. With
//! `validate`, every unwound sample is compared with frames the interpreter keeps independently of
//! stack memory, and a mismatch or an unwinder error counts as `malformed`.
//!
//! The machine. Each P's thread is its M. An M's registers are `g` (the goroutine running, or g0
//! for the scheduler's system stack), SP and PC. While a goroutine runs they are its `g` and its
//! gobuf's SP and PC; a switch changes them one store at a time ([`MState`]): `gogo` sets g, then
//! SP, then PC, the PC last because once it is set the new goroutine runs; `mcall` sets g to g0,
//! then SP, then jumps to the scheduler. A signal is handled at the M's next micro-operation
//! boundary: before every interpreter operation, between the stores of a switch, between the
//! stores of a stack-barrier install, hit or removal (`stacks::signal`), and at the scheduler.
//! Under the deterministic engine a seeded countdown of boundaries raises the signal (uniform over
//! `1..2·period`); under the threaded engine a profiler thread sets a P's pending flag at random
//! moments, as `setitimer` would.
//!
//! The handler (Go's `sigprof`). It unwinds only when, as seed 003 requires, g is the M's current
//! user goroutine, SP lies within that goroutine's stack and PC is not inside `gogo`; and, as
//! Go 1.6's stack barriers add, PC is not inside the `stackBarrier` trampoline (a hit is under
//! way) and the goroutine's stack-barrier lock can be taken (no install or removal is under way;
//! it is held while unwinding). Otherwise it records a `System` sample. With the checks off it
//! behaves as Go did before seed 003 — unwind whenever g is not g0 — and the malformed samples it
//! then records are what the checks prevent.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde::Serialize;
use stacks::{Addr, FuncId, GStack, MidOp, Pc, Program, Signals, gentraceback};

use crate::mutator::Rng;
use crate::nowb::nowritebarrier;
use crate::runtime::Runtime;
use crate::sched::{GIndex, P};

/// Go's `maxCPUProfStack`: frames one sample keeps.
pub const MAX_CPU_PROF_STACK: usize = 64;

/// Base of the M system stacks (g0), below the goroutine stacks; M `i`'s g0 stack is the
/// `G0_STACK_SIZE` bytes from `G0_STACK_BASE + i·G0_STACK_SIZE`.
pub const G0_STACK_BASE: u64 = 0xc7_f000_0000;
/// Size of an M's g0 stack (Go's is 8 KiB on Linux; this one holds no frames).
pub const G0_STACK_SIZE: u64 = 64 << 10;

/// How the profiler runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProfileConfig {
    /// Seed 003's consistency checks and the stack-barrier ones; off is Go before seed 003.
    pub checks: bool,
    /// Deterministic engine: mean micro-operation boundaries between two signals to an M.
    pub period: u64,
    /// Threaded engine: mean time between two signals from the profiler thread.
    #[serde(serialize_with = "serialize_micros")]
    pub interval: Duration,
    /// Frames a sample keeps.
    pub max_frames: usize,
    /// Keep every goroutine's true frames and check each unwound sample against them.
    pub validate: bool,
}

fn serialize_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e6)
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            checks: true,
            period: 64,
            interval: Duration::from_micros(100),
            max_frames: MAX_CPU_PROF_STACK,
            validate: true,
        }
    }
}

/// An M's registers between goroutines, as a switch leaves them store by store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MState {
    /// On g0, in the scheduler.
    Scheduler,
    /// Inside `gogo`, switching to the M's current goroutine: step 0 has changed only the PC (into
    /// `gogo`), step 1 has set g, step 2 has set SP; the PC store that ends it starts the goroutine.
    Gogo(u8),
    /// Inside `mcall`, leaving the goroutine for g0 (its gobuf already saved): step 0 has set g,
    /// step 1 has set SP; the jump to the scheduler ends it.
    Mcall(u8),
    /// Running the M's current goroutine: g is it, SP and PC are its gobuf's.
    User,
}

/// An M's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    /// The goroutine the g register names; `None` for g0.
    pub g: Option<GIndex>,
    /// The stack pointer.
    pub sp: Addr,
    /// The program counter.
    pub pc: Pc,
}

impl Regs {
    /// The registers of M `m` in state `state`, whose current goroutine is `curg` with stack `gs`.
    pub fn of(prog: &Program, m: usize, state: MState, curg: Option<(GIndex, &GStack)>) -> Regs {
        let g0_sp = Addr(G0_STACK_BASE + (m as u64 + 1) * G0_STACK_SIZE - 256);
        let entry = |f: FuncId| prog.func(f).entry;
        let curg_index = curg.map(|(g, _)| g);
        let curg_sp = curg.map_or(g0_sp, |(_, gs)| gs.sp());
        match (state, curg) {
            (MState::User, Some((g, gs))) => Regs {
                g: Some(g),
                sp: gs.sp(),
                pc: gs.pc(),
            },
            (MState::Gogo(step), _) => Regs {
                g: if step >= 1 { curg_index } else { None },
                sp: if step >= 2 { curg_sp } else { g0_sp },
                pc: entry(prog.gogo()).add(8 * u64::from(step)),
            },
            (MState::Mcall(step), _) => Regs {
                g: None,
                sp: if step >= 1 { g0_sp } else { curg_sp },
                pc: entry(prog.mcall()).add(8 * u64::from(step)),
            },
            (MState::Scheduler, _) | (MState::User, None) => Regs {
                g: None,
                sp: g0_sp,
                pc: entry(prog.schedule()),
            },
        }
    }
}

/// Where a signal landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    /// Before an interpreter operation.
    Op,
    /// Inside a goroutine switch (the M's [`MState`] says which step).
    Switch,
    /// Inside a stack-barrier operation on the running goroutine's stack.
    Barrier(MidOp),
    /// In the scheduler, or a P's own loop (sweeping, marking, idle).
    Scheduler,
}

/// Which check refused to unwind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    G0,
    SpOutsideStack,
    PcInGogo,
    PcInStackBarrier,
}

/// What the samples were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SampleCounts {
    /// Signals handled.
    pub samples: u64,
    /// Samples unwound into a traceback.
    pub user_samples: u64,
    /// Samples recorded as `System`.
    pub system_samples: u64,
    /// Samples taken inside `gogo`.
    pub samples_mid_gogo: u64,
    /// Samples taken inside `mcall`.
    pub samples_mid_mcall: u64,
    /// Samples taken inside a stack-barrier install, hit or removal.
    pub samples_mid_barrier: u64,
    /// Samples taken in the scheduler or a P's own loop.
    pub samples_in_scheduler: u64,
    /// Unwound samples whose traceback failed or differs from the true frames.
    pub malformed: u64,
    /// Malformed samples taken inside `gogo` or `mcall`.
    pub malformed_mid_switch: u64,
    /// Malformed samples taken inside a stack-barrier operation.
    pub malformed_mid_barrier: u64,
    /// Unwound samples compared with the true frames.
    pub validated: u64,
    /// Samples taken inside `gogo` or `mcall` that were unwound (0 with the checks on).
    pub unwound_mid_switch: u64,
    /// Samples taken inside a stack-barrier operation that were unwound (0 with the checks on).
    pub unwound_mid_barrier: u64,
    /// System samples because g was g0.
    pub refused_g0: u64,
    /// System samples because SP was outside g's stack.
    pub refused_sp: u64,
    /// System samples because PC was inside `gogo`.
    pub refused_gogo: u64,
    /// System samples because PC was inside `stackBarrier`.
    pub refused_stack_barrier_pc: u64,
    /// System samples because the stack-barrier lock was held.
    pub refused_stkbar_lock: u64,
}

impl SampleCounts {
    /// Adds another set of counts.
    pub fn add(&mut self, o: &SampleCounts) {
        self.samples += o.samples;
        self.user_samples += o.user_samples;
        self.system_samples += o.system_samples;
        self.samples_mid_gogo += o.samples_mid_gogo;
        self.samples_mid_mcall += o.samples_mid_mcall;
        self.samples_mid_barrier += o.samples_mid_barrier;
        self.samples_in_scheduler += o.samples_in_scheduler;
        self.malformed += o.malformed;
        self.malformed_mid_switch += o.malformed_mid_switch;
        self.malformed_mid_barrier += o.malformed_mid_barrier;
        self.validated += o.validated;
        self.unwound_mid_switch += o.unwound_mid_switch;
        self.unwound_mid_barrier += o.unwound_mid_barrier;
        self.refused_g0 += o.refused_g0;
        self.refused_sp += o.refused_sp;
        self.refused_gogo += o.refused_gogo;
        self.refused_stack_barrier_pc += o.refused_stack_barrier_pc;
        self.refused_stkbar_lock += o.refused_stkbar_lock;
    }
}

/// One recorded stack, for the folded profile.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SampleStack {
    /// A traceback, outermost frame first.
    User(Box<[FuncId]>),
    /// A `System` sample at a PC in this function (Go's `[pc, System]`).
    System(Option<FuncId>),
    /// An unwind that failed or disagreed with the true frames: what it produced, outermost first.
    Malformed(Box<[FuncId]>),
}

/// A profile: the counts and every stack with its samples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// What the samples were.
    pub counts: SampleCounts,
    /// Samples per stack.
    pub stacks: BTreeMap<SampleStack, u64>,
    /// Signals the threaded engine's profiler thread sent (0 under the deterministic engine,
    /// where every signal raised is handled).
    pub signals_sent: u64,
}

impl Profile {
    /// Adds another profile.
    pub fn add(&mut self, o: &Profile) {
        self.counts.add(&o.counts);
        for (s, n) in &o.stacks {
            *self.stacks.entry(s.clone()).or_default() += n;
        }
        self.signals_sent += o.signals_sent;
    }

    /// Folded stacks, one `frame;frame;… count` line per stack, outermost frame first (the
    /// input of flame-graph tools), sorted.
    pub fn folded(&self, prog: &Program) -> String {
        let name = |f: &FuncId| prog.func(*f).name.as_ref();
        let mut lines: Vec<String> = self
            .stacks
            .iter()
            .map(|(s, n)| {
                let frames: Vec<&str> = match s {
                    // A goroutine sampled before its first call is at `goexit`, its bottom frame.
                    SampleStack::User(fs) if fs.is_empty() => vec!["runtime.goexit"],
                    SampleStack::User(fs) => fs.iter().map(name).collect(),
                    SampleStack::System(pc) => std::iter::once("runtime._System")
                        .chain(pc.iter().map(name))
                        .collect(),
                    SampleStack::Malformed(fs) => std::iter::once("runtime._Malformed")
                        .chain(fs.iter().map(name))
                        .collect(),
                };
                format!("{} {n}", frames.join(";"))
            })
            .collect();
        lines.sort();
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Where an M's signals come from.
#[derive(Debug)]
enum SignalSource {
    /// A seeded countdown of boundaries (deterministic engine).
    Countdown { left: u64, period: u64, rng: Rng },
    /// The profiler thread's pending flag for this P (threaded engine).
    Thread,
}

/// An M's profiler state, kept in its P.
#[derive(Debug)]
pub struct MProf {
    source: SignalSource,
    profile: Profile,
    frames: Vec<FuncId>,
}

impl MProf {
    /// The profiler state of P `id`'s M: a seeded countdown, or the profiler thread's flag.
    pub fn new(config: &ProfileConfig, seed: u64, id: usize, threaded: bool) -> MProf {
        let source = if threaded {
            SignalSource::Thread
        } else {
            let mut rng = Rng::seed_from_u64(seed ^ 0x5167_0000 ^ id as u64);
            let period = config.period.max(1);
            SignalSource::Countdown {
                left: rng.random_range(1..2 * period),
                period,
                rng,
            }
        };
        MProf {
            source,
            profile: Profile::default(),
            frames: Vec::with_capacity(config.max_frames),
        }
    }

    /// The profile so far.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Whether a signal is pending at this boundary (and takes it).
    #[inline]
    fn take_signal(&mut self, rt: &Runtime, p_id: usize) -> bool {
        match &mut self.source {
            SignalSource::Countdown { left, period, rng } => {
                *left -= 1;
                if *left > 0 {
                    return false;
                }
                *left = rng.random_range(1..2 * *period);
                true
            }
            SignalSource::Thread => rt.take_sigpending(p_id),
        }
    }
}

/// The running goroutine as the handler sees it: its index, stack and true frames.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Curg<'a> {
    pub(crate) index: GIndex,
    pub(crate) gs: &'a GStack,
    pub(crate) true_frames: &'a [FuncId],
}

impl Runtime {
    /// A micro-operation boundary of P `p_id`'s M in state `state`: takes a pending signal, if
    /// any, and runs the handler.
    #[inline]
    pub(crate) fn sig_boundary(
        &self,
        prof: &mut Option<Box<MProf>>,
        p_id: usize,
        state: MState,
        curg: Option<Curg<'_>>,
        at: Where,
    ) {
        if let Some(prof) = prof.as_deref_mut()
            && prof.take_signal(self, p_id)
        {
            self.sigprof(prof, p_id, state, curg, at);
        }
    }

    /// The profiling signal handler (Go's `sigprof`), on P `p_id`'s M in state `state`.
    #[cold]
    #[inline(never)]
    fn sigprof(
        &self,
        prof: &mut MProf,
        p_id: usize,
        state: MState,
        curg: Option<Curg<'_>>,
        at: Where,
    ) {
        let _nowb = nowritebarrier("sigprof");
        let regs = Regs::of(&self.prog, p_id, state, curg.map(|c| (c.index, c.gs)));
        let prog = &self.prog;
        let checks = self.config.profile.is_some_and(|c| c.checks);
        let max_frames = self
            .config
            .profile
            .map_or(MAX_CPU_PROF_STACK, |c| c.max_frames);
        let c = &mut prof.profile.counts;
        c.samples += 1;
        let mid_switch = matches!(state, MState::Gogo(_) | MState::Mcall(_));
        match (at, state) {
            (_, MState::Gogo(_)) => c.samples_mid_gogo += 1,
            (_, MState::Mcall(_)) => c.samples_mid_mcall += 1,
            (Where::Barrier(_), _) => c.samples_mid_barrier += 1,
            (Where::Scheduler, _) => c.samples_in_scheduler += 1,
            _ => {}
        }
        // The goroutine the g register names: in this machine, g0 or the M's current goroutine.
        let target = match (regs.g, curg) {
            (Some(g), Some(cg)) if cg.index == g => Some(cg),
            _ => None,
        };
        let refusal = match target {
            None => Some(Refusal::G0),
            Some(cg) => {
                let s = cg.gs.stack();
                if regs.sp < s.lo() || regs.sp > s.hi() {
                    Some(Refusal::SpOutsideStack)
                } else if prog.pc_in(prog.gogo(), regs.pc) {
                    Some(Refusal::PcInGogo)
                } else if prog.pc_in(prog.stack_barrier(), regs.pc) {
                    Some(Refusal::PcInStackBarrier)
                } else {
                    None
                }
            }
        };
        let lock = target.map(|cg| cg.gs.stack_barrier_lock());
        let guard = match (checks, refusal, &lock) {
            (true, None, Some(l)) => match l.try_lock() {
                Some(g) => Some(g),
                None => {
                    c.refused_stkbar_lock += 1;
                    return self.record_system(prof, regs.pc);
                }
            },
            _ => None,
        };
        let traceback = if checks {
            refusal.is_none()
        } else {
            target.is_some()
        };
        let Some(cg) = target.filter(|_| traceback) else {
            match refusal {
                Some(Refusal::G0) => c.refused_g0 += 1,
                Some(Refusal::SpOutsideStack) => c.refused_sp += 1,
                Some(Refusal::PcInGogo) => c.refused_gogo += 1,
                Some(Refusal::PcInStackBarrier) => c.refused_stack_barrier_pc += 1,
                None => {}
            }
            return self.record_system(prof, regs.pc);
        };
        // Unwind (Go's gentraceback from the signal's PC and SP).
        let frames = &mut prof.frames;
        frames.clear();
        let mut failed = false;
        for fr in gentraceback(prog, cg.gs, regs.pc, regs.sp).take(max_frames) {
            match fr {
                Ok(fr) => frames.push(fr.func),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        drop(guard);
        let validate = self.config.profile.is_some_and(|c| c.validate);
        let agrees = !validate
            || frames
                .iter()
                .copied()
                .eq(cg.true_frames.iter().rev().copied().take(max_frames));
        let c = &mut prof.profile.counts;
        c.user_samples += 1;
        c.validated += u64::from(validate);
        c.unwound_mid_switch += u64::from(mid_switch);
        c.unwound_mid_barrier += u64::from(matches!(at, Where::Barrier(_)));
        let malformed = failed || !agrees;
        let mut stack: Vec<FuncId> = frames.iter().rev().copied().collect();
        let key = if malformed {
            c.malformed += 1;
            if mid_switch {
                c.malformed_mid_switch += 1;
            }
            if matches!(at, Where::Barrier(_)) {
                c.malformed_mid_barrier += 1;
            }
            if failed {
                // Go would have recorded the PC's function as the innermost frame.
                stack.extend(prog.findfunc(regs.pc));
            }
            SampleStack::Malformed(stack.into())
        } else {
            SampleStack::User(stack.into())
        };
        *prof.profile.stacks.entry(key).or_default() += 1;
    }

    fn record_system(&self, prof: &mut MProf, pc: Pc) {
        prof.profile.counts.system_samples += 1;
        let key = SampleStack::System(self.prog.findfunc(pc));
        *prof.profile.stacks.entry(key).or_default() += 1;
    }
}

/// The handler's view inside a stack-barrier operation on the running goroutine's own stack
/// (see `stacks::signal`): the M is running it, so its registers are the goroutine's.
pub(crate) struct BarrierSignals<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) prof: &'a mut Option<Box<MProf>>,
    pub(crate) p_id: usize,
    pub(crate) index: GIndex,
    pub(crate) true_frames: &'a [FuncId],
}

impl<'a> BarrierSignals<'a> {
    /// The view for goroutine `index`, running on `p` with `true_frames`.
    pub(crate) fn on(
        rt: &'a Runtime,
        p: &'a mut P,
        index: GIndex,
        true_frames: &'a [FuncId],
    ) -> BarrierSignals<'a> {
        BarrierSignals {
            rt,
            prof: &mut p.prof,
            p_id: p.id,
            index,
            true_frames,
        }
    }
}

impl Signals for BarrierSignals<'_> {
    #[inline]
    fn boundary(&mut self, gs: &GStack, at: MidOp) {
        let curg = Curg {
            index: self.index,
            gs,
            true_frames: self.true_frames,
        };
        self.rt.sig_boundary(
            self.prof,
            self.p_id,
            MState::User,
            Some(curg),
            Where::Barrier(at),
        );
    }
}

impl Runtime {
    /// Gives every P's M a profiler state, if the configuration profiles: a seeded countdown
    /// under the deterministic engine, the profiler thread's flag under the threaded one.
    pub fn start_profiling<'p>(&self, ps: impl IntoIterator<Item = &'p mut P>, threaded: bool) {
        if let Some(cfg) = &self.config.profile {
            for p in ps {
                p.prof = Some(Box::new(MProf::new(cfg, self.config.seed, p.id, threaded)));
            }
        }
    }

    /// The profile every P's M has recorded so far, if profiling.
    pub fn profile<'p>(&self, ps: impl IntoIterator<Item = &'p P>) -> Option<crate::Profile> {
        self.config.profile?;
        let mut total = crate::Profile::default();
        for p in ps {
            if let Some(m) = &p.prof {
                total.add(m.profile());
            }
        }
        Some(total)
    }

    /// Sends a profiling signal to P `id`'s M (the threaded engine's profiler thread).
    pub fn signal_p(&self, id: usize) {
        self.sigpending.set(id);
    }

    /// Drops P `id`'s pending profiling signal: its thread slept through it. `ITIMER_PROF` counts
    /// CPU time, so a thread that is not running is not signalled.
    pub fn clear_sigpending(&self, id: usize) {
        self.sigpending.clear(id);
    }

    /// Takes P `id`'s pending profiling signal, if any.
    #[inline]
    pub(crate) fn take_sigpending(&self, id: usize) -> bool {
        self.sigpending.take(id)
    }

    /// A boundary of `p`'s own loop outside the mutator (sweeping, marking, idle): a pending
    /// signal finds its M on g0.
    #[inline]
    pub fn sig_boundary_system(&self, p: &mut P) {
        self.sig_boundary(&mut p.prof, p.id, MState::Scheduler, None, Where::Scheduler);
    }
}
