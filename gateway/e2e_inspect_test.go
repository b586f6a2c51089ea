// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor/webhook"
)

// Inspection of a group with standard devices: a device's DNS queries,
// an HTTP fetch, a TLS ClientHello with a server name and an MQTT CONNECT
// (to the platform and to another device of the group) come out, one
// interval later, as a record in the data store that names each protocol
// with counts no lower than the traffic made, the HTTP host and the TLS
// server name.
func TestInspection(t *testing.T) {
	f := newFixture(t)
	// A real IPFIX collector on loopback: nfdump's nfcapd, printing what it decodes.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	nfDir := t.TempDir()
	// Line-buffered: nfcapd's decodes reach us as they come.
	nfcapd := f.env.Start(nil, nil, "stdbuf", "-oL", "nfcapd", "-E", "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-w", nfDir, "-t", "60")
	// The group's webhook, on loopback: records come signed like alerts.
	const secret = "inspection-webhook-secret-0123456789"
	hooked := make(chan []byte, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(webhook.TimestampHeader), 10, 64)
		if r.Header.Get(webhook.SignatureHeader) == webhook.Sign(secret, ts, body) {
			select {
			case hooked <- body:
			default:
			}
		}
	}))
	defer hook.Close()
	grp := f.group("inspected", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup},
		Security:   fleet.SecurityProfile{WebhookURL: hook.URL, WebhookSecret: secret},
		Inspection: fleet.Inspection{Enabled: true, IntervalSeconds: 10, Webhook: true, IPFIXCollectors: []string{"127.0.0.1:" + strconv.Itoa(port)}}})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	if err := a.pingUntil(b.addr(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// b accepts TLS and MQTT connections, reads the first message, hangs up.
	for _, port := range []int{8443, 1883} {
		ln := b.listen(port)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					c.SetReadDeadline(time.Now().Add(3 * time.Second))
					c.Read(make([]byte, 4096))
					c.Close()
				}()
			}
		}()
	}
	for i := 0; i < 3; i++ {
		if ip, _, err := a.resolve(DNSAddrs[0].String(), "metadata."+DefaultZone+"."); err != nil || ip != MetadataAddr {
			t.Fatalf("DNS: %v %v", ip, err)
		}
	}
	if out, err := a.curl("http://" + MetadataAddr.String() + "/v1/subscriber"); err != nil || !strings.HasSuffix(out, "\n200") {
		t.Fatalf("HTTP: %v %q", err, out)
	}
	a.ns.Exec("curl", "-sk", "--max-time", "3", "--resolve", "iot.example.test:8443:"+b.addr(), "https://iot.example.test:8443/")
	a.ns.Exec("mosquitto_pub", "-h", b.addr(), "-p", "1883", "-t", "t", "-m", "m", "-q", "0")

	var rec fleet.InspectionRecord
	waitForWithin(t, 30*time.Second, "an inspection record", func() bool {
		p, err := f.st.ListRecords(context.Background(), store.RecordFilter{GroupID: grp.ID, Category: fleet.InspectionCategory, PageRequest: store.PageRequest{Limit: 10}})
		if err != nil || len(p.Items) == 0 {
			return false
		}
		// The interval holding the traffic: the one with HTTP in it.
		for _, r := range p.Items {
			var x fleet.InspectionRecord
			if json.Unmarshal(r.Payload, &x) == nil && len(x.HTTPHosts) > 0 {
				rec = x
				return true
			}
		}
		return false
	})
	protos := map[string]fleet.DetectedProtocol{}
	for _, p := range rec.Detected.Protos {
		protos[p.Name] = p
	}
	for name, minFlows := range map[string]int64{"DNS": 3, "HTTP": 1, "TLS": 1, "MQTT": 1} {
		if p := protos[name]; p.Flows < minFlows || p.Packets < 2*minFlows || p.Bytes == 0 {
			t.Errorf("%s: %+v, want at least %d flows (record %+v)", name, p, minFlows, rec.Detected.Protos)
		}
	}
	st := rec.Traffic.Statistics
	if st.UDP < 6 || st.TCP < 10 || st.Packets != st.TCP+st.UDP+st.ICMP+st.Other || st.Flows < 6 || rec.Group != "inspected" {
		t.Errorf("statistics: %+v", st)
	}
	var sized int64
	for _, n := range st.Sizes {
		sized += n
	}
	if sized != st.Packets {
		t.Errorf("size buckets hold %d packets of %d", sized, st.Packets)
	}
	if rec.HTTPHosts[MetadataAddr.String()] == 0 || rec.TLSNames["iot.example.test"] == 0 {
		t.Errorf("hosts %v, TLS names %v", rec.HTTPHosts, rec.TLSNames)
	}
	// The records reach the webhook too, signed.
	select {
	case body := <-hooked:
		var x fleet.InspectionRecord
		if err := json.Unmarshal(body, &x); err != nil || x.Kind != "inspection" || x.GroupID != grp.ID {
			t.Fatalf("webhook body: %v %s", err, body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no signed inspection record at the webhook")
	}
	// The same interval's flows, decoded by the collector: the device's
	// MQTT connection to the other device is among them.
	defer func() {
		if t.Failed() {
			t.Logf("nfcapd:\n%s", nfcapd.Output())
		}
	}()
	waitForWithin(t, 15*time.Second, "nfcapd to decode the flows", func() bool {
		out := nfcapd.Output()
		return strings.Contains(out, a.addr()) && strings.Contains(out, b.addr()) && strings.Contains(out, "1883")
	})
}
