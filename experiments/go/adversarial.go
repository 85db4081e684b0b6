// adversarial, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// G goroutines each recurse to depth D through frames that keep 8 pointer locals (a heap
// operation in half the frames on the way down), yield once (runtime.Gosched, so that every
// goroutine builds its deep stack early), then wander for ever between depths D−16 and D+4,
// keeping objects reachable only from their stacks: a heap mix that hides an object (loads a
// heap pointer into a local, then deletes it from the heap) at 35 % of its operations, stores
// through a pointer into one of the 8 frames that called it, and now and then (2 % of its steps) a
// panic that unwinds 2 to 5 frames at once and is recovered there — the testbed's workload of the
// same name, the pattern a re-scan that stops below the frames that changed would miss. Only the
// scheduler's time slice takes a P away from a goroutine. Part of the ports' program (main.go:
// -workload=adversarial).
package main

import "runtime"

const (
	// A goroutine wanders between depths D-below and D+above.
	above, below = 4, 16
)

// hider is one goroutine: its heap mix, the depth it builds, and whether it has built it once.
type hider struct {
	heapMix
	depth int
	built bool
}

// call calls the frame at depth d; a panic unwinding to d-1 (the caller) stops here.
//
//go:noinline
func (w *hider) call(d int, up callers) {
	defer recoverTo(d - 1)
	w.frame(d, up)
}

// frame is one frame of the walk at depth d, `up` the locals of the frames that called it.
//
//go:noinline
func (w *hider) frame(d int, up callers) {
	var l [8]*node
	var pad [16]uintptr // the testbed's frames are 32 to 512 bytes
	pad[d%16] = uintptr(d)
	mine := up.with(&l)
	floor := w.depth - below
	if floor < 1 {
		floor = 1
	}
	for {
		if !w.built {
			if d < w.depth {
				if w.rng.Intn(2) == 0 {
					w.heapOp(&l)
				}
				w.call(d+1, mine)
				continue
			}
			w.built = true
			runtime.Gosched()
		}
		switch r := w.rng.Intn(100); {
		case r < 20 && d > floor, r >= 20 && r < 38 && d >= w.depth+above:
			sink = l[pad[0]%8]
			return
		case r < 38:
			w.call(d+1, mine)
		case r < 48 && w.upStore(&l, up, d, 8):
			// A store through &local into one of the 8 frames that called this one.
		case r >= 48 && r < 50 && d >= 3:
			// Unwind 2 to 5 frames, never the outermost.
			k := 2 + w.rng.Intn(4)
			if k > d-1 {
				k = d - 1
			}
			panic(unwind{to: d - k})
		default:
			w.heapOp(&l)
		}
	}
}

// startHider starts goroutine i of a run.
func startHider(i int, p params) {
	w := &hider{heapMix: newHeapMix(p.seed, i), depth: p.depth}
	w.hide = 35
	go func() {
		w.start()
		for {
			w.call(1, callers{})
		}
	}()
}
