// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"fmt"
	"net/netip"
	"strings"
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
