// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/fairshare"
)

// serveTCP forwards one device connection to port 23080.
func (s *Service) serveTCP(c net.Conn) {
	caller, id, ok := s.caller(s.ctx, c.RemoteAddr().String())
	if !ok {
		s.m.request(kindTCPHTTP)
		s.m.fail(kindTCPHTTP, "unknown_sim")
		return
	}
	route := caller.Group.Forwarders.TCP
	if route.URL == "" {
		s.m.request(kindTCPHTTP)
		s.m.fail(kindTCPHTTP, "no_route")
		s.log.Warn("forward failed", "kind", "tcp", "sim", id.SIMID, "group", id.Group, "reason", "no_route")
		return
	}
	u, err := url.Parse(route.URL)
	if err != nil {
		return
	}
	if u.Scheme == "tls" {
		s.relayTLS(c, id, route, u.Host)
		return
	}
	s.postMessages(c, id, route, u)
}

// relayTLS relays a device's bytes to a TLS server and back, after a first
// line of identity when the route asks for one.
func (s *Service) relayTLS(c net.Conn, id Identity, route fleet.TCPForward, hostport string) {
	start := time.Now()
	s.m.request(kindTCPTLS)
	fail := func(reason, msg string) {
		s.m.fail(kindTCPTLS, reason)
		s.log.Warn("forward failed", "kind", kindTCPTLS, "sim", id.SIMID, "group", id.Group, "reason", reason, "msg", msg)
	}
	host, _, _ := net.SplitHostPort(hostport)
	tcfg, err := s.tlsConfig(host, route.CAPEM)
	if err != nil {
		fail("tls", err.Error())
		return
	}
	var line string
	if route.FirstLineIdentity {
		secret, err := s.open(route.Secret)
		if err != nil {
			f := s.secretFailure(kindTCPTLS, "secret", err)
			fail(f.reason, f.msg)
			return
		}
		line = FirstLine(secret, id, s.cfg.Clock.Now().UnixMilli(), hostport)
	}
	var up net.Conn
	for attempt := 0; ; attempt++ {
		d := &tls.Dialer{NetDialer: s.cfg.Egress.Dialer(net.Dialer{Timeout: s.cfg.Timeout}), Config: tcfg}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
		up, err = d.DialContext(ctx, "tcp", hostport)
		cancel()
		if err == nil {
			break
		}
		if attempt < s.cfg.Retries && dialError(err) && backoff(s.ctx, attempt) {
			continue
		}
		f := classify(err, s.cfg.Timeout)
		fail(f.reason, f.msg)
		return // the device sees its connection closed
	}
	defer up.Close()
	if line != "" {
		up.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
		if _, err := io.WriteString(up, line); err != nil {
			fail("destination_error", err.Error())
			return
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		copyIdle(up, c)
		closeWrite(up)
	}()
	go func() {
		defer wg.Done()
		copyIdle(c, up)
		closeWrite(c)
	}()
	wg.Wait()
	s.m.since(kindTCPTLS, start)
}

// FirstLine is the identity line sent ahead of a device's bytes to a TLS
// destination: space-separated key=value pairs ending in "\n", the
// signature over CanonicalString(id, ms, "TCP", hostport, nothing).
func FirstLine(secret string, id Identity, ms int64, hostport string) string {
	sig := Sign(secret, CanonicalString(id, ms, "TCP", hostport, nil))
	return fmt.Sprintf("simId=%s imsi=%s group=%s timestamp=%d signature=v1=%s\n", id.SIMID, id.IMSI, id.Group, ms, sig)
}

// copyIdle copies src to dst until either fails or nothing arrives from
// src for StreamIdle.
func copyIdle(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		src.SetReadDeadline(time.Now().Add(StreamIdle))
		n, err := src.Read(buf)
		if n > 0 {
			dst.SetWriteDeadline(time.Now().Add(StreamIdle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				src.Close()
				dst.Close()
			}
			return
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// errTooLarge is a message over MaxMessage.
var errTooLarge = errors.New("message over 64 KiB")

// readMessage reads one message: bytes arriving with gaps under
// MessageGap, at most MaxMessage. io.EOF with n > 0 means a last message.
func readMessage(c net.Conn, buf []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(StreamIdle))
	n, err := c.Read(buf)
	for err == nil {
		if n > MaxMessage {
			return n, errTooLarge
		}
		c.SetReadDeadline(time.Now().Add(MessageGap))
		var m int
		m, err = c.Read(buf[n:])
		n += m
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if n > MaxMessage {
				return n, errTooLarge
			}
			return n, nil
		}
	}
	return n, err
}

// postMessages posts each message of a device's connection to an HTTP(S)
// destination and writes each answer's body back; a failure closes the
// connection.
func (s *Service) postMessages(c net.Conn, id Identity, route fleet.TCPForward, u *url.URL) {
	buf := make([]byte, MaxMessage+1)
	for {
		n, err := readMessage(c, buf)
		if errors.Is(err, errTooLarge) {
			s.m.request(kindTCPHTTP)
			s.m.fail(kindTCPHTTP, "too_large")
			s.log.Warn("forward failed", "kind", kindTCPHTTP, "sim", id.SIMID, "group", id.Group, "reason", "too_large", "limit", MaxMessage)
			return
		}
		if n == 0 {
			return
		}
		start := time.Now()
		s.m.request(kindTCPHTTP)
		// Each message is a request of the SIM's share (over its rate
		// the stream waits: TCP slows the device down), and its bytes
		// are in flight until the destination answers.
		acct := fairshare.ConnAccount(c)
		if acct.Wait(s.ctx) != nil {
			return
		}
		release, ok := acct.Hold(int64(n))
		if !ok {
			s.m.fail(kindTCPHTTP, "rate_limited")
			return
		}
		answer, f := s.post(kindTCPHTTP, id, u, "application/octet-stream", buf[:n], route.Secret, route.Credential, route.CAPEM)
		release()
		if f != nil {
			s.m.fail(kindTCPHTTP, f.reason)
			s.log.Warn("forward failed", "kind", kindTCPHTTP, "sim", id.SIMID, "group", id.Group, "reason", f.reason, "msg", f.msg)
			return
		}
		c.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
		if _, werr := c.Write(answer); werr != nil {
			return
		}
		s.m.since(kindTCPHTTP, start)
		if err != nil { // the device closed after this message
			return
		}
	}
}

// post sends one message to an HTTP(S) destination and returns the
// answer's body (at most MaxMessage bytes); a non-2xx answer is a failure.
func (s *Service) post(kind string, id Identity, u *url.URL, ctype string, body []byte, secret string, cred fleet.Credential, caPEM string) ([]byte, *failure) {
	resp, f := s.send(s.ctx, id, outbound{kind: kind, method: http.MethodPost, url: u, ctype: ctype, body: body, secret: secret, cred: cred, caPEM: caPEM})
	if f != nil {
		return nil, f
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxMessage+1))
	if err != nil {
		return nil, classify(err, s.cfg.Timeout)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &failure{"destination_status", http.StatusBadGateway, "the destination answered " + resp.Status}
	}
	if len(answer) > MaxMessage {
		return nil, &failure{"too_large", http.StatusBadGateway, "the destination's answer is over 64 KiB"}
	}
	return answer, nil
}

// UDPMessage is the JSON a UDP datagram is posted as.
type UDPMessage struct {
	SIMID     string `json:"simId"`
	IMSI      string `json:"imsi"`
	Group     string `json:"group,omitempty"`
	Timestamp int64  `json:"timestamp"` // Unix milliseconds
	Port      uint16 `json:"sourcePort"`
	Payload   []byte `json:"payload"` // base64
}

// serveUDP forwards datagrams to port 23080, each in a goroutine of its
// own (at most maxUDPInFlight at once).
func (s *Service) serveUDP() {
	buf := make([]byte, MaxMessage+2048)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.m.request(kindUDP)
		ap, _ := netip.ParseAddrPort(from.String())
		if n > MaxMessage {
			s.udpFail(from, Identity{}, &failure{"too_large", http.StatusRequestEntityTooLarge, "datagrams are limited to 64 KiB"})
			continue
		}
		// A datagram in flight costs its SIM a whole datagram's worth of
		// its budget (the share's default allows 64 at once), so one
		// device with a slow destination cannot hold every slot.
		release, ok := fairshare.PacketAccount(s.udp, from).Hold(udpCharge)
		if !ok {
			s.udpFail(from, Identity{}, &failure{"rate_limited", http.StatusTooManyRequests, "too many datagrams in flight from this SIM; retry"})
			continue
		}
		msg := append([]byte(nil), buf[:n]...)
		select {
		case s.udpSem <- struct{}{}:
		default:
			release()
			s.udpFail(from, Identity{}, &failure{"busy", http.StatusServiceUnavailable, "too many datagrams in flight; retry"})
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.udpSem; release() }()
			s.forwardDatagram(from, ap, msg)
		}()
	}
}

