// many-shallow, ported to Go for a live peer of the stkbar testbed (see README.md there).
//
// A server: G goroutines each build a stack of D frames that keep 8 pointer locals. The first
// `running` (default 4) are busy workers that work near the top of their stacks for ever — heap
// mutation, the hiding pattern, calls and returns between D−1 and D frames — and never block.
// Every other goroutine is a server that blocks on its own channel (waiting for a request); a
// poller goroutine wakes random servers at -wakes-per-ms per millisecond, and each woken server
// runs a burst of heap work (a length drawn from 1..2·burst, mean about -burst operations) near
// the top of its stack and blocks again — the testbed's workload of the same name. The program
// runs for -seconds and exits; run it with GODEBUG=gctrace=1 to see each cycle's pauses.
//
// Build with the heap mix it shares: go build -o many_shallow heapmix.go many_shallow.go
// Written for every Go from 1.5 on: standard library only, nothing newer than Go 1.5's.
package main

import (
	"flag"
	"math/rand"
	"os"
	"time"
)

// worker is one goroutine: its heap mix, its depth, whether it is a busy worker, and, for a
// server, its mean burst and the channel its requests arrive on.
type worker struct {
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
func (w *worker) frame(d int) {
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
func (w *worker) top(d int) {
	var l [8]*node
	var pad [16]uintptr
	pad[d%16] = uintptr(d)
	for i := w.rng.Intn(4); i >= 0; i-- {
		w.heapOp(&l)
	}
	sink = l[pad[0]%8]
}

func main() {
	goroutines := flag.Int("goroutines", 10000, "goroutines")
	depth := flag.Int("depth", 10, "frames of each goroutine's stack")
	running := flag.Int("running", 4, "busy workers among them, which never block")
	burst := flag.Int("burst", 20, "mean operations a woken server runs")
	wakesPerMs := flag.Float64("wakes-per-ms", 10, "servers the poller wakes per millisecond")
	seconds := flag.Float64("seconds", 5, "how long to run")
	seed := flag.Int64("seed", 1, "seed")
	flag.Parse()
	if *goroutines < 1 || *depth < 2 || *burst < 1 || *wakesPerMs < 0 {
		os.Stderr.WriteString("many_shallow: -goroutines ≥ 1, -depth ≥ 2, -burst ≥ 1, -wakes-per-ms ≥ 0\n")
		os.Exit(2)
	}
	endAfter(*seconds)
	makeGlobals(*goroutines)
	servers := make([]*worker, 0, *goroutines)
	for i := 0; i < *goroutines; i++ {
		w := &worker{
			heapMix: newHeapMix(*seed, i),
			depth:   *depth,
			busy:    i < *running,
			burst:   *burst,
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
	// The poller: every millisecond, wake that millisecond's share of random servers (a wake
	// that finds its server already woken is lost, as a request to a busy server queues).
	if len(servers) > 0 && *wakesPerMs > 0 {
		go func() {
			rng := rand.New(rand.NewSource(*seed))
			owed := 0.0
			for range time.Tick(time.Millisecond) {
				for owed += *wakesPerMs; owed >= 1; owed-- {
					select {
					case servers[rng.Intn(len(servers))].wakeup <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	waitForEnd()
}
