//! The sampling profiler: signals in proportion to CPU time, landing at any micro-operation
//! boundary of a running M, and a handler (Go's `sigprof`) that unwinds the stack the M is on
//! whenever its registers make sense, under Go 1.7's rules or, for the historical comparison,
//! seed 003's.
//!
//! Invariant: under either rule set (`go1.7`, `seed003`) the handler never unwinds a stack whose
//! registers or barriers are half updated, so every traceback it records is exactly the frames of
//! the stack it walked — the interrupted goroutine's, or the M's system stack (g0) — up to
//! [`ProfileConfig::max_frames`]; a sample it cannot take safely is recorded as `System`. With
//! `validate`, every traceback, goroutine or g0, is compared with frames kept apart from stack
//! memory (the interpreter's for a goroutine, the M's [`G0Stack::frames`] for g0), and a mismatch
//! or an unwinder error counts as `malformed`.
//!
//! The machine. Each P's thread is its M. An M's registers are `g` (its current goroutine, or g0),
//! SP and PC. Running a goroutine, they are its `g` and its gobuf's SP and PC ([`MState::User`]).
//! On g0 ([`MState::G0`]) the M runs runtime code whose frames its [`G0Stack`] holds: the scheduler
//! (`mstart;schedule`, or `mcall;park_m;schedule` after a goroutine blocks), and, on the
//! goroutine's own M, every operation that holds its stack-barrier lock — a self-scan
//! (`morestack;newstack;scanstack`), stack growth (`morestack;newstack;copystack`), a recovered
//! panic's unwind (`mcall;recovery;gcUnwindBarriers`), a bulk write's unwind
//! (`mstart;systemstack;heapBitsBulkBarrier.func1;gcUnwindBarriers`) and the barrier pass of an
//! exiting goroutine (`mcall;goexit0;gfput`) — as Go runs them. A switch between the two sides goes
//! through a function that sets SP (`gogo`, `mcall`, `morestack`, `systemstack`) and changes g and
//! SP one store at a time ([`MState::Switch`]; `gogo` also has a boundary after its PC moved in).
//! A signal is handled at the M's next boundary: before every interpreter operation and before
//! every switch to g0 (the runtime code that calls it runs on the goroutine's stack), between the
//! stores of a switch, between the stores of a stack-barrier install, hit or removal and inside a
//! stack move (`stacks::signal`), and when the scheduler has found a goroutine to run. An idle M
//! takes no signals: `ITIMER_PROF` counts CPU time. Under the deterministic engine a seeded
//! countdown of boundaries raises the signal (uniform over `1..2·period`); under the threaded
//! engine a profiler thread sets the pending flag of a random P that is on a CPU.
//!
//! The handler. Under `go1.7` (Go 1.7's `sigprof`) it records `System` only when SP is outside the
//! stack of the goroutine g names (g is never nil here), when PC is inside a function that sets SP,
//! or when g is the M's goroutine and its stack-barrier lock is held; otherwise it unwinds g's
//! stack. A PC inside the `stackBarrier` trampoline is unwound through `gentraceback`'s fix-up; a
//! sample on g0 is a g0 traceback that stops at the top of g0 (g0 carries no barriers; Go's
//! `_TraceJumpStack` continues onto the goroutine only from a `systemstack` frame and only when
//! `sigprof` could take the goroutine's lock, and the one `systemstack` call here, the bulk
//! write's, holds that lock throughout, so Go would stop there too). Under `seed003`
//! (seed 003's 2013 rule and the stack-barrier refusals this testbed first added) it unwinds only
//! when g is the M's user goroutine, SP lies within its stack, PC is not inside `gogo` nor
//! `stackBarrier`, and the lock can be taken. Under `none` it unwinds whenever g is not g0, as Go
//! did before seed 003; the malformed samples it then records are what the rules prevent.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde::Serialize;
use stacks::{
    Addr, FuncId, FuncKind, G0Stack, GStack, MidOp, Pc, Program, RuntimeFn, Signals, g0traceback,
    gentraceback,
};

