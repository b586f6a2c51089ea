// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/services/dns"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// servicesMTU is the MTU of the service stack: the WireGuard inner MTU.
const servicesMTU = 1420

// services is the gVisor userspace network stack hosting the platform
// services, with the servers on it.
type services struct {
	g    *Gateway
	dev  tun.Device
	net  *netstack.Net
	http *http.Server
	ext  []platform.Service // started ones, closed in close
	mu   sync.Mutex         // serialises writes into the stack
	wg   sync.WaitGroup
}

func startServices(g *Gateway) (*services, error) {
	addrs, err := stackAddrs(g.cfg.Services)
	if err != nil {
		return nil, err
	}
	dev, tnet, err := netstack.CreateNetTUN(addrs, nil, servicesMTU)
	if err != nil {
		return nil, err
	}
	s := &services{g: g, dev: dev, net: tnet}
	ln, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(MetadataAddr, 80))
	if err != nil {
		s.close()
		return nil, err
	}
	s.http = &http.Server{Handler: s.metadataHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.http.Serve(ln)
	}()
	go func() {
		defer s.wg.Done()
		s.readLoop()
	}()
	host := &serviceHost{s: s}
	// DNS is a platform service like the others, always there.
	builtin := dns.New(dns.Config{Zone: g.zone, Addrs: DNSAddrs, Names: map[string]netip.Addr{"dns": DNSAddrs[0], "metadata": MetadataAddr}})
	for _, ps := range append([]platform.Service{builtin}, g.cfg.Services...) {
		if err := ps.Start(host); err != nil {
			s.close()
			return nil, err
		}
		s.ext = append(s.ext, ps)
	}
	return s, nil
}

