// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/wirefleet/wirefleet/internal/fairshare"
)

// connectWait is how long a device has to send its CONNECT (a variable
// for tests).
var connectWait = 10 * time.Second

const (
	// defaultDialTimeout applies when Upstream.DialTimeout is 0.
	defaultDialTimeout = 10 * time.Second
	// idleUpstreamKeepalive is the broker keepalive when the device asks
	// for none (0): the bridge still wants a dead broker noticed.
	idleUpstreamKeepalive = 60 * time.Second
	// maxUpstreamKeepalive caps the broker keepalive.
	maxUpstreamKeepalive = 300 * time.Second
	// writeTimeout bounds one write to either side: a peer that stops
	// reading ends the session instead of stalling the other direction
	// forever.
	writeTimeout = 30 * time.Second
	// finalWriteTimeout bounds the DISCONNECT telling a v5 device why its
	// session ends.
	finalWriteTimeout = 2 * time.Second
)

// MQTT 3.1.1 CONNACK return codes and v5 reason codes the bridge sends.
const (
	v3Unacceptable      = 0x01
	v3ServerUnavailable = 0x03
	v3NotAuthorized     = 0x05
	v3SubFailure        = 0x80

	v5Unspecified         = 0x80
	v5Malformed           = 0x81
	v5ProtocolError       = 0x82
	v5ServerUnavailable   = 0x88
	v5ServerShutdown      = 0x8B
	v5BadAuthMethod       = 0x8C
	v5KeepaliveTimeout    = 0x8D
	v5FilterInvalid       = 0x8F
	v5TopicInvalid        = 0x90
	v5TopicAliasInvalid   = 0x94
	v5PacketTooLarge      = 0x95
	v5SharedUnsupported   = 0x9E
	v5WildcardUnsupported = 0xA2
)

// session is one bridged device.
type session struct {
	v   byte // protocol version: 4 (3.1.1) or 5
	max int
	tm  topicMap
	log *slog.Logger
	st  *Stats

	dev   net.Conn
	devR  *bufio.Reader
	devKA time.Duration // read deadline on the device: 1.5 × its keepalive (0: none)
	// devNoProblemInfo: a v5 device asked for no reason strings or user
	// properties on acks (Request Problem Information 0).
	devNoProblemInfo bool
	devMu            sync.Mutex    // serialises writes to dev
	devBuf           bytes.Buffer  // one encoded packet
	devW             *bufio.Writer // relayed packets wait here while more are already buffered to read

	bro    net.Conn
	broR   *bufio.Reader
	broKA  time.Duration // keepalive with the broker
	broMu  sync.Mutex
	broBuf bytes.Buffer
	broW   *bufio.Writer

	// devDisconnected is set when the device sent DISCONNECT: the broker
	// closing its end right after is then the expected outcome, whichever
	// relay loop reports first.
	devDisconnected atomic.Bool

	mu          sync.Mutex
	subs        map[uint16]*pendingAck // SUBSCRIBE sent upstream, by packet id
	unsubs      map[uint16]*pendingAck
	droppedQoS2 map[uint16]bool // broker PUBLISH ids acknowledged (PUBREC) by the bridge itself
}

// pendingAck remembers, for a SUBSCRIBE or UNSUBSCRIBE of the device, the
// codes the bridge decided itself (refused filters) and which filters went
// to the broker, to merge the broker's answer back in order.
type pendingAck struct {
	codes []byte
	sent  []bool
	why   string
}

// sessionEnd is how a relay loop ends: code, if not 0, is sent to a v5
// device in a DISCONNECT before closing.
type sessionEnd struct {
	code   byte
	reason string
	err    error
}

func (e *sessionEnd) Error() string { return e.err.Error() }
func (e *sessionEnd) Unwrap() error { return e.err }

// errDeviceDisconnected ends a session cleanly.
var errDeviceDisconnected = errors.New("device disconnected")

// errNoConnect: the device did not send a readable CONNECT, so it got no
// CONNACK (not counted as a refusal).
var errNoConnect = errors.New("no CONNECT")

