// SPDX-License-Identifier: Apache-2.0

package udpbind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

const (
	// batchSize is how many datagrams a read or a write handles.
	batchSize = conn.IdealBatchSize
	// maxSegments is the kernel's bound on the datagrams of one GRO read
	// or GSO write (UDP_MAX_SEGMENTS).
	maxSegments = 64
	// maxCoalesced bounds a GSO write's bytes (an IPv4 UDP payload).
	maxCoalesced = 65507
	// socketBuffer is the receive and send buffer asked of the kernel:
	// bursts from thousands of devices land between two reads.
	socketBuffer = 7 << 20
	// oobSize holds PKTINFO (IPv6's is the larger, 40 bytes with its
	// header) and a GRO or GSO size (24), with room to spare: a control
	// message cut short would be lost silently.
	oobSize = 128
)

// Bind is the engine's UDP layer on Linux (see the package comment).
type Bind struct {
	mu       sync.Mutex
	v4, v6   *socket
	mark     uint32
	msgsPool sync.Pool // *[]ipv6.Message of batchSize, each with an OOB buffer
}

// New is a Bind, closed until Open.
func New() conn.Bind {
	b := &Bind{}
	b.msgsPool.New = func() any {
		ms := newMessages(batchSize)
		return &ms
	}
	return b
}

// socket is one family's UDP socket.
type socket struct {
	c   *net.UDPConn
	pc  *ipv6.PacketConn // its batch calls (the same for IPv4: one message type)
	is6 bool
	gro bool        // the kernel coalesces what it receives
	gso atomic.Bool // the kernel takes coalesced writes
}

// Open listens on port (0: any) on IPv4 and, where the host has it, IPv6,
// on the same port.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.v4 != nil || b.v6 != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	var v4, v6 *socket
	var err error
	for tries := 0; ; tries++ {
		v4, err = listen("udp4", port)
		if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
			return nil, 0, err
		}
		p := port
		if v4 != nil {
			p = portOf(v4.c)
		}
		v6, err = listen("udp6", p)
		if port == 0 && v4 != nil && errors.Is(err, syscall.EADDRINUSE) && tries < 100 {
			// The port the kernel gave IPv4 is taken on IPv6: another.
			v4.c.Close()
			v4 = nil
			continue
		}
		if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
			if v4 != nil {
				v4.c.Close()
			}
			return nil, 0, err
		}
		break
	}
	if v4 == nil && v6 == nil {
		return nil, 0, fmt.Errorf("udpbind: no IPv4 and no IPv6 socket: %w", err)
	}
	var fns []conn.ReceiveFunc
	for _, s := range []*socket{v4, v6} {
		if s == nil {
			continue
		}
		if b.mark != 0 {
			if err := setMark(s, b.mark); err != nil {
				for _, c := range []*socket{v4, v6} {
					if c != nil {
						c.c.Close()
					}
				}
				return nil, 0, fmt.Errorf("udpbind: setting the firewall mark: %w", err)
			}
		}
		fns = append(fns, b.receiver(s))
		port = portOf(s.c)
	}
	b.v4, b.v6 = v4, v6
	return fns, port, nil
}

// listen opens one family's socket with PKTINFO, GRO and large buffers.
func listen(network string, port uint16) (*socket, error) {
	s := &socket{is6: network == "udp6"}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if s.is6 {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			}
			// Buffers: forced past the sysctl limit where allowed, else
			// as large as the limit lets.
			for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], socketBuffer) != nil {
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], socketBuffer)
				}
			}
			s.gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
			_, gsoErr := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			s.gso.Store(gsoErr == nil)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	addr := "0.0.0.0"
	if s.is6 {
		addr = "::"
	}
	pc, err := lc.ListenPacket(context.Background(), network, net.JoinHostPort(addr, fmt.Sprint(port)))
	if err != nil {
		return nil, err
	}
	s.c = pc.(*net.UDPConn)
	s.pc = ipv6.NewPacketConn(s.c)
	return s, nil
}

func setMark(s *socket, mark uint32) error {
	rc, err := s.c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) })
	if err != nil {
		return err
	}
	return serr
}

// Close closes the sockets; receive functions return net.ErrClosed.
func (b *Bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	for _, s := range []*socket{b.v4, b.v6} {
		if s == nil {
			continue
		}
		if e := s.c.Close(); e != nil && err == nil {
			err = e
		}
	}
	b.v4, b.v6 = nil, nil
	return err
}

// SetMark sets the sockets' firewall mark (SO_MARK), now and at the next
// Open.
func (b *Bind) SetMark(mark uint32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mark = mark
	for _, s := range []*socket{b.v4, b.v6} {
		if s != nil {
			if err := setMark(s, mark); err != nil {
				return err
			}
		}
	}
	return nil
}

// BatchSize is how many datagrams a receive function fills at most.
func (b *Bind) BatchSize() int { return batchSize }

// ParseEndpoint reads "addr:port".
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) { return ParseEndpoint(s) }

