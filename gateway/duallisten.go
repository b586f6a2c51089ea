// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net"
	"os"
	"sync"
	"time"
)

// A platform service listens on one IPv4 address and is reached on its
// IPv6 twin too. gVisor's sockets are bound to one address of one family,
// so the stack opens both and hands the service one listener: the service
// code (which indexes its listeners by port) does not change, and the
// remote address it sees is the caller's own, of either family.

// dualListener accepts on two TCP listeners.
type dualListener struct {
	ls     [2]net.Listener
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newDualListener(a, b net.Listener) *dualListener {
	d := &dualListener{ls: [2]net.Listener{a, b}, conns: make(chan net.Conn), closed: make(chan struct{})}
	for _, l := range d.ls {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return // closed: Close closes both
				}
				select {
				case d.conns <- c:
				case <-d.closed:
					c.Close()
					return
				}
			}
		}()
	}
	return d
}

// Accept implements net.Listener.
func (d *dualListener) Accept() (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	case <-d.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: d.Addr(), Err: net.ErrClosed}
	}
}

// Close implements net.Listener.
func (d *dualListener) Close() error {
	var err error
	d.once.Do(func() {
		close(d.closed)
		for _, l := range d.ls {
			if e := l.Close(); err == nil {
				err = e
			}
		}
		d.wg.Wait()
	})
	return err
}

// Addr implements net.Listener: the IPv4 address.
func (d *dualListener) Addr() net.Addr { return d.ls[0].Addr() }

// datagram is one packet read by a dualPacketConn's reader.
type datagram struct {
	b    []byte
	from net.Addr
}

// dualPacketConn reads from two UDP sockets and writes through the one of
// the destination's family. Read deadlines are its own (services set one
// to stop reading at shutdown); write deadlines go to both sockets.
type dualPacketConn struct {
	pcs    [2]net.PacketConn
	in     chan datagram
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu       sync.Mutex
	deadline time.Time
	moved    chan struct{} // closed when the read deadline changes
}

func newDualPacketConn(v4, v6 net.PacketConn) *dualPacketConn {
	d := &dualPacketConn{pcs: [2]net.PacketConn{v4, v6}, in: make(chan datagram, 64), closed: make(chan struct{}), moved: make(chan struct{})}
	for _, pc := range d.pcs {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				select {
				case d.in <- datagram{b: append([]byte(nil), buf[:n]...), from: from}:
				case <-d.closed:
					return
				}
			}
		}()
	}
	return d
}

// ReadFrom implements net.PacketConn.
func (d *dualPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		d.mu.Lock()
		dl, moved := d.deadline, d.moved
		d.mu.Unlock()
		var (
			expired <-chan time.Time
			t       *time.Timer
		)
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return 0, nil, d.opError("read", os.ErrDeadlineExceeded)
			}
			t = time.NewTimer(wait)
			expired = t.C
		}
		var (
			n    int
			from net.Addr
			err  error
			done = true
		)
		select {
		case p := <-d.in:
			n, from = copy(b, p.b), p.from
		case <-d.closed:
			err = d.opError("read", net.ErrClosed)
		case <-expired:
			err = d.opError("read", os.ErrDeadlineExceeded)
		case <-moved:
			done = false
		}
		if t != nil {
			t.Stop()
		}
		if done {
			return n, from, err
		}
	}
}

// WriteTo implements net.PacketConn.
func (d *dualPacketConn) WriteTo(b []byte, to net.Addr) (int, error) {
	pc := d.pcs[0]
	if ua, ok := to.(*net.UDPAddr); ok && ua.IP.To4() == nil {
		pc = d.pcs[1]
	}
	return pc.WriteTo(b, to)
}

// Close implements net.PacketConn.
func (d *dualPacketConn) Close() error {
	var err error
	d.once.Do(func() {
		close(d.closed)
		for _, pc := range d.pcs {
			if e := pc.Close(); err == nil {
				err = e
			}
		}
		d.wg.Wait()
	})
	return err
}

// LocalAddr implements net.PacketConn: the IPv4 address.
func (d *dualPacketConn) LocalAddr() net.Addr { return d.pcs[0].LocalAddr() }

// SetDeadline implements net.PacketConn.
func (d *dualPacketConn) SetDeadline(t time.Time) error {
	d.SetReadDeadline(t)
	return d.SetWriteDeadline(t)
}

// SetReadDeadline implements net.PacketConn.
func (d *dualPacketConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadline = t
	close(d.moved)
	d.moved = make(chan struct{})
	d.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn.
func (d *dualPacketConn) SetWriteDeadline(t time.Time) error {
	for _, pc := range d.pcs {
		if err := pc.SetWriteDeadline(t); err != nil {
			return err
		}
	}
	return nil
}

func (d *dualPacketConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Addr: d.LocalAddr(), Err: err}
}
