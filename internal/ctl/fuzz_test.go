package ctl

import (
	"errors"
	"strings"
	"testing"
)

// FuzzExplainFlags feeds arbitrary explain command lines (arguments joined
// by NUL) to the flag parser and validate: they must never panic, every
// rejection must be a one-line usage error, and an accepted question must
// be one Decide can judge (one address family, ports and ICMP fields in
// range and only where they belong).
func FuzzExplainFlags(f *testing.F) {
	for _, seed := range []string{
		"--store\x00s\x00--trusted-key\x00k\x00--src\x0010.30.0.5\x00--dst\x0010.20.1.10\x00--proto\x00tcp\x00--port\x00443",
		"--store\x00s\x00--trusted-key\x00k\x00--src\x00fd00::1\x00--dst\x002400::1\x00--proto\x00icmpv6\x00--icmp-type\x00135",
		"--store\x00s\x00--trusted-key\x00k\x00--src\x0010.0.0.1\x00--dst\x00::1\x00--proto\x0050",
		"--store\x00s\x00--trusted-key\x00k\x00--src\x0010.0.0.1\x00--dst\x0010.0.0.2\x00--proto\x00udp\x00--port\x00-1\x00--groups\x00sg-12345678,",
		"--mode\x00ipsec\x00--table\x00exclusive\x00--foreign-cidr\x00fd00::/8\x00--vpc-cidr\x0010.0.0.0/33",
		"--src\x00::ffff:10.0.0.1\x00--dst\x0010.0.0.2\x00--proto\x00ICMP\x00--icmp-code\x00300",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fl := newFlagSet("explain")
		var ef explainFlags
		ef.define(fl)
		pos, err := parseInterspersed(fl, strings.Split(line, "\x00"))
		if err != nil || len(pos) > 0 {
			return
		}
		ef.visit(fl)
		q, err := ef.validate()
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || ExitCode(err) != ExitUsage {
				t.Fatalf("rejection is not a usage error: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("rejection is not one line: %q", err)
			}
			return
		}
		p := q.pkt
		if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() || p.Src.Is4In6() || p.Dst.Is4In6() {
			t.Fatalf("accepted addresses %v -> %v", p.Src, p.Dst)
		}
		if p.Protocol < 0 || p.Protocol > 255 || p.Port < 0 || p.Port > 65535 ||
			p.ICMPType < 0 || p.ICMPType > 255 || p.ICMPCode < 0 || p.ICMPCode > 255 {
			t.Fatalf("accepted packet out of range: %+v", p)
		}
		if p.Port != 0 && p.Protocol != 6 && p.Protocol != 17 {
			t.Fatalf("port on protocol %d", p.Protocol)
		}
		if len(q.id.Groups) == 0 && len(q.id.Addrs) != 1 {
			t.Fatalf("no way to find the host: %+v", q.id)
		}
	})
}