// receiver reads a batch of datagrams. With GRO on, a read may return a
// coalesced datagram of many; reads then go into the batch's last few
// slots and their datagrams are split forward into the others (each
// keeping the local address it arrived on). What does not fit (a read of
// more segments than the slots before it: the kernel's bound is 64 or 128
// segments a datagram) is kept, in order, and handed out first by the
// next call. The engine calls each receive function from one goroutine.
func (b *Bind) receiver(s *socket) conn.ReceiveFunc {
	var left leftover
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		if len(bufs) == 0 {
			return 0, nil
		}
		if n := left.take(bufs, sizes, eps); n > 0 {
			return n, nil
		}
		var msgs []ipv6.Message
		if len(bufs) <= batchSize {
			msgsp := b.msgsPool.Get().(*[]ipv6.Message)
			defer b.putMessages(msgsp)
			msgs = (*msgsp)[:len(bufs)]
		} else {
			msgs = newMessages(len(bufs))
		}
		at := 0
		if s.gro {
			at = len(bufs) - max(1, len(bufs)/maxSegments)
		}
		for i := at; i < len(bufs); i++ {
			msgs[i].Buffers[0] = bufs[i]
			msgs[i].OOB = msgs[i].OOB[:cap(msgs[i].OOB)]
		}
		n, err := s.pc.ReadBatch(msgs[at:], 0)
		if err != nil {
			return 0, err
		}
		out := 0
		for i := at; i < at+n; i++ {
			m := &msgs[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok || m.N == 0 {
				continue
			}
			ep := &Endpoint{Dst: netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), uint16(ua.Port))}
			seg := parseControl(m.OOB[:m.NN], ep)
			data := bufs[i][:m.N]
			if seg <= 0 || seg >= m.N {
				seg = m.N
			}
			for start := 0; start < len(data); start += seg {
				end := min(start+seg, len(data))
				// A segment goes to a slot before its datagram's (or to
				// that slot, which is then read past: copy moves forward
				// within it safely), never to a slot still holding an
				// unread datagram; once one does not fit, it and all
				// after it wait for the next call, in order.
				if left.any() || out >= len(bufs) || out > i && out < at+n {
					left.keep(data[start:end], ep)
					continue
				}
				c := copy(bufs[out], data[start:end])
				sizes[out], eps[out] = c, ep
				out++
			}
		}
		return out, nil
	}
}

// leftover holds, in order, the datagrams a read split into more than
// the batch had room for.
type leftover struct {
	data []byte // their bytes, one after the other
	ends []int  // where each ends in data
	eps  []*Endpoint
	next int // the next to hand out
}

func (l *leftover) any() bool { return l.next < len(l.ends) }

func (l *leftover) keep(d []byte, ep *Endpoint) {
	l.data = append(l.data, d...)
	l.ends = append(l.ends, len(l.data))
	l.eps = append(l.eps, ep)
}

// take hands out as many held datagrams as bufs has room for.
func (l *leftover) take(bufs [][]byte, sizes []int, eps []conn.Endpoint) int {
	n := 0
	for ; l.any() && n < len(bufs); n++ {
		start := 0
		if l.next > 0 {
			start = l.ends[l.next-1]
		}
		sizes[n] = copy(bufs[n], l.data[start:l.ends[l.next]])
		eps[n] = l.eps[l.next]
		l.next++
	}
	if !l.any() { // all handed out: start afresh, keeping the memory
		l.data, l.ends, l.next = l.data[:0], l.ends[:0], 0
		clear(l.eps)
		l.eps = l.eps[:0]
	}
	return n
}

// newMessages makes n messages, each with one buffer and an OOB buffer.
func newMessages(n int) []ipv6.Message {
	ms := make([]ipv6.Message, n)
	for i := range ms {
		ms[i].Buffers = make([][]byte, 1)
		ms[i].OOB = make([]byte, 0, oobSize)
	}
	return ms
}

// putMessages returns messages to the pool, holding on to no caller's
// buffer or address.
func (b *Bind) putMessages(msgsp *[]ipv6.Message) {
	for i := range *msgsp {
		m := &(*msgsp)[i]
		m.Buffers[0], m.Addr, m.N, m.NN = nil, nil, 0, 0
	}
	b.msgsPool.Put(msgsp)
}

// parseControl reads a received datagram's control messages: its local
// address into ep, and the GRO segment size (0 if not coalesced).
func parseControl(oob []byte, ep *Endpoint) int {
	seg := 0
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		oob = rest
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			ep.Src = netip.AddrFrom4(pi.Spec_dst)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			ep.Src = netip.AddrFrom16(pi.Addr)
			if ep.Src.IsLinkLocalUnicast() {
				ep.ifindex = pi.Ifindex
			}
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 2:
			if len(data) >= 4 {
				seg = int(nativeEndian.Uint32(data))
			} else {
				seg = int(nativeEndian.Uint16(data))
			}
		}
	}
	return seg
}

