// deep-unwind, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// G goroutines each recurse to depth D through frames that keep 8 pointer locals (leaving a heap
// operation in three frames of ten on the way down), yield once (runtime.Gosched, so that every
// goroutine builds its deep stack early), then go round for ever: work near the top of the stack
// for 50 to 400 operations — calls and returns one frame deeper, stores through a pointer into
// the frame above, the shared heap mix — then go back to the bottom, half the time by returning
// frame by frame (a heap operation now and then on the way) and half the time all at once, as a
// panic recovered two frames from the bottom does, and recurse again: the testbed's workload of
// the same name. Re-scans must cover most of such a stack. Only the scheduler's time slice takes
// a P away from a goroutine. Part of the ports' program (main.go: -workload=deep-unwind).
package main

import "runtime"

// unwinder is one goroutine: its heap mix, the depth it recurses to, and whether it has built its
// stack once (and yielded).
type unwinder struct {
	heapMix
	depth int
	built bool
}

// base is the second frame from the bottom: a panic from anywhere above unwinds to here.
//
//go:noinline
func (w *unwinder) base() {
	defer recoverTo(2)
	w.frame(3, nil)
}

// frame is one frame of the recursion, `up` the locals of the frame above it: down to w.depth,
// work there, then back up — returning, or by a panic that base recovers.
//
//go:noinline
func (w *unwinder) frame(d int, up *[8]*node) {
	var l [8]*node
	var pad [16]uintptr // the testbed's frames are 32 to 256 bytes
	pad[d%16] = uintptr(d)
	if d < w.depth {
		if w.rng.Intn(10) < 3 {
			w.heapOp(&l)
		}
		w.frame(d+1, &l)
		// On the way up: a heap operation now and then, then return.
		for w.rng.Intn(5) == 0 {
			w.heapOp(&l)
		}
		sink = l[pad[0]%8]
		return
	}
	if !w.built {
		w.built = true
		runtime.Gosched()
	}
	for n := 50 + w.rng.Intn(350); n > 0; n-- {
		switch r := w.rng.Intn(100); {
		case r < 20:
			w.top(d+1, &l)
		case r < 23 && up != nil:
			a, b := w.rng.Intn(8), w.rng.Intn(8)
			up[a] = l[b] // a store through &local into the frame above
		default:
			w.heapOp(&l)
		}
	}
	if w.rng.Intn(2) == 0 {
		panic(unwind{to: 2})
	}
	sink = l[pad[0]%8]
}

// top is a frame the work calls into and returns from.
//
//go:noinline
func (w *unwinder) top(d int, up *[8]*node) {
	var l [8]*node
	var pad [16]uintptr
	pad[d%16] = uintptr(d)
	for i := w.rng.Intn(4); i >= 0; i-- {
		w.heapOp(&l)
	}
	up[w.rng.Intn(8)] = l[w.rng.Intn(8)]
	sink = l[pad[0]%8]
}

// startUnwinder starts goroutine i of a run.
func startUnwinder(i int, p params) {
	w := &unwinder{heapMix: newHeapMix(p.seed, i), depth: p.depth}
	go func() {
		w.start()
		for {
			w.base()
		}
	}()
}
