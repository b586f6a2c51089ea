// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// wggoCommand is the hidden subcommand that makes this binary the latest
// golang.zx2c4.com/wireguard as a process, in the foreground as
// `wireguard-go -f NAME` is: a TUN, the device, the UAPI socket `wg`
// configures it through. The gateway bench runs its baseline hub so, in a
// process of its own whose CPU time it reads.
const wggoCommand = "wireguard-go-latest"

func runWireGuardGo(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: wirefleet-bench %s INTERFACE\n", wggoCommand)
		return 2
	}
	name := args[0]
	tdev, err := tun.CreateTUN(name, device.DefaultMTU)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tun:", err)
		return 1
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "("+name+") "))
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "uapi:", err)
		return 1
	}
	uapi, err := ipc.UAPIListen(name, f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "uapi:", err)
		return 1
	}
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case <-dev.Wait():
	}
	uapi.Close()
	dev.Close()
	return 0
}
