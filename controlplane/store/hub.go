// SPDX-License-Identifier: Apache-2.0

package store

import (
	"sync"

	"github.com/wirefleet/wirefleet/fleet"
)

// SubscriberBuffer is how many changes a subscriber may have unread before
// it is dropped (its channel closed) rather than slowing every writer.
const SubscriberBuffer = 1024

// Hub fans committed changes out to in-process subscribers. Store
// implementations embed one.
type Hub struct {
	mu   sync.Mutex
	subs map[chan fleet.Change]struct{}
}

// Subscribe implements Store.Subscribe.
func (h *Hub) Subscribe() (<-chan fleet.Change, func()) {
	ch := make(chan fleet.Change, SubscriberBuffer)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[chan fleet.Change]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Publish delivers changes to every subscriber without blocking. A
// subscriber whose buffer is full is dropped: a gateway that silently missed
// a suspension would be worse than one told to resynchronise.
func (h *Hub) Publish(changes ...fleet.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		for _, c := range changes {
			select {
			case ch <- c:
			default:
				delete(h.subs, ch)
				close(ch)
			}
			if _, ok := h.subs[ch]; !ok {
				break
			}
		}
	}
}

// CloseAll ends every subscription.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}