use crate::mutator::Rng;
use crate::nowb::nowritebarrier;
use crate::runtime::Runtime;
use crate::sched::{GIndex, P};

/// Go's `maxCPUProfStack`: frames one sample keeps.
pub const MAX_CPU_PROF_STACK: usize = 64;

/// The rules the signal handler follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ProfileRules {
    /// Go 1.7's `sigprof` (the default).
    #[serde(rename = "go1.7")]
    Go17,
    /// Seed 003's 2013 rule plus this testbed's first stack-barrier refusals (historical).
    #[serde(rename = "seed003")]
    Seed003,
    /// No consistency checks: Go before seed 003.
    #[serde(rename = "none")]
    None,
}

impl ProfileRules {
    /// Every rule set, in the order results list them.
    pub const ALL: [ProfileRules; 3] = [
        ProfileRules::Go17,
        ProfileRules::Seed003,
        ProfileRules::None,
    ];

    /// Its name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            ProfileRules::Go17 => "go1.7",
            ProfileRules::Seed003 => "seed003",
            ProfileRules::None => "none",
        }
    }

    /// Whether the rules check the registers before unwinding (`go1.7`, `seed003`): their
    /// tracebacks must never be malformed.
    pub fn checked(self) -> bool {
        self != ProfileRules::None
    }
}

impl fmt::Display for ProfileRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProfileRules {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProfileRules::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("unknown profiler rules `{s}` (expected go1.7, seed003 or none)")
            })
    }
}

/// How the profiler runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProfileConfig {
    /// The handler's rules.
    pub rules: ProfileRules,
    /// Deterministic engine: mean micro-operation boundaries between two signals to an M.
    pub period: u64,
    /// Threaded engine: mean time between two signals from the profiler thread.
    #[serde(serialize_with = "serialize_micros")]
    pub interval: Duration,
    /// Frames a sample keeps.
    pub max_frames: usize,
    /// Keep every goroutine's and every g0's true frames and check each traceback against them.
    pub validate: bool,
}

fn serialize_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e6)
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            rules: ProfileRules::Go17,
            period: 64,
            interval: Duration::from_micros(100),
            max_frames: MAX_CPU_PROF_STACK,
            validate: true,
        }
    }
}

/// Where an M's registers stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MState {
    /// Running its current goroutine: g is it, SP and PC are its gobuf's.
    User,
    /// On g0: g is g0, SP and PC are its [`G0Stack`]'s.
    G0,
    /// Inside `via` (`gogo`, `mcall`, `morestack` or `systemstack`), switching from the goroutine
    /// to g0 (`to_g0`) or back, with `stores` of its register stores done: g first, then SP; the
    /// PC leaving `via` ends the switch. The PC is `via`'s entry plus `8·stores`.
    Switch {
        /// The switch function.
        via: FuncId,
        /// Towards g0, or towards the goroutine.
        to_g0: bool,
        /// 0: only the PC has moved into `via`; 1: g is set; 2: SP is set too.
        stores: u8,
    },
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
    /// The registers of an M in state `state`, whose g0 stack is `g0` and whose current goroutine
    /// is `curg` with stack `gs`.
    pub fn of(
        prog: &Program,
        state: MState,
        g0: &G0Stack,
        curg: Option<(GIndex, &GStack)>,
    ) -> Regs {
        let on_g0 = Regs {
            g: None,
            sp: g0.sp(),
            pc: g0.pc(),
        };
        let Some((g, gs)) = curg else {
            return on_g0;
        };
        let on_user = Regs {
            g: Some(g),
            sp: gs.sp(),
            pc: gs.pc(),
        };
        match state {
            MState::User => on_user,
            MState::G0 => on_g0,
            MState::Switch { via, to_g0, stores } => {
                let (from, to) = if to_g0 {
                    (on_user, on_g0)
                } else {
                    (on_g0, on_user)
                };
                Regs {
                    g: if stores >= 1 { to.g } else { from.g },
                    sp: if stores >= 2 { to.sp } else { from.sp },
                    pc: prog.func(via).entry.add(8 * u64::from(stores)),
                }
            }
        }
    }
}

