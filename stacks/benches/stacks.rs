//! Benchmarks of the stack machinery, with the ARCHITECTURE.md §6 targets they answer to:
//! * `scan/pointer_dense_1MiB/*` — scanning a 1 MiB stack whose frames are all pointer slots
//!   (target ≥ 4 GB/s), for three frame sizes, since per-frame work (unwinding) and per-slot work
//!   (visiting) trade places as frames grow;
//! * `install/10000_frames/*` — a concurrent scan that installs barriers on a 10,000-frame stack
//!   without pointer slots, per barrier installed (target ≤ 10 ns), walk included;
//! * `ret/*` — a return through a barrier against a plain return, and the trampoline's hit
//!   handler alone (target ≤ 5 ns per hit);
//! * `copystack/1MiB` — moving a 1 MiB stack with in-stack pointers and barriers (GB/s);
//! * `findfunc` — PC lookups over a 1,000-function program (ns each).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitvec::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stacks::code::FuncSpec;
use stacks::{
    Call, FuncId, GStack, Pc, Program, RandomProgram, Ret, ScanKind, StackBarrierMode, StackPool,
    WORD, scanstack,
};

const MIB: usize = 1 << 20;

/// A program of one function per frame size, all-pointer or pointer-free.
fn program(frame_sizes: &[usize], pointers: bool) -> Program {
    let mut b = Program::builder();
    for &size in frame_sizes {
        let words = size / WORD;
        let mut ptr_map = bitvec![u64, Lsb0; usize::from(pointers); words];
        ptr_map.set(words - 1, false);
        b = b.func(FuncSpec {
            name: format!("main.f{size}"),
            frame_size: size,
            ptr_map,
            call_sites: 1,
        });
    }
    b.build().unwrap()
}

/// A goroutine with `frames` calls of `func`, on a stack of `alloc` bytes.
fn goroutine(
    prog: &Program,
    pool: &mut StackPool,
    alloc: usize,
    func: FuncId,
    frames: usize,
) -> GStack {
    let mut gs = GStack::new(1, pool.stackalloc(alloc).unwrap(), prog);
    for _ in 0..frames {
        assert_eq!(gs.call(prog, func, 0).unwrap(), Call::Pushed);
    }
    gs
}

fn bench_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan/pointer_dense_1MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    for frame_size in [64usize, 512, 4096] {
        let prog = program(&[frame_size], true);
        let mut pool = StackPool::new(StackBarrierMode::GO);
        let func = prog.user_func(0).unwrap();
        let mut gs = goroutine(&prog, &mut pool, 2 * MIB, func, MIB / frame_size);
        // Heap-looking pointers in every slot.
        let frames: Vec<_> = gs.frames(&prog).map(Result::unwrap).collect();
        for fr in &frames {
            for a in (fr.sp.0..fr.lr_slot().0).step_by(WORD) {
                gs.write(stacks::Addr(a), 0xc0_0000_0000 + a % MIB as u64)
                    .unwrap();
            }
        }
        assert_eq!(gs.used(), MIB);
        g.bench_function(
            BenchmarkId::from_parameter(format!("{frame_size}B_frames")),
            |b| {
                b.iter(|| {
                    let mut sum = 0u64;
                    scanstack(&prog, &mut gs, ScanKind::Whole, |_, v| {
                        sum = sum.wrapping_add(v)
                    })
                    .unwrap();
                    black_box(sum)
                })
            },
        );
    }
    g.finish();
}