// connect reads the device's CONNECT, connects to the broker as the
// platform and answers the device with the broker's verdict. On failure the
// device has had its CONNACK and the broker connection is closed.
func connect(ctx context.Context, dev net.Conn, id Identity, up Upstream) (*session, error) {
	s := newSession(dev, id, up)

	// Until the session runs, ctx ending interrupts whatever the device
	// or the broker connection is blocked on.
	stop := context.AfterFunc(ctx, func() {
		dev.SetDeadline(time.Now())
		s.broMu.Lock()
		if s.bro != nil {
			s.bro.SetDeadline(time.Now())
		}
		s.broMu.Unlock()
	})
	defer stop()

	cp, err := s.readConnect()
	if err != nil {
		return nil, err
	}
	uc, r := s.upstreamConnect(cp, id, up)
	if r != nil {
		return s.refuse(r)
	}
	dialTimeout := up.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = defaultDialTimeout
	}
	bc, err := s.dialBroker(ctx, up, uc, dialTimeout)
	if err != nil {
		return s.refuse(&refusal{v3ServerUnavailable, v5ServerUnavailable, "broker unavailable", fmt.Errorf("%w: %v", ErrBrokerUnavailable, err)})
	}
	if bc.ReasonCode != 0 {
		s.bro.Close()
		rerr := &RefusedError{Code: bc.ReasonCode, Reason: bc.Properties.ReasonString}
		s.log.Warn("mqtt connect refused by the broker", "code", bc.ReasonCode, "reason", bc.Properties.ReasonString)
		ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: s.v, ReasonCode: bc.ReasonCode}
		ack.Properties.ReasonString = bc.Properties.ReasonString
		s.writeDev(ack)
		return nil, rerr
	}
	if bc.Properties.ServerKeepAliveFlag && bc.Properties.ServerKeepAlive > 0 {
		s.broKA = time.Duration(bc.Properties.ServerKeepAlive) * time.Second
	}
	if err := s.writeDev(s.deviceConnack(bc)); err != nil {
		s.bro.Close()
		return nil, fmt.Errorf("mqttbridge: answering the device's CONNECT: %w", err)
	}
	s.log.Info("mqtt session open", "version", versionName(s.v), "clean", cp.Connect.Clean, "keepalive", time.Duration(cp.Connect.Keepalive)*time.Second)
	return s, nil
}

// newSession is a session on dev before anything was read.
func newSession(dev net.Conn, id Identity, up Upstream) *session {
	s := &session{
		dev:         dev,
		devR:        bufio.NewReaderSize(dev, 16<<10),
		devW:        bufio.NewWriterSize(dev, 16<<10),
		max:         up.MaxPacketSize,
		log:         up.Logger,
		st:          up.Stats,
		subs:        map[uint16]*pendingAck{},
		unsubs:      map[uint16]*pendingAck{},
		droppedQoS2: map[uint16]bool{},
	}
	if s.max <= 0 {
		s.max = DefaultMaxPacketSize
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("imsi", id.IMSI, "broker", up.Addr)

	return s
}

// readConnect reads the device's CONNECT (MQTT 3.1.1 or 5). A device that
// speaks another version gets the CONNACK its version reads.
func (s *session) readConnect() (*packets.Packet, error) {
	dev := s.dev
	dev.SetReadDeadline(time.Now().Add(connectWait))
	cp, err := readPacket(s.devR, 0, s.max)
	if err != nil {
		var c packets.Code
		if errors.As(err, &c) && c == packets.ErrProtocolViolationProtocolVersion {
			s.writeRawDev([]byte{packets.Connack << 4, 2, 0, v3Unacceptable})
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedVersion, err)
		}
		return nil, fmt.Errorf("mqttbridge: reading the device's CONNECT: %w (%w)", err, errNoConnect)
	}
	if cp.FixedHeader.Type != packets.Connect {
		return nil, fmt.Errorf("mqttbridge: device sent %s before CONNECT (%w)", packetName(cp.FixedHeader.Type), errNoConnect)
	}
	s.v = cp.ProtocolVersion
	if s.v != 4 && s.v != 5 {
		s.writeRawDev([]byte{packets.Connack << 4, 2, 0, v3Unacceptable})
		return nil, fmt.Errorf("%w: %d (3.1.1 and 5 are supported)", ErrUnsupportedVersion, s.v)
	}
	dev.SetReadDeadline(time.Time{})
	s.devNoProblemInfo = cp.Properties.RequestProblemInfoFlag && cp.Properties.RequestProblemInfo == 0

	return cp, nil
}