/// Where a signal landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    /// Before an interpreter operation.
    Op,
    /// Inside a switch between a goroutine and g0.
    Switch,
    /// Inside a stack-barrier operation or a stack move of the M's goroutine, on whichever stack
    /// the M is.
    Stack(MidOp),
    /// In the scheduler, on g0.
    Scheduler,
}

/// Why a sample was recorded as `System`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    G0,
    SpOutsideStack,
    SetsSp,
    PcInStackBarrier,
    StkbarLock,
}

/// What the samples were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SampleCounts {
    /// Signals handled.
    pub samples: u64,
    /// Samples unwound into a goroutine traceback.
    pub user_samples: u64,
    /// Samples unwound into a g0 traceback (runtime frames).
    pub g0_samples: u64,
    /// Samples recorded as `System`.
    pub system_samples: u64,
    /// Samples taken inside a switch (`gogo`, `mcall`, `morestack`, `systemstack`).
    pub samples_mid_switch: u64,
    /// Samples taken inside a stack-barrier install, hit or removal.
    pub samples_mid_barrier: u64,
    /// Samples taken inside a stack move.
    pub samples_mid_copystack: u64,
    /// Samples taken while the M was on g0 (the scheduler, or runtime work for its goroutine).
    pub samples_on_g0: u64,
    /// Tracebacks that failed or differ from the true frames.
    pub malformed: u64,
    /// Malformed samples taken inside a switch.
    pub malformed_mid_switch: u64,
    /// Malformed samples taken inside a stack-barrier operation.
    pub malformed_mid_barrier: u64,
    /// Tracebacks compared with the true frames.
    pub validated: u64,
    /// Samples taken inside a switch that were unwound (0 under `go1.7` and `seed003`).
    pub unwound_mid_switch: u64,
    /// Samples taken inside a stack-barrier operation whose goroutine stack was unwound: under
    /// `go1.7`, the mid-hit samples `gentraceback`'s fix-up unwinds.
    pub unwound_mid_barrier: u64,
    /// System samples because g was g0 (`seed003`, `none`).
    pub refused_g0: u64,
    /// System samples because SP was outside g's stack.
    pub refused_sp: u64,
    /// System samples because PC was inside a function that sets SP (`seed003`: `gogo` only).
    pub refused_sets_sp: u64,
    /// System samples because PC was inside `stackBarrier` (`seed003`).
    pub refused_stack_barrier_pc: u64,
    /// System samples because the goroutine's stack-barrier lock was held.
    pub refused_stkbar_lock: u64,
}

impl SampleCounts {
    /// Adds another set of counts.
    pub fn add(&mut self, o: &SampleCounts) {
        let SampleCounts {
            samples,
            user_samples,
            g0_samples,
            system_samples,
            samples_mid_switch,
            samples_mid_barrier,
            samples_mid_copystack,
            samples_on_g0,
            malformed,
            malformed_mid_switch,
            malformed_mid_barrier,
            validated,
            unwound_mid_switch,
            unwound_mid_barrier,
            refused_g0,
            refused_sp,
            refused_sets_sp,
            refused_stack_barrier_pc,
            refused_stkbar_lock,
        } = o;
        self.samples += samples;
        self.user_samples += user_samples;
        self.g0_samples += g0_samples;
        self.system_samples += system_samples;
        self.samples_mid_switch += samples_mid_switch;
        self.samples_mid_barrier += samples_mid_barrier;
        self.samples_mid_copystack += samples_mid_copystack;
        self.samples_on_g0 += samples_on_g0;
        self.malformed += malformed;
        self.malformed_mid_switch += malformed_mid_switch;
        self.malformed_mid_barrier += malformed_mid_barrier;
        self.validated += validated;
        self.unwound_mid_switch += unwound_mid_switch;
        self.unwound_mid_barrier += unwound_mid_barrier;
        self.refused_g0 += refused_g0;
        self.refused_sp += refused_sp;
        self.refused_sets_sp += refused_sets_sp;
        self.refused_stack_barrier_pc += refused_stack_barrier_pc;
        self.refused_stkbar_lock += refused_stkbar_lock;
    }