fn bench_install(c: &mut Criterion) {
    let mut g = c.benchmark_group("install/10000_frames");
    let prog = program(&[32], false);
    let func = prog.user_func(0).unwrap();
    for mode in [StackBarrierMode::EVERY_FRAME, StackBarrierMode::GO] {
        let mut pool = StackPool::new(mode);
        let mut gs = goroutine(&prog, &mut pool, MIB, func, 10_000);
        let installed = scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {})
            .unwrap()
            .barriers_installed;
        g.throughput(Throughput::Elements(installed as u64));
        g.bench_function(
            BenchmarkId::from_parameter(format!("offset_{mode}_{installed}_barriers")),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        gs.remove_stack_barriers(&prog).unwrap();
                        let t = Instant::now();
                        let n = scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
                        total += t.elapsed();
                        black_box(n);
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

fn bench_ret(c: &mut Criterion) {
    const FRAMES: usize = 10_000;
    let mut g = c.benchmark_group("ret");
    // Timed: the returns of frames 1 to FRAMES - 2, each through a barrier in every-frame mode.
    // Frame 0, the running one at the scan, has none and returns untimed; the outermost frame
    // stays.
    g.throughput(Throughput::Elements(FRAMES as u64 - 2));
    let prog = program(&[32], false);
    let func = prog.user_func(0).unwrap();
    for (name, barriers) in [("plain", false), ("through_barrier", true)] {
        let mode = StackBarrierMode::EVERY_FRAME;
        let mut pool = StackPool::new(mode);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut gs = goroutine(&prog, &mut pool, MIB, func, FRAMES);
                    if barriers {
                        scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
                    }
                    let r = gs.ret(&prog).unwrap();
                    debug_assert_eq!(r, Ret::Returned { hit_barrier: false });
                    let t = Instant::now();
                    for _ in 2..FRAMES {
                        let r = gs.ret(&prog).unwrap();
                        debug_assert_eq!(
                            r,
                            Ret::Returned {
                                hit_barrier: barriers
                            }
                        );
                    }
                    total += t.elapsed();
                    black_box(gs.counters());
                    pool.stackfree(gs.into_stack());
                }
                total
            })
        });
    }
    // The trampoline's handler alone, for each of the 9,999 barriers (frames 1 to 9,999) in order.
    // (The handler does not pop frames, so each round needs a fresh goroutine.)
    let mode = StackBarrierMode::EVERY_FRAME;
    let mut pool = StackPool::new(mode);
    g.throughput(Throughput::Elements(FRAMES as u64 - 1));
    g.bench_function("stack_barrier_hit_handler", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut gs = goroutine(&prog, &mut pool, MIB, func, FRAMES);
                scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
                let sps: Vec<_> = gs.stkbar().map(|bar| bar.saved_lr_ptr.add(WORD)).collect();
                let t = Instant::now();
                for &sp in &sps {
                    black_box(gs.stack_barrier_hit(sp).unwrap());
                }
                total += t.elapsed();
                pool.stackfree(gs.into_stack());
            }
            total
        })
    });
    g.finish();
}

fn bench_copystack(c: &mut Criterion) {
    let mut g = c.benchmark_group("copystack");
    g.throughput(Throughput::Bytes(MIB as u64));
    let prog = Program::random(
        1,
        &RandomProgram {
            funcs: 64,
            max_frame_size: 1024,
            ..Default::default()
        },
    )
    .unwrap();
    let mode = StackBarrierMode::GO;
    let mut pool = StackPool::new(mode);
    let mut gs = GStack::new(1, pool.stackalloc(2 * MIB).unwrap(), &prog);
    let mut i = 0;
    while gs.used() < MIB - 1024 {
        assert_eq!(
            gs.call(&prog, prog.user_func(i).unwrap(), 0).unwrap(),
            Call::Pushed
        );
        // Point slot 0 of every other frame at the frame above, where it is a pointer slot.
        let f = prog.func(gs.current_func(&prog).unwrap().unwrap());
        if i % 2 == 1 && f.ptr_map[0] {
            let above = gs.sp().add(f.frame_size);
            gs.write_local(&prog, 0, above.0).unwrap();
        }
        i += 1;
    }
    scanstack(&prog, &mut gs, ScanKind::Mark(mode), |_, _| {}).unwrap();
    let mut size = 2 * MIB;
    g.bench_function("1MiB", |b| {
        b.iter(|| {
            size = if size == 2 * MIB { 4 * MIB } else { 2 * MIB };
            gs.copystack(&mut pool, &prog, size).unwrap();
        })
    });
    g.finish();
}

fn bench_findfunc(c: &mut Criterion) {
    let prog = Program::random(
        3,
        &RandomProgram {
            funcs: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let last = prog.funcs().last().unwrap();
    let (lo, hi) = (prog.funcs()[0].entry.0, last.entry.0 + last.len);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let pcs: Vec<Pc> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Pc(lo + x % (hi - lo))
        })
        .collect();
    let mut g = c.benchmark_group("findfunc");
    g.throughput(Throughput::Elements(pcs.len() as u64));
    g.bench_function("random_pcs_1000_funcs", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for &pc in &pcs {
                found += usize::from(prog.findfunc(black_box(pc)).is_some());
            }
            black_box(found)
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_scan,
    bench_install,
    bench_ret,
    bench_copystack,
    bench_findfunc
);
criterion_main!(benches);