// refusal is a failed CONNECT: the code for each version, what a v5 device
// reads (no broker address or configuration detail), and what is logged
// and returned.
type refusal struct {
	v3code, v5code byte
	reason         string
	err            error
}

// refuse answers the device with a failure CONNACK.
func (s *session) refuse(r *refusal) (*session, error) {
	s.log.Warn("mqtt connect refused", "err", r.err)
	code := r.v3code
	if s.v == 5 {
		code = r.v5code
	}
	ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: s.v, ReasonCode: code}
	ack.Properties.ReasonString = r.reason
	s.writeDev(ack)
	return nil, r.err
}

// upstreamConnect is the broker's CONNECT for the device's cp: the
// device's session flags, will and properties; the platform's client id
// and credentials. What the device sent as client id, username and
// password goes nowhere.
func (s *session) upstreamConnect(cp *packets.Packet, id Identity, up Upstream) (*packets.Packet, *refusal) {
	var err error
	if s.tm, err = newTopicMap(up.TopicTemplate, id); err != nil {
		return nil, &refusal{v3ServerUnavailable, v5ServerUnavailable, "bridge misconfigured for this device", err}
	}
	clientID, err := expand(clientIDTemplate(up.ClientID), id, "client id template")
	if err != nil {
		return nil, &refusal{v3ServerUnavailable, v5ServerUnavailable, "bridge misconfigured for this device", err}
	}
	if cp.Properties.AuthenticationMethod != "" {
		return nil, &refusal{v3NotAuthorized, v5BadAuthMethod, "enhanced authentication is not supported: the tunnel authenticates the device",
			errors.New("mqttbridge: device asked for enhanced authentication")}
	}
	kaDev := time.Duration(cp.Connect.Keepalive) * time.Second
	s.devKA = kaDev * 3 / 2
	s.broKA = min(kaDev, maxUpstreamKeepalive)
	if s.broKA == 0 {
		s.broKA = idleUpstreamKeepalive
	}
	uc := &packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: s.v,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            cp.Connect.Clean,
			Keepalive:        uint16(s.broKA / time.Second),
			ClientIdentifier: clientID,
		},
	}
	if up.Username != "" {
		uc.Connect.UsernameFlag, uc.Connect.Username = true, []byte(up.Username)
	}
	if up.Password != "" {
		uc.Connect.PasswordFlag, uc.Connect.Password = true, []byte(up.Password)
	}
	if cp.Connect.WillFlag {
		wt, err := s.tm.toBroker(cp.Connect.WillTopic)
		if err == nil {
			err = s.mapResponseTopic(&cp.Connect.WillProperties)
		}
		if err != nil {
			if s.st != nil {
				s.st.Rejected.Add(1)
			}
			return nil, &refusal{v3NotAuthorized, v5TopicInvalid, "will topic refused: " + err.Error(),
				fmt.Errorf("mqttbridge: will topic %q refused: %w", cp.Connect.WillTopic, err)}
		}
		uc.Connect.WillFlag = true
		uc.Connect.WillTopic = wt
		uc.Connect.WillPayload = cp.Connect.WillPayload
		uc.Connect.WillQos = cp.Connect.WillQos
		uc.Connect.WillRetain = cp.Connect.WillRetain
		uc.Connect.WillProperties = cp.Connect.WillProperties
	}
	if s.v == 5 {
		p := &cp.Properties
		uc.Properties = packets.Properties{
			SessionExpiryInterval:     p.SessionExpiryInterval,
			SessionExpiryIntervalFlag: p.SessionExpiryIntervalFlag,
			ReceiveMaximum:            p.ReceiveMaximum,
			RequestProblemInfo:        p.RequestProblemInfo,
			RequestProblemInfoFlag:    p.RequestProblemInfoFlag,
			User:                      p.User,
			// No TopicAliasMaximum: the broker must send full topic
			// names, which the bridge rewrites.
			MaximumPacketSize: uint32(s.max),
		}
		if p.MaximumPacketSize > 0 && p.MaximumPacketSize < uint32(s.max) {
			uc.Properties.MaximumPacketSize = p.MaximumPacketSize
		}
	}

	return uc, nil
}

