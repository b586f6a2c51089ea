// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"bufio"
	"io"
	"net"
	"time"

	"github.com/wirefleet/wirefleet/services/mqttbridge"
)

// serveMQTT bridges one device connection to port 1883 to its group's
// broker with the platform's credentials (package mqttbridge).
func (s *Service) serveMQTT(c net.Conn) {
	s.m.request(kindMQTT)
	caller, id, ok := s.caller(s.ctx, c.RemoteAddr().String())
	if !ok {
		s.m.fail(kindMQTT, "unknown_sim")
		refuseMQTT(c)
		return
	}
	route := caller.Group.Forwarders.MQTT
	if route.Broker == "" {
		s.m.fail(kindMQTT, "no_route")
		s.log.Warn("forward failed", "kind", kindMQTT, "sim", id.SIMID, "group", id.Group, "reason", "no_route")
		refuseMQTT(c)
		return
	}
	password, err := s.open(route.Password)
	if err != nil {
		f := s.secretFailure(kindMQTT, "password", err)
		s.m.fail(kindMQTT, f.reason)
		refuseMQTT(c)
		return
	}
	up := mqttbridge.Upstream{Addr: route.Broker, Username: route.Username, Password: password, ClientID: route.ClientID,
		TopicTemplate: route.TopicTemplate, DialTimeout: s.cfg.Timeout, Logger: s.log, Stats: &s.mqttStats,
		Dialer: s.cfg.Egress.Dialer(net.Dialer{})}
	if route.TLS {
		host, _, _ := net.SplitHostPort(route.Broker)
		if up.TLS, err = s.tlsConfig(host, route.CAPEM); err != nil {
			s.m.fail(kindMQTT, "tls")
			refuseMQTT(c)
			return
		}
	}
	start := time.Now()
	err = mqttbridge.Serve(s.ctx, c, mqttbridge.Identity{SIMID: id.SIMID, IMSI: id.IMSI, GroupName: id.Group}, up)
	s.m.since(kindMQTT, start)
	if err != nil && s.ctx.Err() == nil {
		s.m.fail(kindMQTT, "bridge")
		s.log.Warn("mqtt bridge ended", "sim", id.SIMID, "group", id.Group, "broker", route.Broker, "err", err)
	}
}

// refuseMQTT answers a device's CONNECT with "not authorized" (the return
// code of MQTT 3.1/3.1.1, the reason code of MQTT 5) and closes.
func refuseMQTT(c net.Conn) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	level := byte(4)
	// CONNECT: fixed header, remaining length, protocol name, level.
	if b, err := r.ReadByte(); err == nil && b>>4 == 1 {
		for i := 0; i < 4; i++ { // remaining length: up to 4 bytes
			if b, err := r.ReadByte(); err != nil || b&0x80 == 0 {
				break
			}
		}
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err == nil {
			name := make([]byte, int(hdr[0])<<8|int(hdr[1]))
			if _, err := io.ReadFull(r, name); err == nil {
				if l, err := r.ReadByte(); err == nil {
					level = l
				}
			}
		}
	}
	if level == 5 {
		c.Write([]byte{0x20, 0x03, 0x00, 0x87, 0x00})
	} else {
		c.Write([]byte{0x20, 0x02, 0x00, 0x05})
	}
	c.Close()
}
