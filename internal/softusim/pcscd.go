// SPDX-License-Identifier: Apache-2.0

package softusim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PCSCD is a private pcscd with the card in a vpcd reader. pcscd keeps
// its socket at a fixed path (/run/pcscd), so it runs in a mount namespace
// of its own with a directory of the test's bound there: it never meets a
// system pcscd, and clients reach it by PCSCLITE_CSOCK_NAME (Socket).
type PCSCD struct {
	// Socket is the daemon's socket, for PCSCLITE_CSOCK_NAME.
	Socket string
	// Reader is the reader's name prefix.
	Reader string

	cmd   *exec.Cmd
	viccs []*VICC
}

// RequirePCSCD skips t when this machine cannot run StartPCSCD (not root,
// or pcscd or the vpcd driver missing) — but fails it under CI=true,
// where .ci/apt-packages installs them and a skip would hide a broken
// setup.
func RequirePCSCD(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "pcscd in a mount namespace of its own needs root"
	case !found("pcscd"):
		why = "no pcscd (Debian: pcscd)"
	case !exists(VPCDDriver):
		why = "no vpcd driver (Debian: vsmartcard-vpcd)"
	case !found("unshare"):
		why = "no unshare (Debian: util-linux)"
	default:
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func found(bin string) bool { _, err := exec.LookPath(bin); return err == nil }

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// VPCDDriver is where Debian's vsmartcard-vpcd installs the reader driver.
const VPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// StartPCSCD starts pcscd (needs root for the mount namespace) with card
// in its first reader, files in dir. vpcd opens two slots, on a port and
// the next; the second holds another card, of no network (vpcd does not
// start with a slot whose card answers no ATR).
func StartPCSCD(card *Card, dir string) (*PCSCD, error) {
	bin, err := exec.LookPath("pcscd")
	if err != nil {
		return nil, errors.New("softusim: no pcscd (Debian: pcscd)")
	}
	if _, err := os.Stat(VPCDDriver); err != nil {
		return nil, errors.New("softusim: no vpcd driver (Debian: vsmartcard-vpcd)")
	}
	p := &PCSCD{Reader: "wirefleet test reader"}
	if err := p.listen(card); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "reader.conf.d")
	run := filepath.Join(dir, "run")
	for _, d := range []string{conf, run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			p.Close()
			return nil, err
		}
	}
	port := p.viccs[0].Port()
	cfg := fmt.Sprintf("FRIENDLYNAME %q\nDEVICENAME 127.0.0.1:0x%X\nLIBPATH %s\nCHANNELID 0x%X\n", p.Reader, port, VPCDDriver, port)
	if err := os.WriteFile(filepath.Join(conf, "vpcd"), []byte(cfg), 0o644); err != nil {
		p.Close()
		return nil, err
	}
	// unshare execs sh, which execs pcscd: the PID started is pcscd's.
	script := `mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec "$2" --foreground --debug --config "$3"`
	p.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", run, bin, conf)
	log, err := os.Create(filepath.Join(dir, "pcscd.log"))
	if err != nil {
		p.Close()
		return nil, err
	}
	defer log.Close()
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.Env = append(os.Environ(), "LIBC_FATAL_STDERR_=1") // glibc writes a fatal error to the terminal otherwise
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.Close()
		return nil, fmt.Errorf("softusim: starting pcscd: %w", err)
	}
	p.Socket = filepath.Join(run, "pcscd.comm")
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("unix", p.Socket); err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.Close()
			b, _ := os.ReadFile(filepath.Join(dir, "pcscd.log"))
			return nil, fmt.Errorf("softusim: pcscd did not come up: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listen serves card on a loopback port and another on the next.
func (p *PCSCD) listen(card *Card) error {
	key := make([]byte, 16)
	rand.Read(key)
	other, err := New(Config{ICCID: "8900000000000000000", IMSI: "001019999999999", Ki: key, OPc: key})
	if err != nil {
		return err
	}
	for range 20 {
		a, err := ListenVICC(card, "127.0.0.1:0")
		if err != nil {
			return err
		}
		b, err := ListenVICC(other, "127.0.0.1:"+strconv.Itoa(a.Port()+1))
		if err == nil {
			p.viccs = []*VICC{a, b}
			return nil
		}
		a.Close()
	}
	return errors.New("softusim: no two consecutive free ports for vpcd")
}

// Close stops pcscd, then removes the card (in that order: vpcd aborts
// pcscd when its card's connection goes first).
func (p *PCSCD) Close() error {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
	for _, v := range p.viccs {
		v.Close()
	}
	return nil
}
