// SPDX-License-Identifier: Apache-2.0

package fairshare

import (
	"net"
	"net/netip"
	"sync"
)

// KeyFunc names the SIM behind a remote address: two addresses of one SIM
// (its IPv4 and IPv6 ones, the hosts of its LANs) must get one key.
type KeyFunc func(netip.Addr) string

// Listener returns ln with every accepted connection counted against its
// SIM's share. A connection over the share is closed at once and counted;
// Accept goes on with the next.
func (s *Share) Listener(ln net.Listener, key KeyFunc) net.Listener {
	return &listener{Listener: ln, s: s, key: key}
}

type listener struct {
	net.Listener
	s   *Share
	key KeyFunc
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		w, evict, why := l.s.admit(l.key(addrOf(c.RemoteAddr())), c)
		if evict != nil {
			// Its service sees a closed connection and lets go of it;
			// the wrapper's own Close then finds it uncounted.
			evict.Conn.Close()
			l.s.evicted.Add(1)
			l.s.m.evicted.Inc()
		}
		if w == nil {
			l.s.refuse(why)
			c.Close()
			continue
		}
		return w, nil
	}
}

// conn is a connection counted in a share.
type conn struct {
	net.Conn
	acct    *Account
	counted bool // guarded by acct.s.mu
	once    sync.Once
}

// Close implements net.Conn and gives the slot back.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		s := c.acct.s
		s.mu.Lock()
		s.drop(c)
		s.mu.Unlock()
	})
	return err
}

// NetConn returns the connection inside, as tls.Conn's does.
func (c *conn) NetConn() net.Conn { return c.Conn }

// ConnAccount returns the account a connection accepted through a share's
// Listener is counted in, looking through wrappers that have a NetConn
// method (as tls.Conn has); nil for any other connection.
func ConnAccount(c net.Conn) *Account {
	for c != nil {
		switch w := c.(type) {
		case *conn:
			return w.acct
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// PacketConn returns pc with every datagram read taking a request token
// of its sender's SIM: a datagram over the SIM's rate is dropped and
// counted, and ReadFrom goes on with the next.
func (s *Share) PacketConn(pc net.PacketConn, key KeyFunc) net.PacketConn {
	return &packetConn{PacketConn: pc, s: s, key: key}
}

type packetConn struct {
	net.PacketConn
	s   *Share
	key KeyFunc
}

// ReadFrom implements net.PacketConn.
func (p *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := p.PacketConn.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		if ok, _ := p.account(from).Request(); ok {
			return n, from, nil
		}
	}
}

func (p *packetConn) account(from net.Addr) *Account {
	return p.s.Account(p.key(addrOf(from)))
}

// PacketAccount returns the account of the sender of a datagram read
// from a share's PacketConn; nil for any other packet conn.
func PacketAccount(pc net.PacketConn, from net.Addr) *Account {
	if p, ok := pc.(*packetConn); ok {
		return p.account(from)
	}
	return nil
}

// addrOf returns the IP address of a TCP or UDP address.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
