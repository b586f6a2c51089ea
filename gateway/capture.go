// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/internal/pcapng"
)

// Packet capture sessions (SORACOM Peek's shape): the gateway serving a
// SIM writes its inner packets, both directions, with timestamps, to a
// pcapng file in Config.CaptureDir. The taps are the mirror's (the copy
// after the source check, and every send to a device); a session's
// packets wait in a bounded queue for its writer, so a slow disk drops
// packets from the file (counted), never from the devices.
const captureQueue = 4096

// CaptureFile is where the session id's file is in dir (the API serves it
// from there).
func CaptureFile(dir, id string) string { return filepath.Join(dir, id+".pcapng") }

type capturedPacket struct {
	t   time.Time
	dir uint32
	pkt *[]byte
}

// captureSession is one running session.
type captureSession struct {
	c                       fleet.Capture
	in                      chan capturedPacket
	done                    chan struct{} // closed when the writer has ended
	end                     chan string   // a reason to end early ("": deleted)
	endMu                   sync.Once
	dropped, packets, bytes atomic.Int64
}

// matches reports whether the session's filter keeps a packet.
func (s *captureSession) matches(ip *packet.Parsed) bool {
	c := &s.c
	if c.Prefix.IsValid() && !c.Prefix.Contains(ip.Src) && !c.Prefix.Contains(ip.Dst) {
		return false
	}
	switch c.Protocol {
	case "tcp":
		if ip.Proto != packet.TCP {
			return false
		}
	case "udp":
		if ip.Proto != packet.UDP {
			return false
		}
	case "icmp":
		if ip.Proto != packet.ICMP && ip.Proto != packet.ICMPv6 {
			return false
		}
	}
	return c.Port == 0 || ip.SrcPort == c.Port || ip.DstPort == c.Port
}

// captures holds the running sessions, read on the data path without a
// lock (a change builds a new snapshot).
type captures struct {
	g    *Gateway
	dir  string
	mu   sync.Mutex
	snap atomic.Pointer[captureSnap]
}

type captureSnap struct {
	byID     map[string]*captureSession
	byTarget map[string][]*captureSession // SIM id or group id
}

// tap offers one packet of SIM sim (of group group) to the sessions on
// either; out says it goes to the device.
func (cs *captures) tap(sim, group string, pkt []byte, out bool) {
	snap := cs.snap.Load()
	if snap == nil || len(snap.byID) == 0 {
		return
	}
	a, b := snap.byTarget[sim], snap.byTarget[group]
	if len(a) == 0 && (group == "" || len(b) == 0) {
		return
	}
	var ip packet.Parsed
	if ip.Decode(pkt) != nil {
		return
	}
	dir := uint32(pcapng.Inbound) // from the device, as the gateway's side of its tunnel sees it
	if out {
		dir = pcapng.Outbound
	}
	now := time.Now()
	for _, list := range [][]*captureSession{a, b} {
		for _, s := range list {
			if !s.matches(&ip) {
				continue
			}
			buf := getBuf()
			if ip.Length > cap(*buf) {
				putBuf(buf)
				s.dropped.Add(1)
				continue
			}
			*buf = append((*buf)[:0], pkt[:ip.Length]...)
			select {
			case s.in <- capturedPacket{t: now, dir: dir, pkt: buf}:
			default:
				putBuf(buf)
				s.dropped.Add(1)
			}
		}
	}
}

// publish rebuilds the snapshot (cs.mu held).
func (cs *captures) publish(byID map[string]*captureSession) {
	next := &captureSnap{byID: byID, byTarget: map[string][]*captureSession{}}
	for _, s := range byID {
		t := s.c.SIMID
		if t == "" {
			t = s.c.GroupID
		}
		next.byTarget[t] = append(next.byTarget[t], s)
	}
	cs.snap.Store(next)
}

func (cs *captures) running() map[string]*captureSession {
	if s := cs.snap.Load(); s != nil {
		return s.byID
	}
	return nil
}