// inject hands packets from devices to the stack.
func (s *services) inject(pkts [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.dev.Write(pkts, 0)
	return err
}

// servicesBatch is how many packets the stack's output is gathered into
// before they go to the engine: a burst of TCP segments towards one device
// (a forwarder's answer, a remote-access download) leaves in one sendmmsg
// instead of one system call each.
const servicesBatch = 64

var servicesBufs = sync.Pool{New: func() any { b := make([]byte, servicesMTU+64); return &b }}

// readLoop sends what the stack emits to the device owning the destination.
// The stack hands out one packet per Read, so a reader goroutine queues
// them and this loop takes whatever has queued up meanwhile as one batch,
// consecutive packets to one device in one Send. An idle stack costs
// nothing; a lone packet waits for no other.
func (s *services) readLoop() {
	queue := make(chan *[]byte, servicesBatch*4)
	go func() {
		defer close(queue)
		sizes, bufs := []int{0}, [][]byte{nil}
		for {
			b := servicesBufs.Get().(*[]byte)
			bufs[0] = *b
			if _, err := s.dev.Read(bufs, sizes, 0); err != nil {
				servicesBufs.Put(b)
				return
			}
			*b = (*b)[:sizes[0]]
			queue <- b
		}
	}()
	batch := make([]*[]byte, 0, servicesBatch)
	for b := range queue {
		batch = append(batch[:0], b)
	gather:
		for len(batch) < servicesBatch {
			select {
			case b, ok := <-queue:
				if !ok {
					break gather
				}
				batch = append(batch, b)
			default:
				break gather
			}
		}
		s.sendBatch(batch)
		for _, b := range batch {
			*b = (*b)[:cap(*b)]
			servicesBufs.Put(b)
		}
	}
}

// sendBatch hands the stack's packets to their devices, consecutive
// packets to one device in one Send (the engine copies them).
func (s *services) sendBatch(batch []*[]byte) {
	var (
		to   *engine.Peer
		pkts [][]byte
	)
	flush := func() {
		if len(pkts) > 0 {
			s.g.eng.Send(to, pkts)
			pkts = pkts[:0]
		}
	}
	for _, b := range batch {
		pkt := *b
		dst, ok := packet.Destination(pkt)
		if !ok || !dst.Is4() {
			continue
		}
		p := s.g.router.peerFor(dst)
		if p == nil {
			s.g.router.drops.add(dropUnknownDst)
			continue
		}
		if p != to {
			flush()
			to = p
		}
		pkts = append(pkts, pkt)
	}
	flush()
}

func (s *services) close() {
	for i := len(s.ext) - 1; i >= 0; i-- { // reverse start order: fronts before what they use
		s.ext[i].Close()
	}
	if s.http != nil {
		s.http.Close()
	}
	s.dev.Close()
	s.wg.Wait()
}

// callerSIM returns the SIM behind a tunnel source address: the router has
// already checked that the address is the sending SIM's own.
func (s *services) callerSIM(ctx context.Context, addr netip.Addr) (fleet.SIM, bool) {
	p := s.g.router.peerFor(addr.Unmap())
	if p == nil {
		return fleet.SIM{}, false
	}
	st := stateOf(p)
	if st == nil || st.revoked.Load() {
		return fleet.SIM{}, false
	}
	// Read the stored record: tags may have changed since the handshake.
	sim, err := s.g.st.SIM(ctx, st.id)
	if err != nil || sim.Address != addr.Unmap() {
		return fleet.SIM{}, false
	}
	return sim, true
}

// ---- metadata ----

// Subscriber is what GET /v1/subscriber returns: the calling SIM's record.
type Subscriber struct {
	ID        string            `json:"id"`
	IMSI      string            `json:"imsi"`
	Name      string            `json:"name"`
	IPAddress string            `json:"ipAddress"`
	GroupID   string            `json:"groupId,omitempty"`
	GroupName string            `json:"groupName,omitempty"`
	Tags      map[string]string `json:"tags"`
	Status    fleet.Status      `json:"status"`
	// KeyRotationRequired tells the device to replace its key before
	// RotateBy (the agent does, by announcing a next key).
	KeyRotationRequired bool      `json:"keyRotationRequired,omitempty"`
	RotateBy            time.Time `json:"rotateBy,omitzero"`
}

func (s *services) metadataHandler() http.Handler {
	mux := http.NewServeMux()
	with := func(fn func(w http.ResponseWriter, r *http.Request, sim fleet.SIM, grp *groupPolicy)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ap, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil {
				http.Error(w, "unknown caller", http.StatusForbidden)
				return
			}
			sim, ok := s.callerSIM(r.Context(), ap.Addr())
			if !ok {
				http.Error(w, "unknown caller", http.StatusForbidden)
				return
			}
			var grp *groupPolicy
			if sim.GroupID != "" {
				s.g.policies.ensure(r.Context(), s.g.st, sim.GroupID)
				grp = s.g.policies.get(sim.GroupID)
			}
			fn(w, r, sim, grp)
		}
	}
	writeSub := func(w http.ResponseWriter, sim fleet.SIM, grp *groupPolicy) {
		sub := Subscriber{ID: sim.ID, IMSI: sim.IMSI, Name: sim.Name, IPAddress: sim.Address.String(), GroupID: sim.GroupID, Tags: sim.Tags, Status: sim.Status,
			KeyRotationRequired: !sim.RotateBy.IsZero(), RotateBy: sim.RotateBy}
		if grp != nil {
			sub.GroupName = grp.name
		}
		if sub.Tags == nil {
			sub.Tags = map[string]string{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(sub)
	}
	mux.HandleFunc("GET /v1/subscriber", with(func(w http.ResponseWriter, r *http.Request, sim fleet.SIM, grp *groupPolicy) {
		writeSub(w, sim, grp)
	}))
	mux.HandleFunc("GET /v1/userdata", with(func(w http.ResponseWriter, r *http.Request, sim fleet.SIM, grp *groupPolicy) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if grp != nil {
			io.WriteString(w, grp.settings.UserData)
		}
	}))
	mux.HandleFunc("PUT /v1/subscriber/tags", with(func(w http.ResponseWriter, r *http.Request, sim fleet.SIM, grp *groupPolicy) {
		if grp == nil || !grp.settings.DevicesMayWriteTags {
			http.Error(w, "this SIM's group does not let devices write tags", http.StatusForbidden)
			return
		}
		set, err := parseTags(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tags := map[string]string{}
		for k, v := range sim.Tags {
			tags[k] = v
		}
		for k, v := range set {
			tags[k] = v
		}
		// The device acts on its own SIM only, with the tunnel as credential.
		actor := controlplane.Actor{Kind: "sim", ID: sim.ID, Role: fleet.RoleOperator}
		updated, err := s.g.svc.SetSIMTags(r.Context(), actor, sim.ID, tags)
		var fe *fleet.Error
		if errors.As(err, &fe) {
			http.Error(w, fe.Error(), http.StatusBadRequest)
			return
		} else if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		writeSub(w, updated, grp)
	}))
	// Key rotation over the tunnel: the device announces its next key,
	// authenticated by the session of its current one (no API credential
	// on the device). Both keys are accepted until the first handshake with
	// the next key makes it current (PromoteNextKey) and the old session
	// goes.
	mux.HandleFunc("PUT /v1/subscriber/key", with(func(w http.ResponseWriter, r *http.Request, sim fleet.SIM, grp *groupPolicy) {
		var body struct {
			PublicKey wgkey.Public `json:"publicKey"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.PublicKey.IsZero() {
			http.Error(w, `want {"publicKey": "<base64 WireGuard public key>"}`, http.StatusBadRequest)
			return
		}
		actor := controlplane.Actor{Kind: "sim", ID: sim.ID, Role: fleet.RoleOperator}
		updated, _, err := s.g.svc.SetSIMKey(r.Context(), actor, sim.ID, controlplane.KeySpec{PublicKey: body.PublicKey, Next: true})
		var fe *fleet.Error
		if errors.As(err, &fe) {
			code := http.StatusBadRequest
			if fe.Code == fleet.CodeConflict {
				code = http.StatusConflict
			}
			http.Error(w, fe.Error(), code)
			return
		} else if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		writeSub(w, updated, grp)
	}))
	return mux
}

// parseTags accepts the Arc form [{"tagName":…,"tagValue":…}] or an object.
func parseTags(r io.Reader) (map[string]string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var list []struct {
		Name  string `json:"tagName"`
		Value string `json:"tagValue"`
	}
	if err := json.Unmarshal(b, &list); err == nil {
		m := map[string]string{}
		for _, t := range list {
			m[t.Name] = t.Value
		}
		return m, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("want [{\"tagName\":…,\"tagValue\":…}] or {\"name\":\"value\"}")
	}
	return m, nil
}
