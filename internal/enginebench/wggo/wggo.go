// SPDX-License-Identifier: Apache-2.0

// Package wggo is the golang.zx2c4.com/wireguard subject of the engine
// benchmark: its device package over conn.NewStdNetBind(), configured through
// its UAPI (IpcSet) exactly as wireguard-go configures itself. It also makes
// handshake initiations with that library's own initiator code.
package wggo

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/internal/memtun"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Subject is golang.zx2c4.com/wireguard as an enginebench.Subject.
type Subject struct{}

// Name returns enginebench.Baseline.
func (Subject) Name() string { return enginebench.Baseline }

// MaxPeers is device.MaxPeers (65,536): the device refuses more.
func (Subject) MaxPeers() int { return device.MaxPeers }

// peersPerIpcSet bounds one UAPI configuration text, so configuring 65,536
// peers does not build a multi-megabyte string at once.
const peersPerIpcSet = 1024

// newDevice creates a silent device on t, listening on a random port once up.
func newDevice(t tun.Device, priv wgkey.Private) (*device.Device, error) {
	d := device.NewDevice(t, conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
	if err := d.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=0\n", hex.EncodeToString(priv[:]))); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// listenPort returns the port an up device listens on.
func listenPort(d *device.Device) (uint16, error) {
	cfg, err := d.IpcGet()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(cfg, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, err := strconv.ParseUint(v, 10, 16)
			return uint16(p), err
		}
	}
	return 0, errors.New("no listen_port in UAPI output")
}

type tunnel struct{ a, b *device.Device }

func (t tunnel) Close() error {
	t.a.Close()
	t.b.Close()
	return nil
}

// NewTunnel starts two devices on loopback peered with each other.
func (Subject) NewTunnel(cfg enginebench.TunnelConfig) (io.Closer, error) {
	ends := []enginebench.TunnelEnd{cfg.A, cfg.B}
	devs := make([]*device.Device, 2)
	ports := make([]uint16, 2)
	for i, e := range ends {
		d, err := newDevice(e.Tun, e.PrivateKey)
		if err == nil {
			err = d.Up()
		}
		if err == nil {
			ports[i], err = listenPort(d)
		}
		if err != nil {
			for _, d := range devs {
				if d != nil {
					d.Close()
				}
			}
			return nil, err
		}
		devs[i] = d
	}
	for i, d := range devs {
		other := ends[1-i]
		conf := fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=%s\n",
			other.PrivateKey.Public().Hex(), ports[1-i], netip.PrefixFrom(other.Inner, 32))
		if err := d.IpcSet(conf); err != nil {
			devs[0].Close()
			devs[1].Close()
			return nil, err
		}
	}
	return tunnel{devs[0], devs[1]}, nil
}

type responder struct {
	d    *device.Device
	port uint16
}

func (r responder) Addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), r.port)
}

func (r responder) Close() error {
	r.d.Close()
	return nil
}

// NewResponder starts a device that knows cfg.Peers (no endpoints: it learns
// them from the initiations).
func (Subject) NewResponder(cfg enginebench.ResponderConfig) (enginebench.Responder, error) {
	if len(cfg.Peers) > device.MaxPeers {
		return nil, fmt.Errorf("wireguard-go holds at most %d peers, %d asked", device.MaxPeers, len(cfg.Peers))
	}
	d, err := newDevice(cfg.Tun, cfg.PrivateKey)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (enginebench.Responder, error) {
		d.Close()
		return nil, err
	}
	if err := d.Up(); err != nil {
		return fail(err)
	}
	port, err := listenPort(d)
	if err != nil {
		return fail(err)
	}
	var b strings.Builder
	for i, p := range cfg.Peers {
		fmt.Fprintf(&b, "public_key=%s\nallowed_ip=%s\n", p.PublicKey.Hex(), p.AllowedIP)
		if (i+1)%peersPerIpcSet == 0 || i == len(cfg.Peers)-1 {
			if err := d.IpcSet(b.String()); err != nil {
				return fail(err)
			}
			b.Reset()
		}
	}
	return responder{d, port}, nil
}

// Initiations makes initiations with golang.zx2c4.com/wireguard's initiator:
// per worker one device (never up, so it opens no socket) with the responder
// as its only peer; for each initiator key, the device's private key is
// switched and one initiation created and MAC'd with the library's cookie
// generator.
type Initiations struct{}

// Initiations implements enginebench.InitiationMaker.
func (Initiations) Initiations(responder wgkey.Public, initiators []enginebench.KeyPair) ([][]byte, error) {
	out := make([][]byte, len(initiators))
	workers := runtime.GOMAXPROCS(0)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	chunk := (len(initiators) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(initiators))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := makeInitiations(responder, initiators[lo:hi], out[lo:hi]); err != nil {
				errOnce.Do(func() { firstErr = err })
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

func makeInitiations(responder wgkey.Public, initiators []enginebench.KeyPair, out [][]byte) error {
	d, err := newDevice(memtun.NewSink(0, 0), initiators[0].Private)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.IpcSet(fmt.Sprintf("public_key=%s\n", responder.Hex())); err != nil {
		return err
	}
	peer := d.LookupPeer(device.NoisePublicKey(responder))
	if peer == nil {
		return errors.New("initiator device lost its peer")
	}
	var macs device.CookieGenerator
	macs.Init(device.NoisePublicKey(responder))
	buf := make([]byte, len(initiators)*device.MessageInitiationSize)
	for i, k := range initiators {
		if err := d.SetPrivateKey(device.NoisePrivateKey(k.Private)); err != nil {
			return err
		}
		msg, err := d.CreateMessageInitiation(peer)
		if err != nil {
			return err
		}
		b := buf[i*device.MessageInitiationSize : (i+1)*device.MessageInitiationSize : (i+1)*device.MessageInitiationSize]
		marshalInitiation(b, msg)
		macs.AddMacs(b)
		out[i] = b
	}
	return nil
}

// marshalInitiation lays msg out as on the wire: little-endian type and sender,
// then the fixed-size fields in order (the library's marshal is unexported).
func marshalInitiation(b []byte, msg *device.MessageInitiation) {
	binary.LittleEndian.PutUint32(b[0:], msg.Type)
	binary.LittleEndian.PutUint32(b[4:], msg.Sender)
	o := 8
	o += copy(b[o:], msg.Ephemeral[:])
	o += copy(b[o:], msg.Static[:])
	o += copy(b[o:], msg.Timestamp[:])
	o += copy(b[o:], msg.MAC1[:])
	copy(b[o:], msg.MAC2[:])
}

var (
	_ enginebench.Subject         = Subject{}
	_ enginebench.InitiationMaker = Initiations{}
)