func (s *Service) forwardDatagram(from net.Addr, ap netip.AddrPort, msg []byte) {
	start := time.Now()
	caller, id, ok := s.caller(s.ctx, ap.String())
	if !ok {
		s.udpFail(from, id, &failure{"unknown_sim", http.StatusForbidden, "no active SIM sends from this address"})
		return
	}
	route := caller.Group.Forwarders.UDP
	if route.URL == "" {
		s.udpFail(from, id, &failure{"no_route", http.StatusNotFound, "no UDP forwarder route in this SIM's group"})
		return
	}
	u, err := url.Parse(route.URL)
	if err != nil {
		return
	}
	body, _ := json.Marshal(UDPMessage{SIMID: id.SIMID, IMSI: id.IMSI, Group: id.Group, Timestamp: s.cfg.Clock.Now().UnixMilli(), Port: ap.Port(), Payload: msg})
	answer, f := s.post(kindUDP, id, u, "application/json", body, route.Secret, route.Credential, route.CAPEM)
	if f != nil {
		s.udpFail(from, id, f)
		return
	}
	if len(answer) > 0 {
		s.udp.WriteTo(answer, from)
	}
	s.m.since(kindUDP, start)
}

// UDPErrorPrefix starts the datagram a device gets back when its datagram
// could not be forwarded: "wirefleet-error <status> <reason>: <message>".
const UDPErrorPrefix = "wirefleet-error "

func (s *Service) udpFail(to net.Addr, id Identity, f *failure) {
	s.m.fail(kindUDP, f.reason)
	s.log.Warn("forward failed", "kind", kindUDP, "sim", id.SIMID, "group", id.Group, "reason", f.reason, "msg", f.msg)
	s.udp.WriteTo([]byte(UDPErrorPrefix+strconv.Itoa(f.status)+" "+f.reason+": "+f.msg), to)
}
