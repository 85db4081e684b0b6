// The heap mix every Go port shares, built into each (`go build -o PROG heapmix.go PROG.go`):
// the testbed's `node` type, its globals, and the operations its workloads mix into their work
// — allocations, field loads and stores, global loads and stores, local copies, and the hiding
// pattern (load a heap pointer into a local, then delete it from the heap) — in the testbed's
// proportions. Standard library only, nothing newer than Go 1.5's.
package main

import "math/rand"

// node is the testbed's `node` type: 4 words, pointer fields 0 and 1.
type node struct {
	left, right *node
	a, b        uintptr
}

// globals: two per goroutine and 8 shared, as the testbed's workloads have.
var globals []*node

// sink keeps a frame's locals observable, so the compiler keeps them in the frame.
var sink *node

// heapMix is a goroutine's source of heap operations: its random stream and its own globals.
type heapMix struct {
	rng *rand.Rand
	own int
}

// makeGlobals makes the globals of a run of `goroutines` goroutines.
func makeGlobals(goroutines int) {
	globals = make([]*node, 2*goroutines+8)
}

// newHeapMix is goroutine i's heap mix in a run seeded with seed: its own random stream and its
// own two globals.
func newHeapMix(seed int64, i int) heapMix {
	return heapMix{rng: rand.New(rand.NewSource(seed*7919 + int64(i))), own: 2 * i}
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

// heapOp is one operation of the testbed's heap mix on the frame's locals.
//
//go:noinline
func (w *heapMix) heapOp(l *[8]*node) {
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
