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
// Written for every Go from 1.5 on: standard library only, nothing newer than Go 1.5's.
package main

import (
	"flag"
	"math/rand"
	"os"
	"runtime"
	"time"
)

// node is the testbed's `node` type: 4 words, pointer fields 0 and 1.
type node struct {
	left, right *node
	a, b        uintptr
}

const oscillation = 3

// globals: two per goroutine and 8 shared, as the testbed's workloads.
var globals []*node

var sink *node

type worker struct {
	rng   *rand.Rand
	depth int
	own   int
}

func (w *worker) global() int {
	if w.rng.Intn(10) < 8 {
		return w.own + w.rng.Intn(2)
	}
	return w.rng.Intn(len(globals))
}

// heapOp is one operation of the testbed's heap mix on the frame's locals.
//
//go:noinline
func (w *worker) heapOp(l *[8]*node) {
	a, b, c := w.rng.Intn(8), w.rng.Intn(8), w.rng.Intn(8)
	roll := w.rng.Intn(100)
	switch {
	case roll < 8: // hide: dst = obj.field; obj.field = nil
		if o := l[a]; o != nil {
			if w.rng.Intn(2) == 0 {
				l[c] = o.left
				o.left = nil
			} else {
				l[c] = o.right
				o.right = nil
			}
		}
	case roll < 22:
		l[a] = &node{}
	case roll < 36:
		if o := l[a]; o != nil {
			if w.rng.Intn(2) == 0 {
				o.left = l[b]
			} else {
				o.right = l[b]
			}
		}
	case roll < 52:
		if o := l[a]; o != nil {
			if w.rng.Intn(2) == 0 {
				l[c] = o.left
			} else {
				l[c] = o.right
			}
		}
	case roll < 60:
		l[a] = globals[w.global()]
	case roll < 64:
		globals[w.global()] = l[a]
	default:
		l[a] = l[b] // a local copy
	}
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
	globals = make([]*node, 2**goroutines+8)
	for i := 0; i < *goroutines; i++ {
		w := &worker{rng: rand.New(rand.NewSource(*seed*7919 + int64(i))), depth: *depth, own: 2 * i}
		go func() {
			globals[w.own] = &node{}
			for {
				built := false
				w.frame(1, &built)
			}
		}()
	}
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
}
