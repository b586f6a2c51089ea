// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Installation values every node must share, checked when a node starts.
const (
	installGatewayKey  = "gateway_public_key"
	installSettingsKCV = "settings_key_check"
)

// IdentityMismatchError is a node whose WireGuard identity or settings
// key is not the installation's: it must not serve (devices would refuse
// its handshakes, or it would fail to open the secrets others sealed).
type IdentityMismatchError struct {
	What, Node, Installation string
}

func (e *IdentityMismatchError) Error() string {
	switch e.What {
	case installGatewayKey:
		return fmt.Sprintf("this node's WireGuard identity (public key %s) is not the installation's (%s): every node serves the same identity; give this node the key the others have (the data directory's gateway.key, or the same PKCS#11 object or key agent)", e.Node, e.Installation)
	default:
		return fmt.Sprintf("this node's settings key (check value %s) is not the installation's (%s): every node opens the secrets the others sealed; give this node the settings key the others have (the data directory's %s)", e.Node, e.Installation, "settings.key")
	}
}

// CheckNodeIdentity records, on the installation's first node, its
// WireGuard public key and the check value of its settings key, and on
// every later start of any node refuses one that differs
// (IdentityMismatchError). settingsKCV is "" for a node without a
// settings key (then only the WireGuard identity is checked).
func (s *Service) CheckNodeIdentity(ctx context.Context, gatewayKey wgkey.Public, settingsKCV string) error {
	check := func(name, mine string) error {
		var held string
		err := s.st.Update(ctx, func(tx store.Tx) (err error) {
			held, err = tx.InitInstallation(ctx, name, mine)
			return err
		})
		if err != nil {
			return err
		}
		if held != mine {
			return &IdentityMismatchError{What: name, Node: mine, Installation: held}
		}
		return nil
	}
	if err := check(installGatewayKey, gatewayKey.String()); err != nil {
		return err
	}
	if settingsKCV != "" {
		return check(installSettingsKCV, settingsKCV)
	}
	return nil
}

// nodeNameRE is what a node name may be: a host name, with a port.
var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// CheckNodeName refuses what cannot be a node's name.
func CheckNodeName(name string) error {
	if !nodeNameRE.MatchString(name) {
		return fleet.Errorf(fleet.CodeInvalid, "name", "%q: a node name is 1 to 128 letters, digits and . _ : -", name)
	}
	return nil
}

// Heartbeat registers this node or refreshes its record (the caller is
// the node itself: no actor).
func (s *Service) Heartbeat(ctx context.Context, n fleet.Node) error {
	if err := CheckNodeName(n.Name); err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error { return tx.PutNode(ctx, n) })
}

// ListNodes lists the installation's nodes by name, up or not
// (fleet.Node.Up), each with the cluster-wide jobs it runs.
func (s *Service) ListNodes(ctx context.Context, a Actor) ([]fleet.Node, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return nil, err
	}
	ns, err := s.st.ListNodes(ctx)
	if err != nil {
		return nil, storeErr(err, "")
	}
	ls, err := s.st.ListLeases(ctx)
	if err != nil {
		return nil, storeErr(err, "")
	}
	now := s.now()
	for _, l := range ls {
		if !now.Before(l.Until) {
			continue // lapsed: no one runs it until a node takes it
		}
		for i := range ns {
			if ns[i].Name == l.Holder {
				ns[i].Jobs = append(ns[i].Jobs, l.Job)
			}
		}
	}
	return ns, nil
}

// ForgetNode removes a node that is down from the registry (one retired
// for good); a node that is up is refused: it would register again at
// its next heartbeat.
func (s *Service) ForgetNode(ctx context.Context, a Actor, name string) error {
	if err := require(a, fleet.RoleAdmin); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		ns, err := tx.ListNodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.Name == name && n.Up(s.now()) {
				return fleet.Errorf(fleet.CodeBadState, "name", "node %s is up (seen %s ago): stop it first", name, s.now().Sub(n.Seen).Round(1e9))
			}
		}
		if err := tx.DeleteNode(ctx, name); err != nil {
			return storeErr(err, "name")
		}
		return s.event(ctx, tx, a, "node.forget", "node", name, nil)
	})
	return storeErr(err, "name")
}

// TakeLease gives this node (holder) the lease of a cluster-wide job for
// ttl from now, if it is free, lapsed or already this node's, and says
// whether the node holds it (the caller is the node itself: no actor).
// Nodes' clocks are compared through the lease's end, so they are to be
// kept within a fraction of ttl of each other (NTP).
func (s *Service) TakeLease(ctx context.Context, job, holder string, ttl time.Duration) (bool, error) {
	if err := CheckNodeName(holder); err != nil {
		return false, err
	}
	var held bool
	now := s.now()
	err := s.st.Update(ctx, func(tx store.Tx) (err error) {
		held, err = tx.TakeLease(ctx, job, holder, now, now.Add(ttl))
		return err
	})
	return held, err
}

// ReleaseLease gives up this node's lease of a job (a clean stop), so
// another node takes the job over at once rather than when it lapses.
func (s *Service) ReleaseLease(ctx context.Context, job, holder string) error {
	return s.st.Update(ctx, func(tx store.Tx) error { return tx.ReleaseLease(ctx, job, holder) })
}

// ListLeases lists the cluster-wide jobs' leases: which node runs which.
func (s *Service) ListLeases(ctx context.Context, a Actor) ([]fleet.Lease, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return nil, err
	}
	ls, err := s.st.ListLeases(ctx)
	return ls, storeErr(err, "")
}
