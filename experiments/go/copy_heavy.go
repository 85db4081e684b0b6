// copy-heavy, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// Stacks that grow and shrink under the collector, so that Go's copystack moves stacks while
// the collector runs (and, in a runtime with stack barriers, moves stacks that carry them). Each
// of G goroutines goes round four phases, each of a seeded length, as the testbed's workload of
// the same name does:
//
//  1. Grow: recurse, nine calls in ten through large frames (512 B to 2 KiB), to a depth drawn
//     from [D/2, D] (the first time, D), a heap operation in one step of ten on the way; the
//     first time, yield once (runtime.Gosched), so that every goroutine builds its stack early.
//  2. Work for 50 to 400 steps within the 3 innermost frames: calls and returns, stores through
//     a pointer into one of the 3 frames that called the frame, the shared heap mix.
//  3. Return to a depth of 3 to 6 frames, frame by frame (a heap operation now and then), or, one
//     time in four, at once by a panic recovered there.
//  4. Shallow: work there for 200 to 1,500 steps, where the collector's scan finds a stack that
//     uses less than a quarter of itself and halves it; the next Grow outgrows it again.
//
// Each goroutine also keeps a live set, so the concurrent mark lasts: 1,024 nodes in two chains
// hung from two globals of its own, renewed by one heap operation in a hundred (a node pushed;
// a full chain makes the goroutine drop the other and refill it). Only the scheduler's time
// slice takes a P away from a goroutine. The program runs for -seconds and exits; run it with
// GODEBUG=gctrace=1 to see each cycle's pauses.
// Part of the ports' program (main.go: -workload=copy-heavy).
package main

import "runtime"

const (
	growOscillation = 3                             // frames the Work phase oscillates over below its target
	shallowLo       = 3                             // the Shallow phase's depth is drawn from [shallowLo, shallowHi)
	shallowHi       = 7                             // (exclusive)
	growMinDepth    = 2*shallowHi + growOscillation // the shallowest D copy-heavy runs at
	retained        = 1024                          // nodes in a goroutine's live set, across its two chains
	retainPercent   = 1                             // percent of Work and Shallow heap operations that push a node
)

type phase int

const (
	grow phase = iota
	work
	back
	shallow
)

// What a frame does after a step.
type action int

const (
	stay      action = iota // take another step
	callSmall               // call a frame of 64 to 256 bytes
	callLarge               // call a frame of 512 bytes to 2 KiB
	ret                     // return
)

// grower is one goroutine: its heap mix, its live set, and where it is in its round.
type grower struct {
	heapMix
	depth   int
	phase   phase
	target  int // Grow and Work: the depth grown to
	to      int // Return and Shallow: the depth returned to
	left    int // Work and Shallow: steps left
	built   bool
	chains  [2]int // the live set's globals in liveSets
	filling int    // the chain being filled
	length  int    // nodes in it
}

// padSink keeps a frame's padding observable, so the compiler keeps it in the frame.
var padSink uintptr

// retain pushes a node onto the chain being filled, first dropping the other when it is full.
func (w *grower) retain() {
	if w.length >= retained/2 {
		w.filling ^= 1
		w.length = 0
		liveSets[w.chains[w.filling]] = nil
	}
	w.length++
	g := w.chains[w.filling]
	liveSets[g] = &node{left: liveSets[g]}
}

// heapOp is a heap operation of the Work and Shallow phases, now and then one that retains.
func (w *grower) heapOp(l *[8]*node) {
	if w.rng.Intn(100) < retainPercent {
		w.retain()
		return
	}
	w.heapMix.heapOp(l)
}

// call calls a frame at depth d, a large one if `large`. A call from a frame a Return may
// unwind to (above depth shallowHi) catches the panic that unwinds to its caller; deeper calls
// catch nothing, so a panic passes every deep frame at once.
func (w *grower) call(d int, up callers, large bool) {
	if d <= shallowHi {
		w.catching(d, up, large)
	} else {
		w.sized(d, up, large)
	}
}

// catching calls the frame at depth d; a panic unwinding to d-1 (the caller) stops here.
//
//go:noinline
func (w *grower) catching(d int, up callers, large bool) {
	defer recoverTo(d - 1)
	w.sized(d, up, large)
}

// sized calls the frame at depth d: one of the two small sizes, or one of the three large.
func (w *grower) sized(d int, up callers, large bool) {
	switch {
	case !large && w.rng.Intn(2) == 0:
		w.frame64(d, up)
	case !large:
		w.frame256(d, up)
	case w.rng.Intn(3) == 0:
		w.frame512(d, up)
	case w.rng.Intn(2) == 0:
		w.frame1k(d, up)
	default:
		w.frame2k(d, up)
	}
}

