// deep-oscillate, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// G goroutines each recurse to depth D through frames that keep 8 pointer locals, yield once
// (runtime.Gosched, so that every goroutine builds its deep stack early), then oscillate within
// the 3 innermost frames for ever: calls and returns, allocations of 32-byte nodes with two
// pointer fields, field loads and stores, global loads and stores, and the hiding pattern (load
// a heap pointer into a local, then delete it from the heap) — the testbed's workload of the
// same name, operation for operation in its proportions. Only the scheduler's time slice takes a
// P away from a goroutine. Part of the ports' program (main.go: -workload=deep-oscillate).
package main

import "runtime"

// oscillateFrames is how many frames at the top of its stack an oscillator moves within.
const oscillateFrames = 3

// oscillator is one goroutine: its heap mix and the depth it recurses to.
type oscillator struct {
	heapMix
	depth int
}

// frame is one frame of the recursion: it builds the stack down to w.depth, then oscillates.
// It returns when the oscillation takes it back above its bottom.
//
//go:noinline
func (w *oscillator) frame(d int, built *bool) {
	var l [8]*node
	var pad [16]uintptr // the testbed's frames are 32 to 256 bytes
	pad[d%16] = uintptr(d)
	bottom := w.depth - oscillateFrames
	for {
		if !*built {
			if d < w.depth {
				if w.rng.Intn(10) < 3 {
					w.heapOp(&l)
				}
				w.frame(d+1, built)
				continue
			}
			*built = true
			runtime.Gosched()
		}
		switch r := w.rng.Intn(100); {
		case r < 30 && d > bottom:
			sink = l[pad[0]%8]
			return
		case r < 30:
			w.frame(d+1, built)
		case r < 55 && d < w.depth:
			w.frame(d+1, built)
		case r < 55:
			sink = l[pad[0]%8]
			return
		default:
			w.heapOp(&l)
		}
	}
}

// startOscillator starts goroutine i of a run.
func startOscillator(i int, p params) {
	w := &oscillator{heapMix: newHeapMix(p.seed, i), depth: p.depth}
	go func() {
		w.start()
		for {
			built := false
			w.frame(1, &built)
		}
	}()
}