// Send writes bufs to ep, from the local address ep arrived on. Runs of
// equal-sized datagrams go as GSO writes where the kernel takes them,
// joined in the first one's spare capacity: bufs must not share memory
// beyond their lengths (as with conn.StdNetBind).
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*Endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	s := b.v4
	if e.Dst.Addr().Is6() {
		s = b.v6
	}
	b.mu.Unlock()
	if s == nil {
		return errNoSocket
	}
	ua := net.UDPAddrFromAddrPort(e.Dst)
	msgsp := b.msgsPool.Get().(*[]ipv6.Message)
	defer b.putMessages(msgsp)
	var w batch
	gso := s.gso.Load()
	for len(bufs) > 0 {
		n := w.fill(*msgsp, bufs, ua, e, gso)
		sent, err := write(s, (*msgsp)[:n])
		bufs = bufs[w.starts[sent]:] // what was sent is not sent again
		if err == nil {
			continue
		}
		joined := sent < n && w.segs[sent] > 1
		switch {
		case joined && errors.Is(err, unix.EIO):
			// The kernel cannot segment for this socket (no checksum
			// offload): plain datagrams from now on.
			s.gso.Store(false)
			gso = false
		case joined && (errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.EINVAL)):
			// Segments larger than the path's MTU (one datagram alone
			// would be fragmented; a joined write is refused whole): this
			// call's datagrams one by one.
			gso = false
		case e.Src.IsValid() && (errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EADDRNOTAVAIL)):
			// The address the peer sent to is no longer this host's (a
			// virtual address moved away; Linux answers ENETUNREACH for
			// IPv4, EINVAL or EADDRNOTAVAIL for IPv6): from the address
			// the route gives, until the peer's next datagram says
			// otherwise. (A true ENETUNREACH costs one more try.) A copy:
			// the endpoint is shared with the peer's readers.
			e = &Endpoint{Dst: e.Dst}
		default:
			return err
		}
	}
	return nil
}

// batch is what fill made of a run of buffers: for message i, the index of
// its first buffer (starts[i]; starts[n] is how many it took) and how many
// datagrams it joins.
type batch struct {
	starts [batchSize + 1]int
	segs   [batchSize]int
}

// fill makes up to len(msgs) messages from bufs: with gso, each run of
// datagrams of one size (the last may be shorter) joined in its first
// buffer's spare capacity, with a UDP_SEGMENT size. It returns how many
// messages it made; w says which buffers each holds.
func (w *batch) fill(msgs []ipv6.Message, bufs [][]byte, ua *net.UDPAddr, e *Endpoint, gso bool) int {
	n, i := 0, 0
	for i < len(bufs) && n < len(msgs) && n < batchSize {
		m := &msgs[n]
		m.Addr = ua
		m.OOB = appendSrc(m.OOB[:0], e)
		w.starts[n] = i
		buf := bufs[i]
		i++
		segs := 1
		if gso {
			size := len(buf)
			for i < len(bufs) && segs < maxSegments && len(bufs[i]) <= size && len(buf)+len(bufs[i]) <= min(cap(buf), maxCoalesced) && !within(buf, bufs[i]) {
				buf = append(buf, bufs[i]...)
				segs++
				short := len(bufs[i]) < size
				i++
				if short {
					break // a shorter one ends the run
				}
			}
			if segs > 1 {
				m.OOB = appendSegment(m.OOB, size)
			}
		}
		w.segs[n] = segs
		m.Buffers[0] = buf
		n++
	}
	w.starts[n] = i
	return n
}

// write sends msgs, and says how many went before an error.
func write(s *socket, msgs []ipv6.Message) (int, error) {
	sent := 0
	for sent < len(msgs) {
		n, err := s.pc.WriteBatch(msgs[sent:], 0)
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// appendSrc adds the PKTINFO that makes the kernel send from e.Src (the
// interface left to the route, but for an IPv6 link-local address).
func appendSrc(oob []byte, e *Endpoint) []byte {
	if !e.Src.IsValid() {
		return oob
	}
	if e.Src.Is4() {
		oob, data := cmsg(oob, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
		*pi = unix.Inet4Pktinfo{Spec_dst: e.Src.As4()}
		return oob
	}
	oob, data := cmsg(oob, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
	*pi = unix.Inet6Pktinfo{Addr: e.Src.As16(), Ifindex: e.ifindex}
	return oob
}

// appendSegment adds the UDP_SEGMENT size of a GSO write.
func appendSegment(oob []byte, size int) []byte {
	oob, data := cmsg(oob, unix.SOL_UDP, unix.UDP_SEGMENT, 2)
	nativeEndian.PutUint16(data, uint16(size))
	return oob
}

// cmsg appends a control message header for n bytes of data, zeroed, and
// returns the message and its data.
func cmsg(oob []byte, level, typ, n int) ([]byte, []byte) {
	start := len(oob)
	space := unix.CmsgSpace(n)
	for range space {
		oob = append(oob, 0)
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[start]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(n))
	return oob, oob[start+unix.CmsgLen(0) : start+unix.CmsgLen(0)+n]
}

// within says whether next starts in buf's spare capacity (two datagrams
// cut from one array): joining would overwrite it before it is copied.
// Only the next buffer is checked, for the cost; Send's contract is that
// its buffers do not share memory beyond their lengths.
func within(buf, next []byte) bool {
	if len(next) == 0 || cap(buf) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(next)))
	return p >= lo && p < lo+uintptr(cap(buf))
}
