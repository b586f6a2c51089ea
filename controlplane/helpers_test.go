package controlplane_test

import (
	"io"
	"log/slog"
	"net/netip"
	"runtime"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
