// What every Go port shares: the testbed's types and globals; the heap mix its workloads mix into their work — allocations,
// field loads and stores, global loads and stores, local copies and clears, and the hiding
// pattern (load a heap pointer into a local, then delete it from the heap), in the testbed's
// proportions; stores into a caller's frame and recovered panics (callers, upStore, recoverTo);
// and how a run ends (endAfter, waitForEnd). Standard library only, nothing newer than Go 1.5's.
package main

import (
	"math/rand"
	"os"
	"time"
)

// deadline is when the run ends; checkEvery is how many heap operations a goroutine does between
// two looks at the clock.
var deadline time.Time

const checkEvery = 4096

// endAfter sets the deadline `seconds` from now; main calls it before it starts a goroutine.
func endAfter(seconds float64) {
	deadline = time.Now().Add(time.Duration(seconds * float64(time.Second)))
}

// waitForEnd ends the program at the deadline: main sleeps until then, and, because a Go
// scheduler may leave a woken main queued behind dozens of CPU-bound goroutines for many time
// slices (a 2-second run of 64 deep goroutines took 7 to 28 s under Go 1.19), every goroutine's
// heap mix also looks at the clock every checkEvery operations and ends the program once it is
// past.
func waitForEnd() {
	time.Sleep(deadline.Sub(time.Now()))
	os.Exit(0)
}

// node is the testbed's `node` type: 4 words, pointer fields 0 and 1.
type node struct {
	left, right *node
	a, b        uintptr
}

// leaf and table are the testbed's other two types: 2 words without pointers, and 64 words with a
// pointer in every eighth.
type leaf [2]uintptr

type table [8]struct {
	p   *node
	pad [7]uintptr
}

// globals: two per goroutine and 8 shared, as the testbed's workloads have.
var globals []*node

// sink keeps a frame's locals observable, so the compiler keeps them in the frame.
var sink *node

// heapMix is a goroutine's source of heap operations: its random stream, its own globals, the
// percent of its operations that hide an object (8, the testbed's; adversarial's is 35), its
// operation count, and the last leaf and table it made (a frame's locals hold only *node, so
// these are kept beside them until the next replaces them).
type heapMix struct {
	rng   *rand.Rand
	own   int
	hide  int
	ops   int
	leaf  *leaf
	table *table
}

// liveSets holds two more globals per goroutine, apart from the heap mix's: copy-heavy's live
// set.
var liveSets []*node

// makeGlobals makes the globals of a run of `goroutines` goroutines.
func makeGlobals(goroutines int) {
	globals = make([]*node, 2*goroutines+8)
	liveSets = make([]*node, 2*goroutines)
}

// newHeapMix is goroutine i's heap mix in a run seeded with seed: its own random stream and its
// own two globals.
func newHeapMix(seed int64, i int) heapMix {
	return heapMix{rng: rand.New(rand.NewSource(seed*7919 + int64(i))), own: 2 * i, hide: 8}
}

// start makes the goroutine's root object in its first global, on its own stack, as the
// testbed's goroutines begin.
func (m *heapMix) start() {
	globals[m.own] = &node{}
}

// global is a global's index: 80 % of the time one of the goroutine's own two.
func (m *heapMix) global() int {
	if m.rng.Intn(10) < 8 {
		return m.own + m.rng.Intn(2)
	}
	return m.rng.Intn(len(globals))
}

// heapOp is one operation of the testbed's heap mix on the frame's locals. A hiding percent above
// 8 takes its rolls from the operations after it, as the testbed's does.
//
//go:noinline
func (w *heapMix) heapOp(l *[8]*node) {
	if w.ops++; w.ops%checkEvery == 0 && time.Now().After(deadline) {
		os.Exit(0)
	}
	a, b, c := w.rng.Intn(8), w.rng.Intn(8), w.rng.Intn(8)
	roll := w.rng.Intn(100)
	switch {
	case roll < w.hide: // hide: dst = obj.field; obj.field = nil
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
	case roll < 74:
		l[a] = l[b] // a local copy
	case roll < 78:
		l[a] = nil
	case roll < 84:
		l[a], w.leaf = nil, new(leaf)
	case roll < 86:
		l[a], w.table = nil, new(table)
	default: // obj.field = nil
		if o := l[a]; o != nil {
			if w.rng.Intn(2) == 0 {
				o.left = nil
			} else {
				o.right = nil
			}
		}
	}
}

// callers holds the locals of the (up to) 8 frames that called a frame, its caller first.
// Passed by value, it lets a frame store into its callers' locals without making any frame's
// locals escape to the heap.
type callers [8]*[8]*node

// with is what a frame holding locals l passes to the frames it calls.
func (c callers) with(l *[8]*node) callers {
	// Element by element: a slice of c (copy) would make every frame's locals escape.
	return callers{l, c[0], c[1], c[2], c[3], c[4], c[5], c[6]}
}

// upStore is the testbed's store through &local: one of the frame's locals stored into a slot
// of one of the maxUp frames that called it (the frame at depth d has d-1 callers). It does
// nothing and says so at depth 1.
func (w *heapMix) upStore(l *[8]*node, up callers, d, maxUp int) bool {
	if d < 2 {
		return false
	}
	if maxUp > d-1 {
		maxUp = d - 1
	}
	a := w.rng.Intn(8)
	up[w.rng.Intn(maxUp)][w.rng.Intn(8)] = l[(a+1+w.rng.Intn(7))%8]
	return true
}

// unwind is what a recovered panic carries: the depth of the frame that recovers it.
type unwind struct{ to int }

// recoverTo, deferred by a frame at depth `depth` around a call, stops a panic that unwinds to
// it and lets every other panic go on.
func recoverTo(depth int) {
	if r := recover(); r != nil {
		if u, ok := r.(unwind); !ok || u.to != depth {
			panic(r)
		}
	}
}
