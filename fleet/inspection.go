// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Inspection says whether the gateway measures a group's traffic and
// delivers a statistics record per interval (SORACOM Junction's
// inspection).
type Inspection struct {
	Enabled bool `json:"enabled"`
	// IntervalSeconds is the record's interval: 10 to 3600, default 60.
	IntervalSeconds int `json:"intervalSeconds,omitempty"`
	// PerSIM makes a record per SIM of the group, instead of one for it.
	PerSIM bool `json:"perSim,omitempty"`
	// Webhook also posts each record to the group's webhook
	// (security.webhookUrl), signed with its secret like alerts.
	Webhook bool `json:"webhook,omitempty"`
	// IPFIXCollectors receive the interval's flows as IPFIX (RFC 7011)
	// over UDP: "IP:port", at most 4.
	IPFIXCollectors []string `json:"ipfixCollectors,omitempty"`
	// ForwardPath, if set, also posts each record along the group's HTTP
	// forwarder route for this path (forwarders.http), as a device's POST
	// there would go: the route's destination, credential and signature.
	ForwardPath string `json:"forwardPath,omitempty"`
}

// DefaultInspectionInterval is the interval when none is given.
const DefaultInspectionInterval = 60

// Normalize checks the interval and fills its default.
func (i *Inspection) Normalize(prefix string) error {
	if i.IntervalSeconds == 0 {
		i.IntervalSeconds = DefaultInspectionInterval
	}
	if i.IntervalSeconds < 10 || i.IntervalSeconds > 3600 {
		return Errorf(CodeInvalid, prefix+".intervalSeconds", "between 10 and 3600 seconds")
	}
	if len(i.IPFIXCollectors) > 4 {
		return Errorf(CodeInvalid, prefix+".ipfixCollectors", "at most 4 collectors")
	}
	for k, c := range i.IPFIXCollectors {
		ap, err := netip.ParseAddrPort(c)
		if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
			return Errorf(CodeInvalid, fmt.Sprintf("%s.ipfixCollectors[%d]", prefix, k), "%q: a collector's IP:port (e.g. 192.0.2.5:4739)", c)
		}
		i.IPFIXCollectors[k] = ap.String()
	}
	if p := i.ForwardPath; p != "" && (!strings.HasPrefix(p, "/") || strings.Contains(p, "..") || strings.ContainsAny(p, "\\\x00?#") || len(p) > 256) {
		return Errorf(CodeInvalid, prefix+".forwardPath", "%q: a path starting with '/' (no '..', '?', '#' or backslash)", p)
	}
	return nil
}

// InspectionCategory is the data-store category of inspection records.
const InspectionCategory = "inspection"

// InspectionRecord is one interval of a group's (or, with perSim, a
// SIM's) inspection, as the gateway writes it (JSON, in the data store's
// inspection category and to webhooks) and the console reads it.
type InspectionRecord struct {
	// Kind is "inspection": webhook receivers tell it from alerts by it.
	Kind    string    `json:"kind"`
	Group   string    `json:"group"`
	GroupID string    `json:"groupId"`
	SIMID   string    `json:"simId,omitempty"` // a group with perSim
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Traffic struct {
		Statistics struct {
			Bytes      int64            `json:"bytes"`
			Packets    int64            `json:"packets"`
			Flows      int              `json:"flows"`
			TCP        int64            `json:"tcp"`
			UDP        int64            `json:"udp"`
			ICMP       int64            `json:"icmp"`
			Other      int64            `json:"other"`
			Fragmented int64            `json:"fragmented"`
			Sizes      map[string]int64 `json:"sizes"`
		} `json:"statistics"`
	} `json:"traffic"`
	Detected struct {
		Protos []DetectedProtocol `json:"protos"`
	} `json:"detected"`
	HTTPHosts map[string]int64 `json:"httpHosts,omitempty"`
	TLSNames  map[string]int64 `json:"tlsServerNames,omitempty"`
}

// DetectedProtocol is one protocol nDPI recognised in an interval.
type DetectedProtocol struct {
	Name    string `json:"name"`
	Breed   string `json:"breed"`
	Packets int64  `json:"packets"`
	Bytes   int64  `json:"bytes"`
	Flows   int64  `json:"flows"`
}
