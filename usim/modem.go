// SPDX-License-Identifier: Apache-2.0

package usim

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.bug.st/serial"
)

// Modem carries APDUs over a cellular modem's AT+CSIM (3GPP TS 27.007
// §8.17) on its serial port.
type Modem struct {
	port    serial.Port
	buf     []byte // read, not yet split into lines
	timeout time.Duration
}

// OpenModem opens the modem's AT port (e.g. /dev/ttyUSB2), turns its echo
// off and checks that it answers.
func OpenModem(path string, baud int) (*Modem, error) {
	if baud == 0 {
		baud = 115200
	}
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("usim: opening modem %s: %w", path, err)
	}
	m := &Modem{port: p, timeout: 5 * time.Second}
	if err := p.SetReadTimeout(100 * time.Millisecond); err != nil {
		p.Close()
		return nil, fmt.Errorf("usim: modem %s: %w", path, err)
	}
	if _, err := m.Command("ATE0"); err != nil {
		p.Close()
		return nil, fmt.Errorf("usim: modem %s does not answer AT commands: %w", path, err)
	}
	return m, nil
}

// Close closes the port.
func (m *Modem) Close() error { return m.port.Close() }

// Command sends one AT command and returns its information lines (the
// echo, if the modem still echoes, and blank lines dropped); a final
// ERROR or +CME ERROR is an error.
func (m *Modem) Command(cmd string) ([]string, error) {
	if _, err := m.port.Write([]byte(cmd + "\r")); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(m.timeout)
	var lines []string
	chunk := make([]byte, 512)
	for {
		i := strings.IndexAny(string(m.buf), "\r\n")
		if i < 0 {
			if !time.Now().Before(deadline) {
				return lines, fmt.Errorf("%s: no final answer within %s", cmd, m.timeout)
			}
			n, err := m.port.Read(chunk) // 0 bytes: the read timeout passed
			if err != nil {
				return lines, fmt.Errorf("%s: %w", cmd, err)
			}
			if len(m.buf)+n > 64<<10 {
				return lines, fmt.Errorf("%s: an answer line over 64 KiB", cmd)
			}
			m.buf = append(m.buf, chunk[:n]...)
			continue
		}
		line := strings.TrimSpace(string(m.buf[:i]))
		m.buf = m.buf[i+1:]
		switch {
		case line == "" || line == cmd:
		case line == "OK":
			return lines, nil
		case line == "ERROR", strings.HasPrefix(line, "+CME ERROR"):
			return lines, fmt.Errorf("%s: %s", cmd, line)
		default:
			lines = append(lines, line)
		}
	}
}

// Transmit sends one APDU with AT+CSIM.
func (m *Modem) Transmit(apdu []byte) ([]byte, error) {
	h := strings.ToUpper(hex.EncodeToString(apdu))
	lines, err := m.Command("AT+CSIM=" + strconv.Itoa(len(h)) + `,"` + h + `"`)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if args, ok := strings.CutPrefix(l, "+CSIM:"); ok {
			b, err := ParseCSIM(args)
			if err == nil && len(b) < 2 {
				err = errors.New("+CSIM: an answer without a status word")
			}
			return b, err
		}
	}
	return nil, errors.New("AT+CSIM: no +CSIM line in the answer")
}

// ParseCSIM reads the arguments of AT+CSIM, or of its +CSIM answer:
// <length>,"<hex>", the length counting hex characters.
func ParseCSIM(args string) ([]byte, error) {
	l, q, ok := strings.Cut(strings.TrimSpace(args), ",")
	if !ok {
		return nil, errors.New(`CSIM: want <length>,"<hex>"`)
	}
	n, err := strconv.Atoi(strings.TrimSpace(l))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("CSIM: length %q", l)
	}
	q = strings.TrimSpace(q)
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' || len(q)-2 != n || n%2 != 0 {
		return nil, fmt.Errorf("CSIM: %d hex characters announced, %q sent", n, q)
	}
	b, err := hex.DecodeString(q[1 : len(q)-1])
	if err != nil {
		return nil, fmt.Errorf("CSIM: %w", err)
	}
	return b, nil
}
