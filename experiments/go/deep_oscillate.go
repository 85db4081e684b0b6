// deep-oscillate, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// G goroutines each recurse to depth D through frames that keep 8 pointer locals, yield once
// (runtime.Gosched, so that every goroutine builds its deep stack early), then oscillate within
// the 3 innermost frames for ever: calls and returns, allocations of 32-byte nodes with two
// pointer fields, field loads and stores, global loads and stores, and the hiding pattern (load
// a heap pointer into a local, then delete it from the heap) — the testbed's workload of the
// same name, operation for operation in its proportions. Only the scheduler's time slice takes a
// P away from a goroutine. The program runs for -seconds and exits; run it with
// GODEBUG=gctrace=1 to see each cycle's pauses.
//
// Build with the heap mix it shares: go build -o deep_oscillate heapmix.go deep_oscillate.go
// Written for every Go from 1.5 on: standard library only, nothing newer than Go 1.5's.
package main

import (
	"flag"
	"os"
	"runtime"
)

const oscillation = 3

// worker is one goroutine: its heap mix and the depth it recurses to.
type worker struct {
	heapMix
	depth int
}

// frame is one frame of the recursion: it builds the stack down to w.depth, then oscillates.
// It returns when the oscillation takes it back above its bottom.
//
//go:noinline
func (w *worker) frame(d int, built *bool) {
	var l [8]*node
	var pad [16]uintptr // the testbed's frames are 32 to 256 bytes
	pad[d%16] = uintptr(d)
	bottom := w.depth - oscillation
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

func main() {
	goroutines := flag.Int("goroutines", 64, "goroutines")
	depth := flag.Int("depth", 1000, "frames each goroutine recurses to")
	seconds := flag.Float64("seconds", 5, "how long to run")
	seed := flag.Int64("seed", 1, "seed")
	flag.Parse()
	if *goroutines < 1 || *depth < oscillation+1 {
		os.Stderr.WriteString("deep_oscillate: -goroutines must be at least 1 and -depth at least 4\n")
		os.Exit(2)
	}
	endAfter(*seconds)
	makeGlobals(*goroutines)
	for i := 0; i < *goroutines; i++ {
		w := &worker{heapMix: newHeapMix(*seed, i), depth: *depth}
		go func() {
			w.start()
			for {
				built := false
				w.frame(1, &built)
			}
		}()
	}
	waitForEnd()
}