// load starts what is requested and fails what a previous process left
// capturing (its file ends where that process stopped).
func (cs *captures) load(ctx context.Context) {
	for cursor := ""; ; {
		p, err := cs.g.st.ListCaptures(ctx, store.PageRequest{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			cs.g.log.Warn("captures: listing", "err", err)
			return
		}
		for _, c := range p.Items {
			switch c.Status {
			case fleet.CaptureRequested:
				cs.start(c)
			case fleet.CaptureCapturing, fleet.CapturePostProcessing:
				cs.g.svc.UpdateCapture(ctx, c.ID, func(x *fleet.Capture) {
					x.Status, x.Reason = fleet.CaptureFailed, "the gateway restarted during the capture"
				})
			}
		}
		if p.Next == "" {
			return
		}
		cursor = p.Next
	}
}

// changed applies a change of session id from the feed.
func (cs *captures) changed(ctx context.Context, id string) {
	c, err := cs.g.st.Capture(ctx, id)
	gone := errors.Is(err, store.ErrNotFound)
	if err != nil && !gone {
		cs.g.log.Warn("captures: reading", "capture", id, "err", err)
		return
	}
	s := cs.running()[id]
	switch {
	case gone && s != nil:
		s.stop("") // deleted: its writer removes the file
	case gone:
		os.Remove(CaptureFile(cs.dir, id))
	case s == nil && c.Status == fleet.CaptureRequested:
		cs.start(c)
	case s != nil && c.Status.Ended():
		s.stop(c.Reason)
	}
}

func (s *captureSession) stop(reason string) {
	s.endMu.Do(func() { s.end <- reason })
}

// start opens the file and the writer of a requested session.
func (cs *captures) start(c fleet.Capture) {
	ctx := cs.g.ctx
	fail := func(reason string) {
		cs.g.svc.UpdateCapture(ctx, c.ID, func(x *fleet.Capture) { x.Status, x.Reason = fleet.CaptureFailed, reason })
	}
	if cs.dir == "" {
		fail("captures are off on this gateway (no capture directory)")
		return
	}
	if err := os.MkdirAll(cs.dir, 0o700); err != nil {
		fail(err.Error())
		return
	}
	f, err := os.OpenFile(CaptureFile(cs.dir, c.ID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		fail(err.Error())
		return
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	w, err := pcapng.NewWriter(bw)
	if err != nil {
		f.Close()
		fail(err.Error())
		return
	}
	c, err = cs.g.svc.UpdateCapture(ctx, c.ID, func(x *fleet.Capture) {
		x.Status, x.Started = fleet.CaptureCapturing, time.Now().UTC()
	})
	if err != nil || c.Status != fleet.CaptureCapturing {
		f.Close()
		os.Remove(CaptureFile(cs.dir, c.ID))
		return
	}
	s := &captureSession{c: c, in: make(chan capturedPacket, captureQueue), done: make(chan struct{}), end: make(chan string, 1)}
	cs.mu.Lock()
	next := map[string]*captureSession{c.ID: s}
	for id, o := range cs.running() {
		next[id] = o
	}
	cs.publish(next)
	cs.mu.Unlock()
	cs.g.wg.Add(1)
	go cs.write(s, f, bw, w)
}

// write is a session's writer: packets to the file until its duration
// ends, its size cap is reached, an operator stops it, it is deleted, or
// the disk refuses; then the record says how it ended.
func (cs *captures) write(s *captureSession, f *os.File, bw *bufio.Writer, w *pcapng.Writer) {
	defer cs.g.wg.Done()
	defer close(s.done)
	timer := time.NewTimer(s.c.Duration)
	defer timer.Stop()
	size := int64(pcapng.HeaderLen)
	status, reason, remove := fleet.CaptureDone, "", false
loop:
	for {
		select {
		case p := <-s.in:
			n := int64(pcapng.RecordLen(len(*p.pkt)))
			if size+n > s.c.MaxBytes {
				reason = fmt.Sprintf("size cap of %d bytes reached", s.c.MaxBytes)
				putBuf(p.pkt)
				break loop
			}
			err := w.WritePacket(p.t, p.dir, *p.pkt)
			putBuf(p.pkt)
			if err != nil {
				status, reason = fleet.CaptureFailed, "writing the file: "+err.Error()
				break loop
			}
			size += n
			s.packets.Add(1)
			s.bytes.Store(size)
		case <-timer.C:
			break loop
		case r := <-s.end:
			if r == "" {
				remove = true
			}
			status, reason = fleet.CaptureStopped, r
			break loop
		case <-cs.g.ctx.Done():
			status, reason = fleet.CaptureFailed, "the gateway stopped during the capture"
			break loop
		}
	}
	// Off the data path first: no more packets are offered.
	cs.mu.Lock()
	next := map[string]*captureSession{}
	for id, o := range cs.running() {
		if o != s {
			next[id] = o
		}
	}
	cs.publish(next)
	cs.mu.Unlock()
	if err := bw.Flush(); err != nil && status != fleet.CaptureFailed {
		status, reason = fleet.CaptureFailed, "writing the file: "+err.Error()
	}
	if err := f.Close(); err != nil && status != fleet.CaptureFailed {
		status, reason = fleet.CaptureFailed, "closing the file: "+err.Error()
	}
	if remove {
		os.Remove(f.Name())
		return
	}
	if d := s.dropped.Load(); d > 0 && reason == "" {
		reason = fmt.Sprintf("%d packets not written (the writer fell behind)", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cs.g.svc.UpdateCapture(ctx, s.c.ID, func(x *fleet.Capture) {
		x.Packets, x.Bytes = s.packets.Load(), s.bytes.Load()
		x.Status, x.Reason = status, reason
	}); errors.Is(err, store.ErrNotFound) {
		os.Remove(f.Name()) // deleted while it ended
	}
}

// sweepCaptures deletes sessions (and files) past their retention.
func (cs *captures) sweep(ctx context.Context, now time.Time) {
	for cursor := ""; ; {
		p, err := cs.g.st.ListCaptures(ctx, store.PageRequest{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return
		}
		for _, c := range p.Items {
			if c.Status.Ended() && !c.Expires.IsZero() && now.After(c.Expires) {
				if err := cs.g.svc.DeleteCapture(ctx, controlplane.System, c.ID); err == nil {
					os.Remove(CaptureFile(cs.dir, c.ID))
				}
			}
		}
		if p.Next == "" {
			return
		}
		cursor = p.Next
	}
}

// tapOut offers a packet going to the SIM behind st to its capture
// sessions and its group's inspection — unless the packet came from a SIM
// of that same group unchanged (from), which counted it on its way in.
func (r *router) tapOut(st *simState, from *groupPolicy, pkt []byte) {
	r.captureTap(st, pkt, true)
	if r.insp == nil || r.policies.inspected.Load() == 0 {
		return
	}
	group := st.SIM().GroupID
	if pol := r.policies.get(group); pol != nil && pol.inspectEvery > 0 && pol != from {
		var ip packet.Parsed
		if ip.Decode(pkt) == nil {
			r.insp.account(pol.inspectKey(st.id), pkt, &ip)
		}
	}
}

// captureTap offers a packet of the SIM behind state st to its sessions.
func (r *router) captureTap(st *simState, pkt []byte, out bool) {
	if r.caps != nil {
		r.caps.tap(st.id, st.SIM().GroupID, pkt, out) // one load and a length check when none runs
	}
}
