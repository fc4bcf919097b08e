// Package protocols reads protocol names back as numbers, so that rules as
// iptables-save prints them compare with rules as render writes them:
// render writes a few protocols by name (tcp, udp, icmp, ipv6-icmp, esp,
// ah, sctp) and every other one by number, while iptables-save prints
// numbers it finds in /etc/protocols by their names there.
package protocols

import (
	"os"
	"strings"
	"sync"
)

// rendered are the names render writes itself.
var rendered = map[string]bool{"tcp": true, "udp": true, "icmp": true, "ipv6-icmp": true, "esp": true, "ah": true, "sctp": true}

// Numeric returns the rule line with a "-p NAME" that render would have
// written as a number replaced by that number. Only the token changes, so
// comments keep their spacing.
func Numeric(line string) string {
	f := strings.Fields(line)
	for j := 0; j+1 < len(f); j++ {
		if f[j] != "-p" {
			continue
		}
		if !rendered[f[j+1]] {
			if n, ok := names()[f[j+1]]; ok {
				return strings.Replace(line, " -p "+f[j+1]+" ", " -p "+n+" ", 1)
			}
		}
		return line
	}
	return line
}

// names maps every name and alias in /etc/protocols to its number; it is
// read once per process (empty if the file is absent).
var names = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile("/etc/protocols")
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) >= 2 {
			for _, name := range append([]string{f[0]}, f[2:]...) {
				m[name] = f[1]
			}
		}
	}
	return m
})