// The program's frames, by size: each keeps its padding in its frame and runs the loop.

//go:noinline
func (w *grower) frame64(d int, up callers) {
	var pad [4]uintptr
	pad[d%4] = uintptr(d)
	w.loop(d, up)
	padSink = pad[0]
}

//go:noinline
func (w *grower) frame256(d int, up callers) {
	var pad [28]uintptr
	pad[d%28] = uintptr(d)
	w.loop(d, up)
	padSink = pad[0]
}

//go:noinline
func (w *grower) frame512(d int, up callers) {
	var pad [60]uintptr
	pad[d%60] = uintptr(d)
	w.loop(d, up)
	padSink = pad[0]
}

//go:noinline
func (w *grower) frame1k(d int, up callers) {
	var pad [124]uintptr
	pad[d%124] = uintptr(d)
	w.loop(d, up)
	padSink = pad[0]
}

//go:noinline
func (w *grower) frame2k(d int, up callers) {
	var pad [252]uintptr
	pad[d%252] = uintptr(d)
	w.loop(d, up)
	padSink = pad[0]
}

// loop is the body of the frame at depth d: its 8 pointer locals and its steps, until one says
// to return.
//
//go:noinline
func (w *grower) loop(d int, up callers) {
	var l [8]*node
	mine := up.with(&l)
	for {
		switch w.step(d, &l, up) {
		case callSmall:
			w.call(d+1, mine, false)
		case callLarge:
			w.call(d+1, mine, true)
		case ret:
			sink = l[0]
			return
		}
	}
}

// step takes the goroutine's next step at depth d, on the frame's locals, and says what the frame
// does next.
func (w *grower) step(d int, l *[8]*node, up callers) action {
	for {
		switch w.phase {
		case grow:
			if d < w.target {
				if d > 1 && w.rng.Intn(10) == 0 {
					w.heapMix.heapOp(l)
					return stay
				}
				if w.rng.Intn(100) < 90 {
					return callLarge
				}
				return callSmall
			}
			w.phase, w.left = work, 50+w.rng.Intn(350)
			if !w.built {
				w.built = true
				runtime.Gosched()
				return stay
			}
		case work:
			if w.left == 0 {
				w.to = shallowLo + w.rng.Intn(shallowHi-shallowLo)
				if w.rng.Intn(4) == 0 {
					// A recovered panic back to the outermost frames.
					w.phase, w.left = shallow, 200+w.rng.Intn(1300)
					panic(unwind{to: w.to})
				}
				w.phase = back
				continue
			}
			w.left--
			switch r := w.rng.Intn(100); {
			case r < 25 && d > w.target-growOscillation:
				return ret
			case r < 50 && d < w.target:
				return w.call50()
			case r < 50:
				return ret
			case r < 54 && w.upStore(l, up, d, 3):
			default:
				w.heapOp(l)
			}
			return stay
		case back:
			if d > w.to {
				if w.rng.Intn(10) == 0 {
					w.heapMix.heapOp(l)
					return stay
				}
				return ret
			}
			w.phase, w.left = shallow, 200+w.rng.Intn(1300)
		case shallow:
			if w.left == 0 {
				least := w.depth / 2
				if least < shallowHi+growOscillation {
					least = shallowHi + growOscillation
				}
				w.phase, w.target = grow, least+w.rng.Intn(w.depth-least+1)
				continue
			}
			w.left--
			switch r := w.rng.Intn(100); {
			case r < 15 && d >= w.to:
				return ret
			case r < 30 && d <= w.to:
				return w.call50()
			case r < 30:
				return ret
			case r < 34 && w.upStore(l, up, d, 2):
			default:
				w.heapOp(l)
			}
			return stay
		}
	}
}

// call50 is a call to a large frame half the time.
func (w *grower) call50() action {
	if w.rng.Intn(2) == 0 {
		return callLarge
	}
	return callSmall
}

// startGrower starts goroutine i of a run: its live set first, then its rounds.
func startGrower(i int, p params) {
	w := &grower{
		heapMix: newHeapMix(p.seed, i),
		depth:   p.depth,
		target:  p.depth,
		chains:  [2]int{2 * i, 2*i + 1},
	}
	go func() {
		w.start()
		for n := 0; n < retained; n++ {
			w.retain()
		}
		for {
			w.call(1, callers{}, true)
		}
	}()
}