    fn refused(&mut self, why: Refusal) {
        self.system_samples += 1;
        *match why {
            Refusal::G0 => &mut self.refused_g0,
            Refusal::SpOutsideStack => &mut self.refused_sp,
            Refusal::SetsSp => &mut self.refused_sets_sp,
            Refusal::PcInStackBarrier => &mut self.refused_stack_barrier_pc,
            Refusal::StkbarLock => &mut self.refused_stkbar_lock,
        } += 1;
    }
}

/// One recorded stack, for the folded profile.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SampleStack {
    /// A traceback of a goroutine stack or of g0, outermost frame first.
    Traceback(Box<[FuncId]>),
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
                    SampleStack::Traceback(fs) if fs.is_empty() => vec!["runtime.goexit"],
                    SampleStack::Traceback(fs) => fs.iter().map(name).collect(),
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

/// An M's profiler state, kept in its P: its signal source, its profile, and the registers and
/// system stack the handler reads (kept only while profiling: nothing else needs them).
#[derive(Debug)]
pub struct MProf {
    source: SignalSource,
    profile: Profile,
    frames: Vec<FuncId>,
    /// Where the M's registers stand.
    pub(crate) m: MState,
    /// The M's system stack.
    pub(crate) g0: G0Stack,
}

impl MProf {
    /// The profiler state of P `id`'s M, in the scheduler on a fresh g0 (`mstart;schedule`): a
    /// seeded countdown, or the profiler thread's flag.
    pub fn new(
        config: &ProfileConfig,
        prog: &Program,
        seed: u64,
        id: usize,
        threaded: bool,
    ) -> MProf {
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
        let mut g0 = G0Stack::new(prog, id);
        g0.call(prog, prog.schedule());
        MProf {
            source,
            profile: Profile::default(),
            frames: Vec::with_capacity(config.max_frames),
            m: MState::G0,
            g0,
        }
    }

    /// The profile so far.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Where the M's registers stand.
    pub fn state(&self) -> MState {
        self.m
    }