// deviceConnack is the device's CONNACK for the broker's bc: the broker's
// session state and limits, minus what only concerns the bridge's own
// connection (assigned client id, server keepalive, topic aliases,
// response information, redirects).
func (s *session) deviceConnack(bc *packets.Packet) *packets.Packet {
	ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: s.v, SessionPresent: bc.SessionPresent}
	if s.v == 5 {
		p := &bc.Properties
		ack.Properties = packets.Properties{
			SessionExpiryInterval:     p.SessionExpiryInterval,
			SessionExpiryIntervalFlag: p.SessionExpiryIntervalFlag,
			ReceiveMaximum:            p.ReceiveMaximum,
			MaximumQos:                p.MaximumQos,
			MaximumQosFlag:            p.MaximumQosFlag,
			RetainAvailable:           p.RetainAvailable,
			RetainAvailableFlag:       p.RetainAvailableFlag,
			WildcardSubAvailable:      p.WildcardSubAvailable,
			WildcardSubAvailableFlag:  p.WildcardSubAvailableFlag,
			SubIDAvailable:            p.SubIDAvailable,
			SubIDAvailableFlag:        p.SubIDAvailableFlag,
			SharedSubAvailable:        0,
			SharedSubAvailableFlag:    true,
			MaximumPacketSize:         uint32(s.max),
			User:                      p.User,
			ReasonString:              p.ReasonString,
		}
		if p.MaximumPacketSize > 0 && p.MaximumPacketSize < uint32(s.max) {
			ack.Properties.MaximumPacketSize = p.MaximumPacketSize
		}
	}
	return ack
}

// dialBroker connects (TLS if configured), sends uc and returns the
// broker's CONNACK, all within timeout.
func (s *session) dialBroker(ctx context.Context, up Upstream, uc *packets.Packet, timeout time.Duration) (*packets.Packet, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := up.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := d.DialContext(dctx, "tcp", up.Addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := dctx.Deadline()
	c.SetDeadline(deadline)
	if up.TLS != nil {
		cfg := up.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(up.Addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS: %w", err)
		}
		c = tc
	}
	s.broMu.Lock()
	s.bro, s.broR, s.broW = c, bufio.NewReaderSize(c, 16<<10), bufio.NewWriterSize(c, 16<<10)
	s.broMu.Unlock()
	if err := s.writeBroker(uc); err != nil {
		c.Close()
		return nil, err
	}
	bc, err := readPacket(s.broR, s.v, s.max)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if bc.FixedHeader.Type != packets.Connack {
		c.Close()
		return nil, fmt.Errorf("broker sent %s instead of CONNACK", packetName(bc.FixedHeader.Type))
	}
	c.SetDeadline(time.Time{})
	return bc, nil
}

// run relays until one side ends, then closes both.
func (s *session) run(ctx context.Context) error {
	ends := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); ends <- s.fromDevice(ctx) }()
	go func() { defer wg.Done(); ends <- s.fromBroker() }()
	stopPing := make(chan struct{})
	go func() { defer wg.Done(); s.pingBroker(stopPing) }()

	var err error
	select {
	case err = <-ends:
	case <-ctx.Done():
		err = &sessionEnd{code: v5ServerShutdown, reason: "gateway shutting down", err: ctx.Err()}
	}
	if s.devDisconnected.Load() {
		err = errDeviceDisconnected
	}
	// Closing the broker connection without DISCONNECT (unless the device
	// sent one, relayed already) makes the broker publish the device's
	// will, as if the device had dropped off the broker itself.
	s.bro.Close()
	var end *sessionEnd
	if errors.As(err, &end) && end.code != 0 && s.v == 5 {
		// A relay write stuck on a device that does not read gives up
		// now, not after writeTimeout: shutdown stays prompt.
		s.dev.SetWriteDeadline(time.Now().Add(finalWriteTimeout))
		d := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5, ReasonCode: end.code}
		d.Properties.ReasonString = end.reason
		s.write(&s.devMu, &s.devBuf, s.devW, s.dev, d, true, finalWriteTimeout)
	}
	s.dev.Close()
	close(stopPing)
	wg.Wait()
	if errors.Is(err, errDeviceDisconnected) {
		s.log.Info("mqtt session closed by the device")
		return nil
	}
	s.log.Info("mqtt session ended", "err", err)
	return err
}

