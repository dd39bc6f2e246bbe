package cli

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Notify sends state to the service manager when the program runs under
// systemd with Type=notify or Type=notify-reload (sd_notify(3)): the
// datagram goes to the unix socket $NOTIFY_SOCKET names ("@" for an
// abstract socket). Without $NOTIFY_SOCKET it does nothing and returns nil.
//
// The states the programs send: "READY=1" once serving, "RELOADING=1" with
// MONOTONIC_USEC (see Reloading) when a reload begins and "READY=1" when it
// ends, "STOPPING=1" when shutting down, and "STATUS=..." lines.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Reloading is the state that announces a reload to systemd's
// Type=notify-reload: RELOADING=1 and the CLOCK_MONOTONIC time in
// microseconds.
func Reloading() string {
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicMicros())
}
