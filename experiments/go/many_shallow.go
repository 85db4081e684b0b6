// many-shallow, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// A server: G goroutines each build a stack of D frames that keep 8 pointer locals. The first
// `running` (default 4) are busy workers that work near the top of their stacks for ever — heap
// mutation, the hiding pattern, calls and returns between D−1 and D frames — and never block.
// Every other goroutine is a server that blocks on its own channel (waiting for a request); a
// poller goroutine wakes random servers at -wakes-per-ms per millisecond, and each woken server
// runs a burst of heap work (a length drawn from 1..2·burst, mean about -burst operations) near
// the top of its stack and blocks again — the testbed's workload of the same name. Part of the
// ports' program (main.go: -workload=many-shallow).
package main

import (
	"math/rand"
	"time"
)

// server is one goroutine: its heap mix, its depth, whether it is a busy worker, and, for a
// server, its mean burst and the channel its requests arrive on.
type server struct {
	heapMix
	depth  int
	busy   bool
	burst  int
	wakeup chan struct{}
}

// frame is one frame of the goroutine's stack: below D it calls the next; at D it works, a busy
// worker for ever, a server in bursts between requests, calling one frame deeper now and then.
//
//go:noinline
func (w *server) frame(d int) {
	var l [8]*node
	var pad [16]uintptr // the testbed's frames are 32 to 256 bytes
	pad[d%16] = uintptr(d)
	if d < w.depth-1 {
		w.frame(d + 1)
		sink = l[pad[0]%8]
		return
	}
	for {
		n := 1 << 30
		if !w.busy {
			<-w.wakeup
			n = 1 + w.rng.Intn(2*w.burst)
		}
		for i := 0; i < n; i++ {
			if d < w.depth && w.rng.Intn(10) == 0 {
				w.top(d + 1)
			} else {
				w.heapOp(&l)
			}
		}
	}
}

// top is the innermost frame a burst calls into and returns from.
//
//go:noinline
func (w *server) top(d int) {
	var l [8]*node
	var pad [16]uintptr
	pad[d%16] = uintptr(d)
	for i := w.rng.Intn(4); i >= 0; i-- {
		w.heapOp(&l)
	}
	sink = l[pad[0]%8]
}

// servers are the goroutines of the run that block between requests, for the poller.
var servers []*server

// startServer starts goroutine i of a run at depth p.depth: a busy worker if i < p.running,
// else a server, registered for the poller.
func startServer(i int, p params) {
	w := &server{
		heapMix: newHeapMix(p.seed, i),
		depth:   p.depth,
		busy:    i < p.running,
		burst:   p.burst,
		wakeup:  make(chan struct{}, 1),
	}
	if !w.busy {
		servers = append(servers, w)
	}
	go func() {
		w.start()
		w.frame(1)
	}()
}

// startPoller wakes random servers at wakesPerMs per millisecond, if there are any: every
// millisecond, that millisecond's share (a wake that finds its server already woken is lost, as a
// request to a busy server queues).
func startPoller(seed int64, wakesPerMs float64) {
	if len(servers) == 0 || wakesPerMs <= 0 {
		return
	}
	go func() {
		rng := rand.New(rand.NewSource(seed))
		owed := 0.0
		for range time.Tick(time.Millisecond) {
			for owed += wakesPerMs; owed >= 1; owed-- {
				select {
				case servers[rng.Intn(len(servers))].wakeup <- struct{}{}:
				default:
				}
			}
		}
	}()
}
