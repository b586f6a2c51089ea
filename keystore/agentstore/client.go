// SPDX-License-Identifier: Apache-2.0

package agentstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// DefaultTimeout bounds a request whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// maxIdle is how many connections a Client keeps open between requests.
// Concurrent DHs each take a connection, so a slow DH does not queue the
// others behind it on the agent's side.
const maxIdle = 4

// Client is a keystore.Store whose key lives in a key agent: every DH is a
// request over the agent's Unix socket. It is safe for concurrent use.
type Client struct {
	path string
	slot string
	pub  wgkey.Public

	mu     sync.Mutex
	idle   []*clientConn
	closed bool
}

var _ keystore.Store = (*Client)(nil)

type clientConn struct {
	c net.Conn
	r *bufio.Reader
}

// Dial connects to the agent at path and fetches the public key of slot.
func Dial(path, slot string) (*Client, error) {
	return open(path, slot, OpPublicKey)
}

// Generate asks the agent at path to make a new key in slot (which must be
// empty) and returns a Client for it.
func Generate(path, slot string) (*Client, error) {
	return open(path, slot, OpGenerate)
}

// Delete asks the agent at path to destroy the key in slot.
func Delete(path, slot string) error {
	if err := CheckSlot(slot); err != nil {
		return fmt.Errorf("agentstore: %w", err)
	}
	c := &Client{path: path, slot: slot}
	defer c.Close()
	_, err := c.roundTrip(context.Background(), Request{Op: OpDelete, Slot: slot})
	return err
}

func open(path, slot string, op Op) (*Client, error) {
	if err := CheckSlot(slot); err != nil {
		return nil, fmt.Errorf("agentstore: %w", err)
	}
	c := &Client{path: path, slot: slot}
	v, err := c.roundTrip(context.Background(), Request{Op: op, Slot: slot})
	if err != nil {
		c.Close()
		return nil, err
	}
	if c.pub, err = parseKey(v); err != nil {
		c.Close()
		return nil, fmt.Errorf("agentstore: public key from the agent: %v", err)
	}
	return c, nil
}

// Slot is the agent slot this client uses.
func (c *Client) Slot() string { return c.slot }

// PublicKey implements keystore.Store.
func (c *Client) PublicKey() wgkey.Public { return c.pub }

// DH implements keystore.Store. Agent errors match keystore.ErrLowOrder,
// keystore.ErrRefused, ErrDenied and fs.ErrNotExist as a local store's would.
func (c *Client) DH(ctx context.Context, req keystore.DHRequest) ([32]byte, error) {
	var out [32]byte
	v, err := c.roundTrip(ctx, Request{Op: OpDH, Slot: c.slot, Purpose: req.Purpose, Peer: req.Peer})
	if err != nil {
		return out, err
	}
	k, err := parseKey(v)
	if err != nil {
		return out, fmt.Errorf("agentstore: DH result from the agent: %v", err)
	}
	if k == (wgkey.Public{}) {
		// An agent must answer low-order; one that sends zeros is not
		// trusted to have checked.
		return out, keystore.ErrLowOrder
	}
	return [32]byte(k), nil
}

// Close closes the idle connections; requests in flight finish.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, cc := range c.idle {
		cc.c.Close()
	}
	c.idle = nil
	return nil
}

// get returns an idle connection, or a new one when fresh is set or none
// is idle.
func (c *Client) get(ctx context.Context, fresh bool) (cc *clientConn, pooled bool, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, errors.New("agentstore: client closed")
	}
	if n := len(c.idle); n > 0 && !fresh {
		cc := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cc, true, nil
	}
	c.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, false, fmt.Errorf("agentstore: %w", err)
	}
	return &clientConn{c: nc, r: bufio.NewReaderSize(nc, MaxLine)}, false, nil
}

func (c *Client) put(cc *clientConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle) >= maxIdle {
		cc.c.Close()
		return
	}
	c.idle = append(c.idle, cc)
}

// roundTrip sends one request and reads its response line. The connection
// goes back to the pool only after a complete exchange; after any transport
// error it is closed, since its stream position is unknown.
func (c *Client) roundTrip(ctx context.Context, req Request) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	v, retry, err := c.try(ctx, req, false)
	if retry {
		v, _, err = c.try(ctx, req, true)
	}
	return v, err
}

// try is one attempt of roundTrip. It asks for a retry on a new
// connection when an idle one turned out dead (the agent restarted since)
// and the request is safe to repeat.
func (c *Client) try(ctx context.Context, req Request, fresh bool) (v string, retry bool, err error) {
	cc, pooled, err := c.get(ctx, fresh)
	if err != nil {
		return "", false, err
	}
	deadline, _ := ctx.Deadline()
	cc.c.SetDeadline(deadline)
	// Cancellation interrupts blocked I/O by moving the deadline to now.
	stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(time.Unix(1, 0)) })
	v, err = exchange(cc, req)
	// stop reports false when cancellation already moved the deadline: the
	// connection is then unusable even if the exchange completed.
	reusable := stop()
	var ae *Error
	switch {
	case errors.As(err, &ae):
		// The agent answered; the stream is in step unless it is closing
		// a denied connection.
		reusable = reusable && ae.Code != CodeDenied
	case err != nil:
		cc.c.Close()
		if ctx.Err() != nil {
			return "", false, fmt.Errorf("agentstore: %w", ctx.Err())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The socket deadline is the context's, and can fire a hair
			// before the context's own timer.
			return "", false, fmt.Errorf("agentstore: %w", context.DeadlineExceeded)
		}
		// generate and delete are not repeated: the first may have done
		// its work before the connection broke.
		idempotent := req.Op == OpDH || req.Op == OpPublicKey || req.Op == OpVersion
		return "", pooled && idempotent, err
	}
	if reusable {
		c.put(cc)
	} else {
		cc.c.Close()
	}
	return v, false, err
}

func exchange(cc *clientConn, req Request) (string, error) {
	if _, err := cc.c.Write(AppendRequest(make([]byte, 0, MaxLine), req)); err != nil {
		// A denied connection is closed by the agent right after its one
		// error line: read it rather than report a broken pipe.
		if v, rerr := readResponse(cc.r); rerr != nil {
			var ae *Error
			if errors.As(rerr, &ae) {
				return v, rerr
			}
		}
		return "", fmt.Errorf("agentstore: %w", err)
	}
	return readResponse(cc.r)
}

func readResponse(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", errors.New("agentstore: response line too long")
		}
		return "", fmt.Errorf("agentstore: reading the agent's response: %w", err)
	}
	return parseResponse(line[:len(line)-1])
}
