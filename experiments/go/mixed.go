// mixed, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// A seeded blend of the other workloads' goroutines, plus churn: each goroutine is, by a draw
// from the run's seed, one of deep-oscillate's oscillators, deep-unwind's unwinders, adversarial's
// hiders (all at depth D), many-shallow's servers (at D clamped to 2..12, blocking between the
// poller's requests, none of them busy) or a spawner (at about D/4), which works near the top of
// its stack and, at one in 200 of its operations, spawns a short-lived goroutine that calls down
// 2 to 15 frames, works 20 to 199 operations and exits, returning all the way or by
// runtime.Goexit — the testbed's workload of the same name, so stacks are created, freed and
// reused while the collector runs. Part of the ports' program (main.go: -workload=mixed).
package main

import (
	"math/rand"
	"runtime"
)

const (
	spawnPer       = 200 // a spawner spawns at one in this many of its operations
	shortLivedDeep = 15  // the deepest a spawned goroutine calls
)

// mixedPick draws each goroutine's kind, in the order main starts them.
var mixedPick *rand.Rand

// startMixed starts goroutine i of a run as the kind its draw names.
func startMixed(i int, p params) {
	if i == 0 {
		mixedPick = rand.New(rand.NewSource(p.seed ^ 0x6d6978656400))
	}
	switch mixedPick.Intn(5) {
	case 0:
		startOscillator(i, p)
	case 1:
		startUnwinder(i, p)
	case 2:
		shallow := p
		shallow.depth, shallow.running = p.depth, 0
		if shallow.depth > 12 {
			shallow.depth = 12
		}
		startServer(i, shallow)
	case 3:
		startHider(i, p)
	default:
		w := &spawner{heapMix: newHeapMix(p.seed, i), depth: p.depth / 4}
		if w.depth < 2 {
			w.depth = 2
		}
		go func() {
			w.start()
			w.frame(1)
		}()
	}
}

// spawner is a goroutine that works at its depth and spawns short-lived goroutines.
type spawner struct {
	heapMix
	depth int
}

// frame is one frame of the spawner's stack: below its depth it calls the next; at its depth it
// works for ever, calling one frame deeper now and then.
//
//go:noinline
func (w *spawner) frame(d int) {
	var l [8]*node
	var pad [16]uintptr // the testbed's frames are 32 to 512 bytes
	pad[d%16] = uintptr(d)
	if d < w.depth {
		w.frame(d + 1)
		sink = l[pad[0]%8]
		return
	}
	for {
		switch r := w.rng.Intn(spawnPer); {
		case r == 0:
			c := &shortLived{
				heapMix: heapMix{rng: rand.New(rand.NewSource(w.rng.Int63())), own: w.own, hide: w.hide},
				depth:   2 + w.rng.Intn(shortLivedDeep-1),
				ops:     20 + w.rng.Intn(180),
			}
			go c.frame(1)
		case r < spawnPer*14/100:
			w.top(&l)
		default:
			w.heapOp(&l)
		}
	}
}

// top is the frame a spawner calls into and returns from.
//
//go:noinline
func (w *spawner) top(up *[8]*node) {
	var l [8]*node
	for i := w.rng.Intn(4); i >= 0; i-- {
		w.heapOp(&l)
	}
	up[w.rng.Intn(8)] = l[w.rng.Intn(8)]
}

// shortLived is a spawned goroutine: it calls down to its depth, works, and exits.
type shortLived struct {
	heapMix
	depth, ops int
}

// frame is one frame of a short-lived goroutine's stack.
//
//go:noinline
func (w *shortLived) frame(d int) {
	var l [8]*node
	var pad [16]uintptr
	pad[d%16] = uintptr(d)
	if d < w.depth {
		w.frame(d + 1)
		sink = l[pad[0]%8]
		return
	}
	for ; w.ops > 0; w.ops-- {
		w.heapOp(&l)
	}
	if w.rng.Intn(2) == 0 {
		runtime.Goexit()
	}
	sink = l[pad[0]%8]
}