    /// The M's system stack.
    pub fn g0(&self) -> &G0Stack {
        &self.g0
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

impl<'a> Curg<'a> {
    /// Goroutine `index`, whose state is `st`.
    #[inline]
    pub(crate) fn of(index: GIndex, st: &'a crate::sched::GState) -> Curg<'a> {
        Curg {
            index,
            gs: &st.gs,
            true_frames: &st.true_frames,
        }
    }
}

/// How an M enters g0 on behalf of its goroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum G0Entry {
    /// `mcall(fn)`: the goroutine's state is saved and `fn` runs on g0 (blocking, yielding,
    /// exiting, `recovery`).
    Mcall,
    /// A failed stack-guard check: `morestack` calls `newstack` on g0 (growth, a self-scan, a
    /// preemption).
    Morestack,
    /// `systemstack(fn)`: `fn` runs on g0 and the goroutine resumes after it.
    Systemstack,
}

impl Runtime {
    /// A micro-operation boundary of P `p_id`'s M: takes a pending signal, if any, and runs the
    /// handler. `curg` is the M's goroutine, if it has one.
    #[inline]
    pub(crate) fn sig_boundary(
        &self,
        prof: &mut Option<Box<MProf>>,
        p_id: usize,
        curg: Option<Curg<'_>>,
        at: Where,
    ) {
        if let Some(prof) = prof.as_deref_mut()
            && prof.take_signal(self, p_id)
        {
            self.sigprof(prof, curg, at);
        }
    }

    /// The M of `p` leaves goroutine `curg` for g0 through `entry`, then calls `frames` there.
    /// The runtime code that calls the switch (`gopark`, `Gosched`, a prologue's stack check,
    /// `heapBitsBulkBarrier`) runs on the goroutine's stack: a boundary there, as the goroutine;
    /// then one after each store of the switch. Nothing unless profiling.
    pub(crate) fn enter_g0(&self, p: &mut P, curg: Curg<'_>, entry: G0Entry, frames: &[RuntimeFn]) {
        if p.prof.is_none() {
            return;
        }
        self.sig_boundary(&mut p.prof, p.id, Some(curg), Where::Op);
        let Some(prof) = p.prof.as_deref_mut() else {
            return;
        };
        let _nowb = nowritebarrier("enter_g0");
        let prog = &self.prog;
        let via = match entry {
            G0Entry::Mcall => prog.mcall(),
            G0Entry::Morestack => prog.morestack(),
            G0Entry::Systemstack => prog.runtime_fn(RuntimeFn::Systemstack),
        };
        if entry == G0Entry::Systemstack {
            // systemstack makes it look as if mstart called it, to stop a traceback there.
            prof.g0.enter(prog, prog.runtime_fn(RuntimeFn::Mstart));
            prof.g0.call(prog, via);
        } else {
            prof.g0.enter(prog, via);
        }
        self.switch_m(p, curg, via, true, 1..=2);
        for &f in frames {
            self.g0_call(p, prog.runtime_fn(f));
        }
    }

    /// The runtime function running on `p`'s g0 calls `f`. Nothing unless profiling.
    pub(crate) fn g0_call(&self, p: &mut P, f: FuncId) {
        if let Some(prof) = p.prof.as_deref_mut() {
            prof.g0.call(&self.prog, f);
        }
    }

    /// The innermost runtime function on `p`'s g0 returns. Nothing unless profiling.
    pub(crate) fn g0_ret(&self, p: &mut P) {
        if let Some(prof) = p.prof.as_deref_mut() {
            prof.g0.ret(&self.prog);
        }
    }

    /// `p`'s M switches from g0 to goroutine `curg` through `gogo` (g, then SP, then the PC: a
    /// boundary once the PC is inside `gogo` and after each store but the last), as the
    /// scheduler, `newstack` and `recovery` end. Nothing unless profiling.
    pub(crate) fn gogo_switch(&self, p: &mut P, curg: Curg<'_>) {
        self.switch_m(p, curg, self.prog.gogo(), false, 0..=2);
    }

    /// `p`'s M returns from a `systemstack` call to goroutine `curg` (a boundary after it
    /// restores g; SP next, then the return). Nothing unless profiling.
    pub(crate) fn systemstack_return(&self, p: &mut P, curg: Curg<'_>) {
        let via = self.prog.runtime_fn(RuntimeFn::Systemstack);
        self.switch_m(p, curg, via, false, 1..=1);
    }

    /// `p`'s M goes through switch function `via` towards g0 (`to_g0`) or towards goroutine
    /// `curg`, a signal boundary after each of `steps` (the register stores done, see
    /// [`MState::Switch`]); it ends on the other side. Nothing unless profiling.
    fn switch_m(
        &self,
        p: &mut P,
        curg: Curg<'_>,
        via: FuncId,
        to_g0: bool,
        steps: std::ops::RangeInclusive<u8>,
    ) {
        if p.prof.is_none() {
            return;
        }
        for stores in steps {
            set_m(p, MState::Switch { via, to_g0, stores });
            self.sig_boundary(&mut p.prof, p.id, Some(curg), Where::Switch);
        }
        set_m(p, if to_g0 { MState::G0 } else { MState::User });
    }

    /// `p`'s M is back in the scheduler on a g0 that holds only `mstart`: a goroutine was taken
    /// off it without a switch (a stopped P). Nothing unless profiling.
    pub(crate) fn g0_reset_to_scheduler(&self, p: &mut P) {
        if let Some(prof) = p.prof.as_deref_mut() {
            let prog = &self.prog;
            prof.g0.enter(prog, prog.runtime_fn(RuntimeFn::Mstart));
            prof.g0.call(prog, prog.schedule());
            prof.m = MState::G0;
        }
    }

    /// A boundary in `p`'s scheduler on g0 (between goroutines: it has none, or has just picked
    /// one and not yet switched to it). Only a running M reaches one: an idle P does not call it.
    #[inline]
    pub(crate) fn sig_boundary_scheduler(&self, p: &mut P) {
        self.sig_boundary(&mut p.prof, p.id, None, Where::Scheduler);
    }

    /// The profiling signal handler (Go's `sigprof`).
    #[cold]
    #[inline(never)]
    fn sigprof(&self, prof: &mut MProf, curg: Option<Curg<'_>>, at: Where) {
        let _nowb = nowritebarrier("sigprof");
        let Some(cfg) = self.config.profile else {
            return;
        };
        // A signal inside a barrier operation run on g0 lands in that operation's own frame.
        let op_frame = match (prof.m, at) {
            (MState::G0, Where::Stack(MidOp::BarrierInstall)) => {
                Some(RuntimeFn::GcInstallStackBarrier)
            }
            (MState::G0, Where::Stack(MidOp::BarrierRemove)) => {
                Some(RuntimeFn::GcRemoveStackBarrier)
            }
            _ => None,
        };
        if let Some(f) = op_frame {
            prof.g0.call(&self.prog, self.prog.runtime_fn(f));
        }
        self.sample(prof, &cfg, curg, at);
        if op_frame.is_some() {
            prof.g0.ret(&self.prog);
        }
    }

    /// One sample: the rules' verdict on the registers, then the traceback or `System`.
    fn sample(&self, prof: &mut MProf, cfg: &ProfileConfig, curg: Option<Curg<'_>>, at: Where) {
        let prog = &self.prog;
        let regs = Regs::of(prog, prof.m, &prof.g0, curg.map(|c| (c.index, c.gs)));
        let mid_switch = matches!(prof.m, MState::Switch { .. });
        let mid_barrier = matches!(at, Where::Stack(op) if op.is_barrier());
        let c = &mut prof.profile.counts;
        c.samples += 1;
        c.samples_mid_switch += u64::from(mid_switch);
        c.samples_mid_barrier += u64::from(mid_barrier);
        c.samples_mid_copystack += u64::from(at == Where::Stack(MidOp::CopyStack));
        c.samples_on_g0 += u64::from(prof.m == MState::G0);
        // The stack the g register names: the M's goroutine's, or g0's.
        let target = match (regs.g, curg) {
            (Some(g), Some(cg)) if cg.index == g => Some(cg),
            _ => None,
        };
        let (lo, hi) = match target {
            Some(cg) => (cg.gs.stack().lo(), cg.gs.stack().hi()),
            None => (prof.g0.lo(), prof.g0.hi()),
        };
        let sp_in_stack = regs.sp >= lo && regs.sp <= hi;
        let kind = prog.findfunc(regs.pc).map(|f| prog.func(f).kind);
        let refusal = match cfg.rules {
            ProfileRules::Go17 => {
                if !sp_in_stack {
                    Some(Refusal::SpOutsideStack)
                } else if kind.is_none_or(FuncKind::sets_sp) {
                    Some(Refusal::SetsSp)
                } else {
                    None
                }
            }
            ProfileRules::Seed003 => {
                if target.is_none() {
                    Some(Refusal::G0)
                } else if !sp_in_stack {
                    Some(Refusal::SpOutsideStack)
                } else if kind == Some(FuncKind::Gogo) {
                    Some(Refusal::SetsSp)
                } else if kind == Some(FuncKind::StackBarrier) {
                    Some(Refusal::PcInStackBarrier)
                } else {
                    None
                }
            }
            ProfileRules::None => target.is_none().then_some(Refusal::G0),
        };
        // A goroutine stack is walked under its stack-barrier lock (checked rules only); g0
        // carries no barriers.
        let lock = target
            .filter(|_| refusal.is_none() && cfg.rules.checked())
            .map(|cg| cg.gs.stack_barrier_lock());
        let guard = lock.as_ref().map(|l| l.try_lock());
        let refusal = match guard {
            Some(None) => Some(Refusal::StkbarLock),
            _ => refusal,
        };
        if let Some(why) = refusal {
            c.refused(why);
            let key = SampleStack::System(prog.findfunc(regs.pc));
            *prof.profile.stacks.entry(key).or_default() += 1;
            return;
        }
        // Unwind (Go's gentraceback from the signal's PC and SP).
        let max_frames = cfg.max_frames;
        let frames = &mut prof.frames;
        frames.clear();
        let failed = match target {
            Some(cg) => gentraceback(prog, cg.gs, regs.pc, regs.sp)
                .take(max_frames)
                .map(|fr| fr.map(|fr| frames.push(fr.func)))
                .any(|r| r.is_err()),
            None => g0traceback(prog, &prof.g0, regs.pc, regs.sp)
                .take(max_frames)
                .map(|f| f.map(|f| frames.push(f)))
                .any(|r| r.is_err()),
        };
        drop(guard);
        let truth = match target {
            Some(cg) => cg.true_frames,
            None => prof.g0.frames(),
        };
        let agrees = !cfg.validate
            || frames
                .iter()
                .copied()
                .eq(truth.iter().rev().copied().take(max_frames));
        let c = &mut prof.profile.counts;
        match target {
            Some(_) => c.user_samples += 1,
            None => c.g0_samples += 1,
        }
        c.validated += u64::from(cfg.validate);
        c.unwound_mid_switch += u64::from(mid_switch);
        c.unwound_mid_barrier += u64::from(mid_barrier && target.is_some());
        let mut stack: Vec<FuncId> = frames.iter().rev().copied().collect();
        let key = if failed || !agrees {
            c.malformed += 1;
            c.malformed_mid_switch += u64::from(mid_switch);
            c.malformed_mid_barrier += u64::from(mid_barrier);
            if failed {
                // Go would have recorded the PC's function as the innermost frame.
                stack.extend(prog.findfunc(regs.pc));
            }
            SampleStack::Malformed(stack.into())
        } else {
            SampleStack::Traceback(stack.into())
        };
        *prof.profile.stacks.entry(key).or_default() += 1;
    }
}

/// Sets the state of `p`'s M, while profiling.
fn set_m(p: &mut P, m: MState) {
    if let Some(prof) = p.prof.as_deref_mut() {
        prof.m = m;
    }
}

/// The handler's view inside a stack operation on the M's own goroutine (see `stacks::signal`):
/// a barrier hit on the goroutine's stack, or an install, removal or stack move the M runs on g0
/// for it (the M's state says which).
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
        self.rt
            .sig_boundary(self.prof, self.p_id, Some(curg), Where::Stack(at));
    }
}

