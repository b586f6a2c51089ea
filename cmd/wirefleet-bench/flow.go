// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/services/platform"
)

// One TCP flow between a device and a service: the device connects and
// says 'u' (it sends, the service counts and, at the device's EOF,
// answers the count) or 'd' (the service sends until the device closes).
// The same code serves behind both hubs — on our gateway's in-tunnel
// stack as a platform service, behind a wireguard-go hub on the kernel's
// TCP (the "kernel TCP sink") — so only the stack differs.

const (
	flowCommand = "tcp-flow" // hidden: the device's side, in its namespace
	sinkCommand = "tcp-sink" // hidden: the service behind a baseline hub
	flowPort    = 5201
)

// flowAddr is the bench service's platform address on our gateway.
var flowAddr = netip.MustParseAddr("100.127.0.250")

// serveFlows answers flows on l until it is closed.
func serveFlows(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go serveFlow(c)
	}
}

func serveFlow(c net.Conn) {
	defer c.Close()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case 'u':
		n, _ := io.Copy(io.Discard, c)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		c.Write(b[:])
	case 'd':
		buf := make([]byte, 128<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
}

// flowService is the flow server as one of our gateway's platform
// services.
type flowService struct {
	mu sync.Mutex
	ls []net.Listener
}

func (s *flowService) Addrs() []netip.Addr { return []netip.Addr{flowAddr} }

func (s *flowService) Start(h platform.Host) error {
	ls, _, err := h.Listen(flowAddr, []uint16{flowPort}, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ls = ls
	s.mu.Unlock()
	for _, l := range ls {
		go serveFlows(l)
	}
	return nil
}

func (s *flowService) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.ls {
		l.Close()
	}
	return nil
}

var _ platform.Service = (*flowService)(nil)

// runSink is the hidden tcp-sink command: serveFlows on the kernel's TCP.
func runSink(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: wirefleet-bench %s ADDR:PORT\n", sinkCommand)
		return 2
	}
	l, err := net.Listen("tcp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	serveFlows(l)
	return 0
}

type flowResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// runFlow is the hidden tcp-flow command: u|d ADDR:PORT DURATION, the
// result as JSON on stdout.
func runFlow(args []string) int {
	if len(args) != 3 || (args[0] != "u" && args[0] != "d") {
		fmt.Fprintf(os.Stderr, "usage: wirefleet-bench %s u|d ADDR:PORT DURATION\n", flowCommand)
		return 2
	}
	d, err := time.ParseDuration(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := flow(args[0][0], args[1], d)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcp-flow:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

func flow(mode byte, addr string, d time.Duration) (flowResult, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return flowResult{}, err
	}
	defer c.Close()
	if _, err := c.Write([]byte{mode}); err != nil {
		return flowResult{}, err
	}
	start := time.Now()
	buf := make([]byte, 128<<10)
	if mode == 'd' {
		var n int64
		c.SetReadDeadline(start.Add(d))
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return flowResult{Bytes: n, Seconds: time.Since(start).Seconds()}, nil
				}
				return flowResult{}, err
			}
		}
	}
	c.SetWriteDeadline(start.Add(d))
	for {
		if _, err := c.Write(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return flowResult{}, err
			}
			break
		}
	}
	// What the service received, counted at its end, over the time until
	// it told us (the data still in flight at the deadline included).
	c.SetWriteDeadline(time.Time{})
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return flowResult{}, fmt.Errorf("the service's count: %w", err)
	}
	return flowResult{Bytes: int64(binary.BigEndian.Uint64(b[:])), Seconds: time.Since(start).Seconds()}, nil
}
