// SPDX-License-Identifier: Apache-2.0

package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Do runs fn with the calling goroutine's OS thread inside namespace n.
//
// Sockets and TUN devices fn creates stay in n after Do returns, so this is how
// an in-process engine listens inside a namespace. Only the goroutine running
// fn is in n: goroutines fn starts run on other threads, in the root namespace,
// so fn must create its sockets itself (for example net.ListenUDP, or
// device.Up() of golang.zx2c4.com/wireguard, which opens its bind
// synchronously).
//
// If the thread cannot be moved back, Do leaves it locked so the Go runtime
// ends it when the goroutine exits instead of reusing a thread in the wrong
// namespace.
func (n *NS) Do(fn func() error) error {
	target, err := os.Open("/run/netns/" + n.Name)
	if err != nil {
		return fmt.Errorf("netns: open namespace %s: %w", n.Name, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	// The thread's own namespace, read after locking so it is the one we return to.
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open current namespace: %w", err)
	}
	defer orig.Close()

	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", n.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Stay locked: the thread dies with this goroutine.
		return fmt.Errorf("netns: return from %s: %w (fn: %v)", n.Name, err, fnErr)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// MustDo is Do that fails the test on error.
func (n *NS) MustDo(fn func() error) {
	n.env.t.Helper()
	if err := n.Do(fn); err != nil {
		n.env.t.Fatalf("netns: in %s: %v", n.Name, err)
	}
}

// DialContext connects from inside n (a net.Dialer's, for transports
// whose connections must start in the namespace).
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
	return c, err
}

// HTTPClient is an HTTP client whose connections start inside n, with a
// 5 s timeout (the API of a process in n, on its loopback).
func (n *NS) HTTPClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.DialContext}}
}