impl Runtime {
    /// Gives every P's M a profiler state, if the configuration profiles: a seeded countdown
    /// under the deterministic engine, the profiler thread's flag under the threaded one.
    pub fn start_profiling<'p>(&self, ps: impl IntoIterator<Item = &'p mut P>, threaded: bool) {
        if let Some(cfg) = &self.config.profile {
            for p in ps {
                p.prof = Some(Box::new(MProf::new(
                    cfg,
                    &self.prog,
                    self.config.sched_seed(),
                    p.id,
                    threaded,
                )));
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

    /// Sends a profiling signal to the M of a P drawn uniformly among those whose threads are on
    /// a CPU (the threaded engine's profiler thread; `ITIMER_PROF` counts CPU time, so an idle M
    /// is never signalled). Returns the P, or `None` when every thread sleeps.
    pub fn signal_running_p(&self, rng: &mut Rng) -> Option<usize> {
        let procs = self.gomaxprocs().max(1);
        let running = (0..procs).filter(|&id| self.oncpu.is_set(id)).count();
        if running == 0 {
            return None;
        }
        let k = rng.random_range(0..running);
        let id = (0..procs).filter(|&id| self.oncpu.is_set(id)).nth(k)?;
        self.sigpending.set(id);
        Some(id)
    }

    /// Whether P `id`'s thread is on a CPU: it is about to sleep (`false`: a signal pending for
    /// it is dropped, as a sleeping thread gets none) or has woken (`true`).
    pub fn set_oncpu(&self, id: usize, running: bool) {
        if running {
            self.oncpu.set(id);
        } else {
            self.oncpu.clear(id);
            self.sigpending.clear(id);
        }
    }

    /// Takes P `id`'s pending profiling signal, if any.
    #[inline]
    pub(crate) fn take_sigpending(&self, id: usize) -> bool {
        self.sigpending.take(id)
    }
}