func (s *session) pingBroker(stop chan struct{}) {
	t := time.NewTicker(s.broKA / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if s.writeBroker(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}) != nil {
				return
			}
		}
	}
}

// fromDevice relays the device's packets to the broker.
func (s *session) fromDevice(ctx context.Context) error {
	for {
		if err := s.flushUnlessMore(s.devR, &s.broMu, s.broW, s.bro); err != nil {
			return brokerLost(err)
		}
		if s.devKA > 0 {
			s.dev.SetReadDeadline(time.Now().Add(s.devKA))
		}
		pk, err := readPacket(s.devR, s.v, s.max)
		if err != nil {
			return s.deviceReadEnd(err)
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			// A PUBLISH is a request of the SIM's share of the service
			// (fairshare): over its rate the bridge reads on only when a
			// token is there, and TCP slows the device down.
			if err := fairshare.ConnAccount(s.dev).Wait(ctx); err != nil {
				return err
			}
			if err := s.publishUp(pk); err != nil {
				return err
			}
		case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
			// Acks of broker PUBLISHes, or the device's own PUBREL: packet
			// ids pass unchanged, the bridge originates none upstream.
			if err := s.relayBroker(pk); err != nil {
				return brokerLost(err)
			}
		case packets.Subscribe:
			if err := s.subscribe(pk); err != nil {
				return err
			}
		case packets.Unsubscribe:
			if err := s.unsubscribe(pk); err != nil {
				return err
			}
		case packets.Pingreq:
			// Answered here: the bridge keeps the broker alive itself.
			if err := s.writeDev(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}}); err != nil {
				return deviceLost(err)
			}
		case packets.Disconnect:
			d := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: s.v, ReasonCode: pk.ReasonCode}
			if s.v == 5 {
				d.Properties.SessionExpiryInterval = pk.Properties.SessionExpiryInterval
				d.Properties.SessionExpiryIntervalFlag = pk.Properties.SessionExpiryIntervalFlag
				d.Properties.ReasonString = pk.Properties.ReasonString
			}
			s.devDisconnected.Store(true)
			s.writeBroker(d)
			return errDeviceDisconnected
		default:
			return &sessionEnd{code: v5ProtocolError, reason: "unexpected " + packetName(pk.FixedHeader.Type),
				err: fmt.Errorf("mqttbridge: device sent %s", packetName(pk.FixedHeader.Type))}
		}
	}
}

func (s *session) deviceReadEnd(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		return &sessionEnd{code: v5KeepaliveTimeout, reason: "keepalive timeout", err: fmt.Errorf("%w (%v without a packet)", ErrKeepaliveTimeout, s.devKA)}
	case errors.Is(err, ErrPacketTooLarge):
		return &sessionEnd{code: v5PacketTooLarge, reason: fmt.Sprintf("packet too large (limit %d bytes)", s.max), err: err}
	case errors.Is(err, errMalformed):
		return &sessionEnd{code: v5Malformed, reason: err.Error(), err: err}
	case errors.Is(err, io.EOF):
		return &sessionEnd{err: fmt.Errorf("mqttbridge: device closed the connection without DISCONNECT")}
	}
	return deviceLost(err)
}

func deviceLost(err error) error {
	return &sessionEnd{err: fmt.Errorf("mqttbridge: device connection: %w", err)}
}

func brokerLost(err error) error {
	return &sessionEnd{code: v5Unspecified, reason: "connection to the broker lost", err: fmt.Errorf("%w: %v", ErrBrokerUnavailable, err)}
}

