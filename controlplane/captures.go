// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// CaptureSpec asks for a packet capture session on a SIM or a group.
type CaptureSpec struct {
	SIMID, GroupID string
	Duration       time.Duration
	Prefix         netip.Prefix
	Protocol       string
	Port           uint16
	MaxBytes       int64 // 0: fleet.DefaultCaptureBytes
}

// MaxCaptureBytes bounds a session's file.
const MaxCaptureBytes = 100 << 30

// CreateCapture requests a capture: the gateway serving the target starts
// it (REQUESTED → CAPTURING). At most fleet.MaxActiveCaptures sessions
// are requested or capturing per SIM or group.
func (s *Service) CreateCapture(ctx context.Context, a Actor, sp CaptureSpec) (fleet.Capture, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.Capture{}, err
	}
	switch {
	case (sp.SIMID == "") == (sp.GroupID == ""):
		return fleet.Capture{}, fleet.Errorf(fleet.CodeInvalid, "simId", "give a SIM or a group")
	case sp.Duration < fleet.MinCaptureDuration || sp.Duration > fleet.MaxCaptureDuration:
		return fleet.Capture{}, fleet.Errorf(fleet.CodeInvalid, "duration", "between %d and %d seconds", int(fleet.MinCaptureDuration.Seconds()), int(fleet.MaxCaptureDuration.Seconds()))
	case sp.Prefix.IsValid() && sp.Prefix != sp.Prefix.Masked():
		return fleet.Capture{}, fleet.Errorf(fleet.CodeInvalid, "prefix", "%s has host bits set (want %s)", sp.Prefix, sp.Prefix.Masked())
	case sp.Protocol != "" && sp.Protocol != "tcp" && sp.Protocol != "udp" && sp.Protocol != "icmp":
		return fleet.Capture{}, fleet.Errorf(fleet.CodeInvalid, "protocol", "tcp, udp, icmp or empty")
	case sp.Port != 0 && sp.Protocol == "icmp":
		return fleet.Capture{}, fleet.Errorf(fleet.CodeInvalid, "port", "ICMP has no ports")
	case sp.MaxBytes < 0 || sp.MaxBytes > MaxCaptureBytes || sp.MaxBytes != 0 && sp.MaxBytes < 1<<20:
		return fleet.Capture{}, fleet.Errorf(fleet.CodeInvalid, "maxBytes", "between 1 MiB and %d bytes, or 0 for 5 GiB", int64(MaxCaptureBytes))
	}
	if sp.MaxBytes == 0 {
		sp.MaxBytes = fleet.DefaultCaptureBytes
	}
	now := s.now()
	c := fleet.Capture{ID: newID("cap", now), SIMID: sp.SIMID, GroupID: sp.GroupID, Duration: sp.Duration, Prefix: sp.Prefix, Protocol: sp.Protocol, Port: sp.Port,
		MaxBytes: sp.MaxBytes, Status: fleet.CaptureRequested, Created: now, CreatedBy: a.String()}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if c.SIMID != "" {
			sim, err := tx.SIM(ctx, c.SIMID)
			if err != nil {
				return storeErr(err, "simId")
			}
			if sim.Status == fleet.StatusTerminated {
				return fleet.Errorf(fleet.CodeBadState, "simId", "the SIM is terminated")
			}
		} else if _, err := tx.Group(ctx, c.GroupID); err != nil {
			return storeErr(err, "groupId")
		}
		if err := tx.Lock(ctx, "captures"); err != nil {
			return err
		}
		active := 0
		for cursor := ""; ; {
			p, err := tx.ListCaptures(ctx, store.PageRequest{Limit: store.MaxLimit, Cursor: cursor})
			if err != nil {
				return err
			}
			for _, x := range p.Items {
				if !x.Status.Ended() && x.SIMID == c.SIMID && x.GroupID == c.GroupID {
					active++
				}
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if active >= fleet.MaxActiveCaptures {
			return fleet.Errorf(fleet.CodeConflict, "simId", "%d capture sessions are running on this target already (at most %d)", active, fleet.MaxActiveCaptures)
		}
		if err := tx.PutCapture(ctx, c); err != nil {
			return err
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeCapture, ID: c.ID})
		return s.event(ctx, tx, a, "capture.create", "capture", c.ID, map[string]any{"simId": c.SIMID, "groupId": c.GroupID, "durationSeconds": int(c.Duration.Seconds())})
	})
	return c, err
}

