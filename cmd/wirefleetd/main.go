// Command wirefleetd is the wirefleet platform: REST API, gateway, platform
// services and monitor in one process.
//
// Not built yet: this binary only reports what exists so far, so that nothing
// pretends to be a platform before it is one.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `wirefleetd — the wirefleet platform (API, gateway, services, monitor).

Usage: wirefleetd [flags]

Status: not built yet. The WireGuard engine (package engine) exists; the
control plane, the gateway and the platform services are still to come.
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	fmt.Fprintln(os.Stderr, "wirefleetd: the platform is not built yet (engine only); see README.md for the status.")
	os.Exit(2)
}
