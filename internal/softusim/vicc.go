// SPDX-License-Identifier: Apache-2.0

package softusim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// VICC puts the card in a PC/SC reader: it speaks the protocol of
// vsmartcard's vpcd driver for pcscd (each message a 2-byte big-endian
// length and its bytes; a 1-byte message is a control — 0 power off,
// 1 power on, 2 reset, 4 "send the ATR" —, anything else an APDU, answered
// with the response APDU). It listens, and vpcd configured with
// "DEVICENAME 127.0.0.1:<port>" (its reversed mode) connects to it, so
// nothing listens beyond loopback.
type VICC struct {
	card *Card
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

// ListenVICC starts serving card on addr (e.g. "127.0.0.1:0").
func ListenVICC(card *Card, addr string) (*VICC, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("softusim: %w", err)
	}
	v := &VICC{card: card, ln: ln, conns: map[net.Conn]bool{}}
	v.wg.Add(1)
	go v.accept()
	return v, nil
}

// Port is the port vpcd is to connect to.
func (v *VICC) Port() int { return v.ln.Addr().(*net.TCPAddr).Port }

// Close removes the card from the reader.
func (v *VICC) Close() error {
	err := v.ln.Close()
	v.mu.Lock()
	for c := range v.conns {
		c.Close()
	}
	v.mu.Unlock()
	v.wg.Wait()
	return err
}

func (v *VICC) accept() {
	defer v.wg.Done()
	for {
		c, err := v.ln.Accept()
		if err != nil {
			return
		}
		v.mu.Lock()
		v.conns[c] = true
		v.mu.Unlock()
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			v.serve(c)
			v.mu.Lock()
			delete(v.conns, c)
			v.mu.Unlock()
			c.Close()
		}()
	}
}

func (v *VICC) serve(c net.Conn) {
	for {
		msg, err := readVPCD(c)
		if err != nil {
			return
		}
		var rsp []byte
		switch {
		case len(msg) == 1:
			switch msg[0] {
			case 0x00, 0x01, 0x02: // power off, power on, reset: no answer
				v.card.Reset()
				continue
			case 0x04:
				rsp = v.card.ATR()
			default:
				continue
			}
		default:
			rsp = v.card.Transmit(msg)
		}
		if err := writeVPCD(c, rsp); err != nil {
			return
		}
	}
}

func readVPCD(r io.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(h[:])
	if n == 0 {
		return nil, errors.New("softusim: an empty vpcd message")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeVPCD(w io.Writer, b []byte) error {
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(b)), uint16(len(b)))
	_, err := w.Write(append(out, b...))
	return err
}