// publishUp rewrites a device PUBLISH's topic and sends it to the broker,
// or refuses it visibly: a v5 device gets a PUBACK/PUBREC failure (QoS
// 1/2) or a DISCONNECT (QoS 0); a 3.1.1 device, which has no failure acks,
// is disconnected.
func (s *session) publishUp(pk *packets.Packet) error {
	if pk.Properties.TopicAliasFlag {
		return &sessionEnd{code: v5TopicAliasInvalid, reason: "topic aliases are not supported", err: errors.New("mqttbridge: device used a topic alias")}
	}
	if c := pk.PublishValidate(0); c != packets.CodeSuccess {
		return &sessionEnd{code: c.Code, reason: c.Reason, err: fmt.Errorf("mqttbridge: device PUBLISH: %v", c)}
	}
	topic, err := s.tm.toBroker(pk.TopicName)
	if err == nil {
		err = s.mapResponseTopic(&pk.Properties)
	}
	if err != nil {
		if s.st != nil {
			s.st.Rejected.Add(1)
		}
		// Debug, not Warn: the volume is the device's to choose; Stats
		// counts every refusal.
		s.log.Debug("mqtt publish refused", "topic", pk.TopicName, "err", err)
		if s.v == 5 && pk.FixedHeader.Qos > 0 {
			t := packets.Puback
			if pk.FixedHeader.Qos == 2 {
				t = packets.Pubrec
			}
			ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: t}, ProtocolVersion: 5, PacketID: pk.PacketID, ReasonCode: v5TopicInvalid}
			ack.Properties.ReasonString = err.Error()
			if err := s.writeDev(ack); err != nil {
				return deviceLost(err)
			}
			return nil
		}
		return &sessionEnd{code: v5TopicInvalid, reason: err.Error(), err: fmt.Errorf("mqttbridge: device published to %q: %w", pk.TopicName, err)}
	}
	pk.TopicName = topic
	if err := s.relayBroker(pk); err != nil {
		return brokerLost(err)
	}
	if s.st != nil {
		s.st.ToBroker.Add(1)
	}
	return nil
}

// mapResponseTopic rewrites a v5 response topic like a topic name.
func (s *session) mapResponseTopic(p *packets.Properties) error {
	if p.ResponseTopic == "" {
		return nil
	}
	rt, err := s.tm.toBroker(p.ResponseTopic)
	if err != nil {
		return fmt.Errorf("response topic: %w", err)
	}
	p.ResponseTopic = rt
	return nil
}

// filterRefusal is the SUBACK code for a refused filter.
func (s *session) filterRefusal(err error) byte {
	if s.v != 5 {
		return v3SubFailure
	}
	switch {
	case errors.Is(err, errFilterShared):
		return v5SharedUnsupported
	case errors.Is(err, errFilterHash):
		return v5WildcardUnsupported
	}
	return v5FilterInvalid
}

// subscribe forwards the filters the device may use, rewritten, and
// remembers the refused ones so the SUBACK carries a failure for each at
// its place.
func (s *session) subscribe(pk *packets.Packet) error {
	return s.forwardFilters(pk, packets.Suback, s.subs, func(f string, err error) byte {
		if s.st != nil {
			s.st.Rejected.Add(1)
		}
		s.log.Debug("mqtt subscription refused", "filter", f, "err", err)
		return s.filterRefusal(err)
	})
}

// unsubscribe is subscribe's twin for UNSUBSCRIBE: a filter outside the
// device's namespace is invalid (MQTT 5 says so in the UNSUBACK).
func (s *session) unsubscribe(pk *packets.Packet) error {
	return s.forwardFilters(pk, packets.Unsuback, s.unsubs, func(string, error) byte { return v5FilterInvalid })
}

// forwardFilters rewrites pk's filters into the device's namespace at the
// broker and relays those that may be used; each refused one gets the code
// refusal gives it, kept in pending (under s.mu) so the broker's
// acknowledgement is merged around it. When no filter remains, the bridge
// acknowledges (ackType) itself. An MQTT 3 UNSUBACK carries no codes.
func (s *session) forwardFilters(pk *packets.Packet, ackType byte, pending map[uint16]*pendingAck, refusal func(filter string, err error) byte) error {
	p := &pendingAck{codes: make([]byte, len(pk.Filters)), sent: make([]bool, len(pk.Filters))}
	var fwd packets.Subscriptions
	for i, f := range pk.Filters {
		bf, err := s.tm.filterToBroker(f.Filter)
		if err != nil {
			p.codes[i] = refusal(f.Filter, err)
			p.why = err.Error()
			continue
		}
		f.Filter = bf
		fwd = append(fwd, f)
		p.sent[i] = true
	}
	if len(fwd) == 0 {
		ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: ackType}, ProtocolVersion: s.v, PacketID: pk.PacketID}
		if ackType == packets.Suback || s.v == 5 {
			ack.ReasonCodes = p.codes
			ack.Properties.ReasonString = p.why
		}
		if err := s.writeDev(ack); err != nil {
			return deviceLost(err)
		}
		return nil
	}
	s.mu.Lock()
	pending[pk.PacketID] = p
	s.mu.Unlock()
	pk.Filters = fwd
	if err := s.relayBroker(pk); err != nil {
		return brokerLost(err)
	}
	return nil
}

