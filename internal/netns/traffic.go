package netns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// listen opens a socket of network on port, on every address of the
// namespace, with open (net.Listen, net.ListenPacket), and closes it when
// the test ends.
func listen[C io.Closer](t testing.TB, n *NS, network string, port uint16, open func(network, address string) (C, error)) C {
	t.Helper()
	var c C
	err := n.Do(func() error {
		var err error
		c, err = open(network, ":"+strconv.Itoa(int(port)))
		return err
	})
	if err != nil {
		t.Fatalf("netns: listening on %s port %d in %s: %v", network, port, n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ServeTCP listens on port on every address of the namespace (IPv4 and
// IPv6) and answers each connection with "ok\n". It stops when the test
// ends.
func (n *NS) ServeTCP(t testing.TB, port uint16) {
	t.Helper()
	ln := listen(t, n, "tcp", port, net.Listen)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
}

// ServeUDP listens on port on every address of the namespace and echoes
// every datagram back to its sender. It stops when the test ends.
func (n *NS) ServeUDP(t testing.TB, port uint16) {
	t.Helper()
	pc := listen(t, n, "udp", port, net.ListenPacket)
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:k], from)
		}
	}()
}

// TCP connects from this namespace to dst (from source address src, or the
// kernel's choice when src is the zero Addr) and expects the "ok\n" banner
// of ServeTCP within timeout. A nil error means the connection went
// through.
func (n *NS) TCP(src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		var err error
		c, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("tcp %v -> %v: %w", src, dst, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("tcp %v -> %v: reading banner: %w", src, dst, err)
	}
	if string(buf) != "ok\n" {
		return fmt.Errorf("tcp %v -> %v: unexpected banner %q", src, dst, buf)
	}
	return nil
}

// UDP sends a datagram from this namespace to dst (from src, or the
// kernel's choice) and expects ServeUDP's echo within timeout. The echo may
// come from any address of the server: an unbound server answers from the
// address its route prefers, not necessarily dst.
func (n *NS) UDP(src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	var pc net.PacketConn
	err := n.Do(func() error {
		laddr := ":0"
		if src.IsValid() {
			laddr = netip.AddrPortFrom(src, 0).String()
		}
		var err error
		pc, err = net.ListenPacket("udp", laddr)
		return err
	})
	if err != nil {
		return fmt.Errorf("udp %v -> %v: %w", src, dst, err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(timeout))
	msg := []byte("reyes-probe")
	if _, err := pc.WriteTo(msg, net.UDPAddrFromAddrPort(dst)); err != nil {
		return fmt.Errorf("udp %v -> %v: %w", src, dst, err)
	}
	buf := make([]byte, 64)
	for {
		k, _, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("udp %v -> %v: waiting for echo: %w", src, dst, err)
		}
		if bytes.Equal(buf[:k], msg) {
			return nil
		}
	}
}

// Ping sends one ICMP (or ICMPv6) echo request from this namespace to dst
// (from src, or the kernel's choice) and waits up to timeout for the reply.
func (n *NS) Ping(src, dst netip.Addr, timeout time.Duration) error {
	network, laddr := "ip4:icmp", "0.0.0.0"
	reqType, replyType := byte(8), byte(0)
	if dst.Is6() {
		network, laddr = "ip6:ipv6-icmp", "::"
		reqType, replyType = 128, 129
	}
	if src.IsValid() {
		laddr = src.String()
	}
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		return fmt.Errorf("ping %v -> %v: %w", src, dst, err)
	}
	defer pc.Close()
	id := uint16(os.Getpid())
	seq := uint16(time.Now().UnixNano())
	msg := make([]byte, 16)
	msg[0] = reqType
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], "reyes-pg")
	if dst.Is4() {
		// The kernel computes the ICMPv6 checksum itself, not ICMPv4's.
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	}
	if _, err := pc.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("ping %v -> %v: %w", src, dst, err)
	}
	deadline := time.Now().Add(timeout)
	pc.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		k, from, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %v -> %v: waiting for reply: %w", src, dst, err)
		}
		ip, ok := from.(*net.IPAddr)
		if !ok || k < 8 {
			continue
		}
		fa, _ := netip.AddrFromSlice(ip.IP)
		if fa.Unmap() != dst.Unmap() || buf[0] != replyType ||
			binary.BigEndian.Uint16(buf[4:]) != id || binary.BigEndian.Uint16(buf[6:]) != seq {
			continue
		}
		return nil
	}
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ErrUnexpected is returned by Expect when traffic went through that should
// have been blocked, or the other way round.
var ErrUnexpected = errors.New("unexpected traffic outcome")

// Expect runs probe and compares its outcome with want (true: the traffic
// must go through). It returns a descriptive error wrapping ErrUnexpected
// on mismatch.
func Expect(want bool, probe func() error) error {
	err := probe()
	switch {
	case want && err != nil:
		return fmt.Errorf("%w: want allowed, got %v", ErrUnexpected, err)
	case !want && err == nil:
		return fmt.Errorf("%w: want blocked, but it went through", ErrUnexpected)
	}
	return nil
}
