// SPDX-License-Identifier: Apache-2.0

// Package noiseinit makes the engine benchmark's handshake initiations with
// our own noise and cookie packages — the maker the lead asked for, so the
// measured responders never share code with the initiator under test
// (wggo.Initiations, built on golang.zx2c4.com/wireguard, is the cross-check).
package noiseinit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"runtime"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Maker is an enginebench.InitiationMaker on our noise package. No preshared
// key: the benchmark's peers have none.
type Maker struct{}

// Initiations implements enginebench.InitiationMaker, one worker per CPU.
func (Maker) Initiations(responder wgkey.Public, initiators []enginebench.KeyPair) ([][]byte, error) {
	out := make([][]byte, len(initiators))
	buf := make([]byte, len(initiators)*wire.InitiationSize) // one allocation for the whole set
	peer := responder
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var macs cookie.Generator
			macs.Init(peer)
			for i := w; i < len(initiators); i += workers {
				ss, err := keystore.NewMemory(initiators[i].Private).DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer})
				if err != nil {
					errs[w] = err
					return
				}
				st, msg, err := noise.CreateInitiation(noise.InitiationParams{
					Local:        initiators[i].Public,
					Peer:         peer,
					StaticStatic: &ss,
					SenderIndex:  randomIndex(),
					Timestamp:    tai64n.From(time.Now()),
				})
				if err != nil {
					errs[w] = err
					return
				}
				st.Wipe()
				b := buf[i*wire.InitiationSize : (i+1)*wire.InitiationSize : (i+1)*wire.InitiationSize]
				msg.Marshal(b)
				macs.AddMACs(b, time.Now())
				out[i] = b
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func randomIndex() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}

var _ enginebench.InitiationMaker = Maker{}