// merge puts the broker's codes for the forwarded filters back among the
// bridge's own refusals.
func (p *pendingAck) merge(broker []byte) ([]byte, error) {
	out := make([]byte, len(p.codes))
	j := 0
	for i := range p.codes {
		if !p.sent[i] {
			out[i] = p.codes[i]
			continue
		}
		if j >= len(broker) {
			return nil, fmt.Errorf("broker acknowledged %d filters, %d were sent", len(broker), j+1)
		}
		out[i] = broker[j]
		j++
	}
	if j != len(broker) {
		return nil, fmt.Errorf("broker acknowledged %d filters, %d were sent", len(broker), j)
	}
	return out, nil
}

// fromBroker relays the broker's packets to the device.
func (s *session) fromBroker() error {
	for {
		if err := s.flushUnlessMore(s.broR, &s.devMu, s.devW, s.dev); err != nil {
			return deviceLost(err)
		}
		s.bro.SetReadDeadline(time.Now().Add(2 * s.broKA))
		pk, err := readPacket(s.broR, s.v, s.max)
		if err != nil {
			return brokerLost(err)
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			if err := s.publishDown(pk); err != nil {
				return err
			}
		case packets.Pubrel:
			s.mu.Lock()
			dropped := s.droppedQoS2[pk.PacketID]
			delete(s.droppedQoS2, pk.PacketID)
			s.mu.Unlock()
			if dropped {
				if err := s.writeBroker(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, ProtocolVersion: s.v, PacketID: pk.PacketID}); err != nil {
					return brokerLost(err)
				}
				continue
			}
			if err := s.relayDev(pk); err != nil {
				return deviceLost(err)
			}
		case packets.Puback, packets.Pubrec, packets.Pubcomp:
			if err := s.relayDev(pk); err != nil {
				return deviceLost(err)
			}
		case packets.Suback, packets.Unsuback:
			if err := s.ackDown(pk); err != nil {
				return err
			}
		case packets.Pingresp:
			// The answer to the bridge's own PINGREQ.
		case packets.Disconnect:
			// A v5 broker ending the session: the device learns why.
			d := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: s.v, ReasonCode: pk.ReasonCode}
			d.Properties.ReasonString = pk.Properties.ReasonString
			s.writeDev(d)
			return &sessionEnd{err: fmt.Errorf("%w: broker sent DISCONNECT 0x%02x %s", ErrBrokerUnavailable, pk.ReasonCode, pk.Properties.ReasonString)}
		default:
			return &sessionEnd{code: v5Unspecified, reason: "broker protocol error",
				err: fmt.Errorf("%w: broker sent %s", ErrBrokerUnavailable, packetName(pk.FixedHeader.Type))}
		}
	}
}

// publishDown maps a broker PUBLISH's topic back to the device's and
// delivers it; one whose topic lacks the template's shape is
// acknowledged upstream (so the broker does not redeliver it forever) and
// not delivered.
func (s *session) publishDown(pk *packets.Packet) error {
	if pk.Properties.TopicAliasFlag {
		return &sessionEnd{code: v5Unspecified, reason: "broker protocol error", err: fmt.Errorf("%w: broker used a topic alias", ErrBrokerUnavailable)}
	}
	t, ok := s.tm.toDevice(pk.TopicName)
	if !ok {
		if s.st != nil {
			s.st.Undeliverable.Add(1)
		}
		s.log.Debug("mqtt message outside the device's topics not delivered", "topic", pk.TopicName)
		var ack *packets.Packet
		switch pk.FixedHeader.Qos {
		case 1:
			ack = &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: s.v, PacketID: pk.PacketID}
		case 2:
			ack = &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, ProtocolVersion: s.v, PacketID: pk.PacketID}
			s.mu.Lock()
			s.droppedQoS2[pk.PacketID] = true
			s.mu.Unlock()
		default:
			return nil
		}
		if err := s.writeBroker(ack); err != nil {
			return brokerLost(err)
		}
		return nil
	}
	pk.TopicName = t
	if rt := pk.Properties.ResponseTopic; rt != "" {
		// A response topic outside the device's namespace could not be
		// published to by the device anyway: it is left out.
		pk.Properties.ResponseTopic, _ = s.tm.toDevice(rt)
	}
	if err := s.relayDev(pk); err != nil {
		return deviceLost(err)
	}
	if s.st != nil {
		s.st.ToDevice.Add(1)
	}
	return nil
}