// GetCapture reads a capture session.
func (s *Service) GetCapture(ctx context.Context, a Actor, id string) (fleet.Capture, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.Capture{}, err
	}
	c, err := s.st.Capture(ctx, id)
	return c, storeErr(err, "id")
}

// ListCaptures lists capture sessions.
func (s *Service) ListCaptures(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.Capture], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.Capture]{}, err
	}
	page, err := s.st.ListCaptures(ctx, p)
	return page, storeErr(err, "")
}

// StopCapture ends a capturing session early (STOPPED; its file is kept):
// a 400 unless it is capturing.
func (s *Service) StopCapture(ctx context.Context, a Actor, id string) (fleet.Capture, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.Capture{}, err
	}
	var c fleet.Capture
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if c, err = tx.Capture(ctx, id); err != nil {
			return storeErr(err, "id")
		}
		if c.Status != fleet.CaptureCapturing {
			return fleet.Errorf(fleet.CodeInvalid, "status", "the session is %s, not CAPTURING", c.Status)
		}
		now := s.now()
		c.Status, c.Reason, c.Ended, c.Expires = fleet.CaptureStopped, "stopped by "+a.String(), now, now.Add(fleet.CaptureRetention)
		if err := tx.PutCapture(ctx, c); err != nil {
			return err
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeCapture, ID: c.ID})
		return s.event(ctx, tx, a, "capture.stop", "capture", c.ID, nil)
	})
	return c, err
}

// DeleteCapture removes a session and (through the gateway, which owns the
// file) its file; a running one stops first.
func (s *Service) DeleteCapture(ctx context.Context, a Actor, id string) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.DeleteCapture(ctx, id); err != nil {
			return storeErr(err, "id")
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeCapture, ID: id})
		return s.event(ctx, tx, a, "capture.delete", "capture", id, nil)
	})
}

// UpdateCapture records what the gateway running a session did (started,
// counted, ended): not an operator's operation, so no event but its end.
// A session that ended meanwhile (stopped) keeps its state; only its
// counters move.
func (s *Service) UpdateCapture(ctx context.Context, id string, fn func(*fleet.Capture)) (fleet.Capture, error) {
	var c fleet.Capture
	err := s.st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.Capture(ctx, id)
		if err != nil {
			return err
		}
		c = cur
		fn(&c)
		if cur.Status.Ended() {
			cur.Packets, cur.Bytes = c.Packets, c.Bytes
			c = cur
		}
		if c.Status.Ended() && c.Ended.IsZero() {
			now := s.now()
			c.Ended, c.Expires = now, now.Add(fleet.CaptureRetention)
		}
		if err := tx.PutCapture(ctx, c); err != nil {
			return err
		}
		if c.Status.Ended() && !cur.Status.Ended() {
			return s.event(ctx, tx, System, "capture.end", "capture", c.ID, map[string]any{"status": string(c.Status), "reason": c.Reason, "packets": c.Packets, "bytes": c.Bytes})
		}
		return nil
	})
	return c, err
}

// CaptureURL returns a download path for a session's file, valid until
// expires: GET it without a token (for a browser, curl, tshark's remote
// reads).
func (s *Service) CaptureURL(ctx context.Context, a Actor, id string, valid time.Duration) (string, time.Time, error) {
	if _, err := s.GetCapture(ctx, a, id); err != nil {
		return "", time.Time{}, err
	}
	exp := s.now().Add(valid)
	e := strconv.FormatInt(exp.Unix(), 10)
	return fmt.Sprintf("/api/v1/captures/%s/download?expires=%s&signature=%s", id, e, s.captureSig(id, e)), exp, nil
}

func (s *Service) captureSig(id, expires string) string {
	m := hmac.New(sha256.New, s.captureURLKey)
	m.Write([]byte(id + "\n" + expires))
	return hex.EncodeToString(m.Sum(nil))
}

// CheckCaptureURL reports whether a download URL's expiry and signature
// hold for the session id.
func (s *Service) CheckCaptureURL(id, expires, signature string) error {
	e, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || s.now().Unix() > e {
		return fleet.Errorf(fleet.CodeUnauthorized, "expires", "the download link has expired")
	}
	if !hmac.Equal([]byte(signature), []byte(s.captureSig(id, expires))) {
		return fleet.Errorf(fleet.CodeUnauthorized, "signature", "not a download link this platform made")
	}
	return nil
}
