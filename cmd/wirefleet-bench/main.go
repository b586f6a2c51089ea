// SPDX-License-Identifier: Apache-2.0

// Command wirefleet-bench measures WireGuard engines side by side on this
// machine with one harness (package enginebench):
//
//	go run ./cmd/wirefleet-bench engine [--json] [--duration 10s] [--peers 10000,100000]
//	go run ./cmd/wirefleet-bench gateway [--json] [--rounds 3] [--duration 5s] [--hubs ours,latest,debian]
//	        [--fleet 10000] [--fleet-hubs ours,latest] [--keepalive 25s] [--idle 30s] [--profile DIR]
//	go run ./cmd/wirefleet-bench cluster [--json] [--nodes 3] [--sims 300000] [--devices 30000]
//	        [--rounds 3] [--duration 5s] [--keepalive 25s] [--idle 30s] [--wirefleetd PATH]
//
// Progress goes to stderr, the table or JSON to stdout. Subjects are listed in
// subjects below; our engine joins as enginebench.Ours.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/internal/enginebench/noiseinit"
	"github.com/wirefleet/wirefleet/internal/enginebench/wfengine"
	"github.com/wirefleet/wirefleet/internal/enginebench/wggo"
)

// subjects are measured in this order: ours, then the baseline.
var subjects = []enginebench.Subject{
	wfengine.Subject{},
	wggo.Subject{},
}

// makers make the handshake initiations replayed at every responder, before
// any is measured. "noise" (our noise package) is the default;
// "wireguard-go" (golang.zx2c4.com/wireguard's initiator) cross-checks it.
var makers = map[string]enginebench.InitiationMaker{
	"noise":        noiseinit.Maker{},
	"wireguard-go": wggo.Initiations{},
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: wirefleet-bench engine [flags]
       wirefleet-bench gateway [flags]
       wirefleet-bench cluster [flags]

engine: compares WireGuard engines in this process over loopback UDP: bulk
throughput, responder handshakes per second, memory per peer and per active
session (each peer count in a fresh child process).

gateway: end to end in network namespaces (root): device-to-device TCP through
wirefleet's gateway and through wireguard-go hubs (the latest and Debian's),
with each hub's CPU-seconds per gigabit; one TCP flow each way to a service on
each hub; and a simulated fleet (10,000 sessions by default) connecting at once
and idling: CPU per connect, idle CPU, memory per session.

cluster: end to end in network namespaces (root, PostgreSQL): several real
wirefleetd nodes on one PostgreSQL with the inter-node mesh, many SIMs in the
store, a simulated fleet spread over the nodes connecting at once (handshakes
per second, CPU and memory per node), then device-to-device TCP on one node
and across two.

`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "engine":
		os.Exit(engine(os.Args[2:]))
	case "gateway":
		os.Exit(gatewayBench(os.Args[2:]))
	case "cluster":
		os.Exit(clusterBench(os.Args[2:]))
	case flowCommand: // hidden: the gateway bench's service flow, device side
		os.Exit(runFlow(os.Args[2:]))
	case sinkCommand: // hidden: the service behind a baseline hub
		os.Exit(runSink(os.Args[2:]))
	case fleetSimCommand: // hidden: the gateway bench's simulated fleet
		os.Exit(runFleetSim(os.Args[2:]))
	case wggoCommand: // hidden: the gateway bench's latest-wireguard-go hub
		os.Exit(runWireGuardGo(os.Args[2:]))
	case enginebench.MemoryChildCommand: // hidden: re-executed by the memory step
		if err := enginebench.RunMemoryChild(subjects, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		usage()
		os.Exit(2)
	}
}

func engine(args []string) int {
	fs := flag.NewFlagSet("engine", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object instead of the table")
	duration := fs.Duration("duration", 9*time.Second, "throughput window per subject, split over the rounds")
	warmup := fs.Duration("warmup", time.Second, "throughput warmup per subject")
	handshakes := fs.Int("handshakes", 30000, "initiations blasted at each subject, split over the rounds")
	rounds := fs.Int("rounds", 3, "throughput and handshake rounds, subjects alternating; the median counts")
	peers := fs.String("peers", "10000,100000", "peer counts of the memory measurement (empty: skip)")
	sessions := fs.Bool("sessions", true, "also measure memory with one handshake completed per peer")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	initiations := fs.String("initiations", "noise", "who makes the handshake initiations: noise or wireguard-go")
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	maker, ok := makers[*initiations]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown --initiations %q\n", *initiations)
		return 2
	}
	var counts []int
	for _, f := range strings.Split(*peers, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bad --peers entry %q\n", f)
			return 2
		}
		counts = append(counts, n)
	}
	o := enginebench.Options{
		Warmup: *warmup, Duration: *duration, Rounds: *rounds, Handshakes: *handshakes, HandshakeMax: 30 * time.Second,
		Peers: counts, Sessions: *sessions, Maker: maker, Progress: os.Stderr,
	}
	if *quiet {
		o.Progress = nil
	}
	rep, err := enginebench.Run(subjects, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wirefleet-bench:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else if err := rep.WriteTable(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, s := range rep.Subjects {
		if len(s.Errors) > 0 {
			return 1
		}
	}
	return 0
}