// ackDown relays a SUBACK or UNSUBACK, with the bridge's refusals merged.
func (s *session) ackDown(pk *packets.Packet) error {
	s.mu.Lock()
	m := s.subs
	if pk.FixedHeader.Type == packets.Unsuback {
		m = s.unsubs
	}
	p := m[pk.PacketID]
	delete(m, pk.PacketID)
	s.mu.Unlock()
	if p != nil && (pk.FixedHeader.Type == packets.Suback || s.v == 5) {
		codes, err := p.merge(pk.ReasonCodes)
		if err != nil {
			return &sessionEnd{code: v5Unspecified, reason: "broker protocol error", err: fmt.Errorf("%w: %s: %v", ErrBrokerUnavailable, packetName(pk.FixedHeader.Type), err)}
		}
		pk.ReasonCodes = codes
		if pk.Properties.ReasonString == "" {
			pk.Properties.ReasonString = p.why
		}
	}
	if err := s.relayDev(pk); err != nil {
		return deviceLost(err)
	}
	return nil
}

// writeDev sends pk to the device now (with whatever relayed packets
// wait before it).
func (s *session) writeDev(pk *packets.Packet) error {
	return s.write(&s.devMu, &s.devBuf, s.devW, s.dev, pk, true, writeTimeout)
}

// relayDev queues pk for the device; it is sent at the latest when the
// broker loop has no further complete packet to read (flushDev): one
// system call for a burst instead of one per packet.
func (s *session) relayDev(pk *packets.Packet) error {
	return s.write(&s.devMu, &s.devBuf, s.devW, s.dev, pk, false, writeTimeout)
}

func (s *session) writeBroker(pk *packets.Packet) error {
	return s.write(&s.broMu, &s.broBuf, s.broW, s.bro, pk, true, writeTimeout)
}

func (s *session) relayBroker(pk *packets.Packet) error {
	return s.write(&s.broMu, &s.broBuf, s.broW, s.bro, pk, false, writeTimeout)
}

func (s *session) write(mu *sync.Mutex, buf *bytes.Buffer, w *bufio.Writer, c net.Conn, pk *packets.Packet, flush bool, timeout time.Duration) error {
	mu.Lock()
	defer mu.Unlock()
	pk.ProtocolVersion = s.v
	if c == s.dev && s.devNoProblemInfo {
		switch pk.FixedHeader.Type {
		case packets.Publish, packets.Connack, packets.Disconnect:
			// Reason strings and user properties are always allowed here.
		default:
			pk.Mods.DisallowProblemInfo = true
		}
	}
	buf.Reset()
	if err := encodePacket(buf, pk); err != nil {
		return err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	if flush {
		return w.Flush()
	}
	return nil
}

// flushUnlessMore sends what waits in w unless r already holds another
// complete packet, whose handling will come back here.
func (s *session) flushUnlessMore(r *bufio.Reader, mu *sync.Mutex, w *bufio.Writer, c net.Conn) error {
	if completePacketBuffered(r) {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	if w.Buffered() == 0 {
		return nil
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return w.Flush()
}

// completePacketBuffered reports whether r's buffer holds a whole MQTT
// packet, so that reading it will not block.
func completePacketBuffered(r *bufio.Reader) bool {
	n := r.Buffered()
	if n < 2 {
		return false
	}
	b, _ := r.Peek(min(n, 5))
	rem, mult := 0, 1
	for i := 1; i < len(b); i++ {
		rem += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return 1+i+rem <= n
		}
		mult *= 128
	}
	return false
}

// writeRawDev is for the CONNACK refusing a protocol version, before the
// session's version is known.
func (s *session) writeRawDev(b []byte) {
	s.dev.SetWriteDeadline(time.Now().Add(writeTimeout))
	s.dev.Write(b)
}

func versionName(v byte) string {
	if v == 5 {
		return "5.0"
	}
	return "3.1.1"
}
