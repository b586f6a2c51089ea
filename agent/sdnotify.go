// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net"
	"os"
	"strconv"
	"time"
)

// Notify sends a systemd notification (READY=1, STOPPING=1, WATCHDOG=1)
// when the agent runs under systemd with Type=notify; otherwise it does
// nothing. The protocol is one datagram to $NOTIFY_SOCKET.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// WatchdogInterval returns how often to send WATCHDOG=1 (half of
// $WATCHDOG_USEC), or 0 when systemd asked for no watchdog.
func WatchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}
