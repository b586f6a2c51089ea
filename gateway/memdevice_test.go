// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"fmt"
	"testing"

	"github.com/wirefleet/wirefleet/internal/memtun"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
)

// memDevice starts a standard golang.zx2c4.com/wireguard device with key
// on a channel TUN, its one peer the gateway (gwKey) at 127.0.0.1:port for
// 100.127.0.0/16 and whatever more UAPI lines of that peer extra holds
// (allowed IPs, a keepalive). It is closed when the test ends; closing it
// sooner is fine.
func memDevice(t testing.TB, key wgkey.Private, gwKey wgkey.Public, port uint16, extra string) (*memtun.Chan, *wgdevice.Device) {
	t.Helper()
	tun := memtun.NewChan(1420, 0, 64)
	dev := wgdevice.NewDevice(tun, conn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelError, "dev: "))
	if err := dev.IpcSet(fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nendpoint=127.0.0.1:%d\nallowed_ip=100.127.0.0/16\n%s", key[:], gwKey[:], port, extra)); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	return tun, dev
}
