// The Go ports of the stkbar testbed's workloads, for a live peer (see README.md there): one
// program, built from every file here (`go build -o stkbar-ports *.go`), that runs the workload
// -workload names with -goroutines goroutines of depth -depth for -seconds and exits; run it with
// GODEBUG=gctrace=1 to see each cycle's pauses. Each workload's file defines its goroutines and
// a start function; main checks the flags, makes the globals, starts the goroutines (and the
// network poller, where a workload has servers) and ends the run at its deadline.
// Written for every Go from 1.5 on: standard library only, nothing newer than Go 1.5's.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
)

// params are what a start function needs besides the goroutine's number.
type params struct {
	seed    int64
	depth   int
	running int // many-shallow: busy workers among the first goroutines
	burst   int // servers: mean operations per request
}

// A workload: the shallowest depth it runs at, and how goroutine i of a run starts.
type workload struct {
	minDepth int
	start    func(i int, p params)
}

var workloads = map[string]workload{
	"deep-oscillate": {oscillateFrames + 1, startOscillator},
	"deep-unwind":    {4, startUnwinder},
	"many-shallow":   {2, startServer},
	"copy-heavy":     {growMinDepth, startGrower},
	"adversarial":    {2, startHider},
	"mixed":          {4, startMixed},
}

func main() {
	name := flag.String("workload", "deep-oscillate", "the workload to run")
	goroutines := flag.Int("goroutines", 64, "goroutines")
	depth := flag.Int("depth", 1000, "frames each goroutine builds (the deepest, for copy-heavy)")
	running := flag.Int("running", 4, "many-shallow: busy workers among the goroutines, which never block")
	burst := flag.Int("burst", 20, "many-shallow and mixed: mean operations a woken server runs")
	wakesPerMs := flag.Float64("wakes-per-ms", 10, "many-shallow and mixed: servers the poller wakes per millisecond")
	seconds := flag.Float64("seconds", 5, "how long to run")
	seed := flag.Int64("seed", 1, "seed")
	flag.Parse()
	w, ok := workloads[*name]
	if !ok {
		var names []string
		for n := range workloads {
			names = append(names, n)
		}
		sort.Strings(names)
		fail("-workload %q is not one of %v", *name, names)
	}
	switch {
	case *goroutines < 1:
		fail("-goroutines must be at least 1")
	case *depth < w.minDepth:
		fail("-depth must be at least %d for %s", w.minDepth, *name)
	case *burst < 1 || *wakesPerMs < 0 || *running < 0 || !(*seconds > 0):
		fail("-burst must be at least 1, -running, -wakes-per-ms and -seconds not negative, -seconds above 0")
	}
	endAfter(*seconds)
	makeGlobals(*goroutines)
	p := params{seed: *seed, depth: *depth, running: *running, burst: *burst}
	for i := 0; i < *goroutines; i++ {
		w.start(i, p)
	}
	startPoller(*seed, *wakesPerMs)
	waitForEnd()
}

// fail reports bad flags in one line and exits 2.
func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "stkbar-ports: "+format+"\n", args...)
	os.Exit(2)
}
