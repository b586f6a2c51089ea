// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// startUserspaceServices opens the local entry points into a userspace
// tunnel: SOCKS5 and HTTP proxies, forwards, and exposed device services.
func (t *Tunnel) startUserspaceServices() error {
	if t.opts.SOCKSListen != "" {
		ln, err := net.Listen("tcp", t.opts.SOCKSListen)
		if err != nil {
			return fmt.Errorf("agent: SOCKS5 listener: %w", err)
		}
		t.closers = append(t.closers, ln)
		t.socksAddr = ln.Addr()
		t.serve(ln, t.handleSOCKS)
	}
	if t.opts.HTTPListen != "" {
		ln, err := net.Listen("tcp", t.opts.HTTPListen)
		if err != nil {
			return fmt.Errorf("agent: HTTP proxy listener: %w", err)
		}
		t.closers = append(t.closers, ln)
		t.httpAddr = ln.Addr()
		srv := &http.Server{Handler: http.HandlerFunc(t.handleHTTPProxy), ReadHeaderTimeout: 10 * time.Second}
		t.closers = append(t.closers, srv)
		t.wg.Add(1)
		go func() { defer t.wg.Done(); srv.Serve(ln) }()
	}
	for _, f := range t.opts.Forwards {
		ln, err := net.Listen("tcp", f.Local)
		if err != nil {
			return fmt.Errorf("agent: forward %s: %w", f.Local, err)
		}
		t.closers = append(t.closers, ln)
		remote := f.Remote.String()
		t.serve(ln, func(c net.Conn) {
			up, err := t.net.DialContext(t.ctx, "tcp", remote)
			if err != nil {
				t.log.Debug("forward: dialing into the tunnel failed", "remote", remote, "err", err)
				c.Close()
				return
			}
			splice(c, up)
		})
	}
	for _, x := range t.opts.Exposes {
		ln, err := t.net.ListenTCPAddrPort(netip.AddrPortFrom(t.cfg.Address.Addr(), x.Port))
		if err != nil {
			return fmt.Errorf("agent: expose port %d: %w", x.Port, err)
		}
		t.closers = append(t.closers, ln)
		local := x.Local
		t.serve(ln, func(c net.Conn) {
			down, err := net.DialTimeout("tcp", local, 10*time.Second)
			if err != nil {
				t.log.Debug("expose: local service unreachable", "local", local, "err", err)
				c.Close()
				return
			}
			splice(c, down)
		})
	}
	return nil
}

// serve accepts on ln until it is closed, one goroutine per connection.
func (t *Tunnel) serve(ln net.Listener, handle func(net.Conn)) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

func (t *Tunnel) handleSOCKS(c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	dst, err := socksHandshake(c, c)
	if err != nil {
		t.log.Debug("socks5: bad request", "err", err)
		c.Close()
		return
	}
	up, err := t.net.DialContext(t.ctx, "tcp", dst)
	if err != nil {
		socksReply(c, socksHostUnreachable)
		c.Close()
		return
	}
	if err := socksReply(c, socksOK); err != nil {
		c.Close()
		up.Close()
		return
	}
	c.SetDeadline(time.Time{})
	splice(c, up)
}

// handleHTTPProxy serves CONNECT tunnels and absolute-URI requests into
// the tunnel.
func (t *Tunnel) handleHTTPProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		up, err := t.net.DialContext(r.Context(), "tcp", r.Host)
		if err != nil {
			http.Error(w, "cannot reach "+r.Host+" through the tunnel: "+err.Error(), http.StatusBadGateway)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			up.Close()
			http.Error(w, "hijacking unsupported", http.StatusInternalServerError)
			return
		}
		c, buf, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		if n := buf.Reader.Buffered(); n > 0 {
			b, _ := buf.Reader.Peek(n)
			up.Write(b)
		}
		splice(c, up)
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "this is a proxy: send absolute URLs or CONNECT", http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	removeHopHeaders(out.Header)
	resp, err := t.transport().RoundTrip(out)
	if err != nil {
		http.Error(w, "through the tunnel: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (t *Tunnel) transport() *http.Transport {
	t.transportOnce.Do(func() {
		t.httpTransport = &http.Transport{DialContext: t.net.DialContext, MaxIdleConns: 16, IdleConnTimeout: 30 * time.Second}
	})
	return t.httpTransport
}

func removeHopHeaders(h http.Header) {
	for _, k := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		h.Del(k)
	}
}

// splice copies both ways until either side closes, then closes both.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// ParseForward parses LOCAL=REMOTE, e.g. 127.0.0.1:8080=10.128.0.7:80.
func ParseForward(s string) (Forward, error) {
	local, remote, ok := strings.Cut(s, "=")
	if !ok || local == "" {
		return Forward{}, fmt.Errorf("forward %q: want LOCAL=REMOTE", s)
	}
	r, err := netip.ParseAddrPort(remote)
	if err != nil {
		return Forward{}, fmt.Errorf("forward %q: remote: %w", s, err)
	}
	return Forward{Local: local, Remote: r}, nil
}

// ParseExpose parses REMOTE_PORT=LOCAL_ADDR, e.g. 22=127.0.0.1:22.
func ParseExpose(s string) (Expose, error) {
	port, local, ok := strings.Cut(s, "=")
	if !ok || local == "" {
		return Expose{}, fmt.Errorf("expose %q: want REMOTE_PORT=LOCAL_ADDR", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return Expose{}, fmt.Errorf("expose %q: bad port", s)
	}
	if _, _, err := net.SplitHostPort(local); err != nil {
		return Expose{}, fmt.Errorf("expose %q: local: %w", s, err)
	}
	return Expose{Port: uint16(p), Local: local}, nil
}

// SOCKSAddr returns the SOCKS5 proxy's listening address (nil if off).
func (t *Tunnel) SOCKSAddr() net.Addr { return t.socksAddr }

// HTTPProxyAddr returns the HTTP proxy's listening address (nil if off).
func (t *Tunnel) HTTPProxyAddr() net.Addr { return t.httpAddr }
