// Package freeport picks loopback addresses for servers that another
// process (a certportal serve under test, nginx) will listen on.
//
// A port the kernel hands out for ":0" comes from the ephemeral range, the
// same range it takes the source ports of outgoing connections from: in
// the moment between closing the probe and the server's bind, a client
// connection of another test may take it ("address already in use"). The
// ports picked here lie below that range, where the kernel never assigns
// a source port, and are probed before they are returned.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port picked: above the registered ports most
// daemons use.
const lowest = 10000

// Addr returns "127.0.0.1:PORT" for a port below the ephemeral range that
// nothing listens on.
func Addr() (string, error) {
	hi := ephemeralLow()
	if hi <= lowest+100 {
		return probe(0) // a machine whose ephemeral range starts low
	}
	for range 200 {
		if addr, err := probe(lowest + rand.IntN(hi-lowest)); err == nil {
			return addr, nil
		}
	}
	return "", errors.New("freeport: no free port found below the ephemeral range")
}

// probe listens on port (0: any) and closes it again.
func probe(port int) (string, error) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux;
// 32768 elsewhere, the usual start).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
