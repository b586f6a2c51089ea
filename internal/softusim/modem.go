// SPDX-License-Identifier: Apache-2.0

package softusim

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/wirefleet/wirefleet/usim"
)

// Modem is a cellular modem with the card inserted, on a pseudo-terminal:
// clients open Path as a serial port and talk AT commands (3GPP TS 27.007)
// to it, AT+CSIM carrying the card's APDUs. It echoes commands until ATE0,
// as modems do, and answers in the verbose form ("\r\nOK\r\n").
type Modem struct {
	// Path is the serial port to open (the terminal's slave side).
	Path string

	card   *Card
	imei   string
	master *os.File
	slave  *os.File // held open so the line stays up between clients
	done   chan struct{}

	mu       sync.Mutex
	commands []string
}

// NewModem starts a modem holding card on a new pseudo-terminal. IMEI is
// what AT+CGSN answers.
func NewModem(card *Card, imei string) (*Modem, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("softusim: opening a pseudo-terminal: %w", err)
	}
	// Raw: without it the line discipline would echo the modem's answers
	// back to the modem, and turn CR into LF.
	if err := makeRaw(int(slave.Fd())); err != nil {
		master.Close()
		slave.Close()
		return nil, err
	}
	m := &Modem{Path: slave.Name(), card: card, imei: imei, master: master, slave: slave, done: make(chan struct{})}
	// A modem selects the USIM when the card powers up: AT+CSIM's basic
	// channel starts there, and clients (Krypton's) AUTHENTICATE at once.
	card.Transmit(append([]byte{0x00, 0xA4, 0x04, 0x0C, byte(len(USIMAID))}, USIMAID...))
	go m.serve()
	return m, nil
}

// Commands returns the AT commands received so far, in order.
func (m *Modem) Commands() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.commands...)
}

// Close hangs the modem up.
func (m *Modem) Close() error {
	m.slave.Close()
	err := m.master.Close()
	<-m.done
	return err
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("softusim: terminal attributes: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func (m *Modem) serve() {
	defer close(m.done)
	r := bufio.NewReader(m.master)
	echo := true
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return // closed
		}
		if b != '\r' && b != '\n' {
			if len(line) < 4096 {
				line = append(line, b)
			}
			continue
		}
		cmd := strings.TrimSpace(string(line))
		line = line[:0]
		if cmd == "" {
			continue
		}
		if echo {
			io.WriteString(m.master, cmd+"\r")
		}
		m.mu.Lock()
		m.commands = append(m.commands, cmd)
		m.mu.Unlock()
		info, ok := m.run(cmd, &echo)
		var out strings.Builder
		for _, l := range info {
			out.WriteString("\r\n" + l + "\r\n")
		}
		if ok {
			out.WriteString("\r\nOK\r\n")
		} else {
			out.WriteString("\r\nERROR\r\n")
		}
		if _, err := io.WriteString(m.master, out.String()); err != nil {
			return
		}
	}
}

// run executes one command line: its information lines, and whether it
// succeeded.
func (m *Modem) run(cmd string, echo *bool) ([]string, bool) {
	u := strings.ToUpper(cmd)
	if !strings.HasPrefix(u, "AT") {
		return nil, false
	}
	switch body := u[2:]; {
	case body == "+CGSN":
		return []string{m.imei}, true
	case body == "+CIMI":
		return []string{m.imsi()}, true
	case body == "+CCID", body == "+ICCID", body == "+QCCID":
		return []string{"+CCID: " + m.iccid()}, true
	case strings.HasPrefix(body, "+CMEE="):
		return nil, true
	case strings.HasPrefix(body, "+CSIM="):
		rsp, err := m.csim(cmd[len("AT+CSIM="):])
		if err != nil {
			return nil, false
		}
		return []string{rsp}, true
	case strings.HasPrefix(body, "+"):
		return nil, false
	default:
		return basic(body, echo)
	}
}

// basic runs a string of basic commands (V.250: "E0V1", "Z", "&F"): echo
// (E), verbose answers (V1 only), and a few that change nothing here.
func basic(s string, echo *bool) ([]string, bool) {
	var info []string
	for len(s) > 0 {
		c := s[0]
		s = s[1:]
		if c == '&' {
			if s == "" {
				return nil, false
			}
			c, s = s[0], s[1:] // &F, &C, &D: accepted
		}
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		arg := s[:n]
		s = s[n:]
		switch c {
		case 'E':
			*echo = arg != "0"
		case 'V':
			if arg == "0" {
				return nil, false // numeric answers: not served
			}
		case 'I':
			info = append(info, "wirefleet software modem")
		case 'Z', 'Q', 'X', 'F', 'C', 'D', 'S':
		default:
			return nil, false
		}
	}
	return info, true
}

// csim runs AT+CSIM=<length>,"<command>" (TS 27.007 §8.17): length is the
// hex string's length in characters.
func (m *Modem) csim(args string) (string, error) {
	cmd, err := usim.ParseCSIM(args)
	if err != nil {
		return "", err
	}
	if len(cmd) < 4 {
		return "", errors.New("CSIM: a command APDU is at least 4 bytes")
	}
	rsp := hex.EncodeToString(m.card.Transmit(cmd))
	return "+CSIM: " + strconv.Itoa(len(rsp)) + `,"` + strings.ToUpper(rsp) + `"`, nil
}

func (m *Modem) imsi() string {
	m.card.mu.Lock()
	defer m.card.mu.Unlock()
	return decodeBCD(m.card.adf[fidIMSI].data[1:], true)
}

func (m *Modem) iccid() string {
	m.card.mu.Lock()
	defer m.card.mu.Unlock()
	return decodeBCD(m.card.mf[fidICCID].data, false)
}

// decodeBCD reads swapped BCD digits up to the first F; skipParity drops
// EF.IMSI's leading parity nibble.
func decodeBCD(b []byte, skipParity bool) string {
	var s strings.Builder
	for i, x := range b {
		for j, d := range []byte{x & 0xF, x >> 4} {
			if i == 0 && j == 0 && skipParity {
				continue
			}
			if d > 9 {
				return s.String()
			}
			s.WriteByte('0' + d)
		}
	}
	return s.String()
}
