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
// scheduler's time slice takes a P away from a goroutine. The program runs for -seconds and
// exits; run it with GODEBUG=gctrace=1 to see each cycle's pauses.
//
// Build with the heap mix it shares: go build -o adversarial heapmix.go adversarial.go
// Written for every Go from 1.5 on: standard library only, nothing newer than Go 1.5's.
package main

import (
	"flag"
	"os"
	"runtime"
)

const (
	// A goroutine wanders between depths D-below and D+above.
	above, below = 4, 16
	// minDepth is the shallowest stack the workload builds.
	minDepth = 2
)

// worker is one goroutine: its heap mix, the depth it builds, and whether it has built it once.
type worker struct {
	heapMix
	depth int
	built bool
}

// call calls the frame at depth d; a panic unwinding to d-1 (the caller) stops here.
//
//go:noinline
func (w *worker) call(d int, up callers) {
	defer recoverTo(d - 1)
	w.frame(d, up)
}

// frame is one frame of the walk at depth d, `up` the locals of the frames that called it.
//
//go:noinline
func (w *worker) frame(d int, up callers) {
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

func main() {
	goroutines := flag.Int("goroutines", 64, "goroutines")
	depth := flag.Int("depth", 1000, "frames each goroutine builds")
	seconds := flag.Float64("seconds", 5, "how long to run")
	seed := flag.Int64("seed", 1, "seed")
	flag.Parse()
	if *goroutines < 1 || *depth < minDepth {
		os.Stderr.WriteString("adversarial: -goroutines must be at least 1 and -depth at least 2\n")
		os.Exit(2)
	}
	endAfter(*seconds)
	makeGlobals(*goroutines)
	for i := 0; i < *goroutines; i++ {
		w := &worker{heapMix: newHeapMix(*seed, i), depth: *depth}
		w.hide = 35
		go func() {
			w.start()
			for {
				w.call(1, callers{})
			}
		}()
	}
	waitForEnd()
}
