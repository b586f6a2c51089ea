// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"net/netip"
	"time"
)

// CaptureStatus is where a packet capture session is (SORACOM Peek's
// states).
type CaptureStatus string

// Capture states: requested, then capturing, then post-processing, then
// done; or failed or stopped, with a reason.
const (
	CaptureRequested      CaptureStatus = "REQUESTED"
	CaptureCapturing      CaptureStatus = "CAPTURING"
	CapturePostProcessing CaptureStatus = "POST_PROCESSING"
	CaptureDone           CaptureStatus = "DONE"
	CaptureFailed         CaptureStatus = "FAILED"
	CaptureStopped        CaptureStatus = "STOPPED"
)

// Ended reports whether a capture is over (its file, if any, is final).
func (s CaptureStatus) Ended() bool {
	return s == CaptureDone || s == CaptureFailed || s == CaptureStopped
}

// Capture bounds and defaults.
const (
	MinCaptureDuration  = 30 * time.Second
	MaxCaptureDuration  = 24 * time.Hour
	DefaultCaptureBytes = 5 << 30
	// CaptureRetention is how long a capture's file is kept after it ends.
	CaptureRetention = 7 * 24 * time.Hour
	// MaxActiveCaptures bounds the sessions requested or capturing at once
	// on one SIM or group.
	MaxActiveCaptures = 2
)

// Capture is a packet capture session on a SIM or a group: the inner IP
// packets of its tunnel(s), both directions, written to a pcap file.
type Capture struct {
	ID      string `json:"id"`
	SIMID   string `json:"simId,omitempty"`
	GroupID string `json:"groupId,omitempty"`
	// Duration is how long it captures (30 s to 24 h).
	Duration time.Duration `json:"-"`
	// Prefix, if set, keeps packets to or from it only; Protocol ("tcp",
	// "udp", "icmp") and Port (either end) narrow further.
	Prefix   netip.Prefix `json:"prefix,omitzero"`
	Protocol string       `json:"protocol,omitempty"`
	Port     uint16       `json:"port,omitempty"`
	// MaxBytes stops the capture when its file reaches it.
	MaxBytes int64         `json:"maxBytes"`
	Status   CaptureStatus `json:"status"`
	Reason   string        `json:"reason,omitempty"`
	Packets  int64         `json:"packets"`
	Bytes    int64         `json:"bytes"`
	Created  time.Time     `json:"created"`
	Started  time.Time     `json:"started,omitzero"`
	Ended    time.Time     `json:"ended,omitzero"`
	// Expires is when its file is deleted (CaptureRetention after it ends).
	Expires   time.Time `json:"expires,omitzero"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

// ChangeCapture: a capture session (ID) was requested, stopped or deleted.
const ChangeCapture ChangeKind = "capture"
