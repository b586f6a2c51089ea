// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"io"
	"net"
	"testing"
	"time"
)

// Whatever a device sends to port 1883 of a group without an MQTT route,
// it gets a CONNACK refusal and a closed connection: no panic, no hang.
func FuzzRefuseMQTT(f *testing.F) {
	f.Add([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00})
	f.Add([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00})
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x30})
	f.Add([]byte{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		dev, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Close()
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			refuseMQTT(srv)
			close(done)
		}()
		dev.Write(in)
		dev.(*net.TCPConn).CloseWrite()
		dev.SetReadDeadline(time.Now().Add(10 * time.Second))
		ack, _ := io.ReadAll(dev)
		<-done
		if len(ack) != 4 && len(ack) != 5 || ack[0] != 0x20 {
			t.Fatalf("answer %x to %x", ack, in)
		}
	})
}
