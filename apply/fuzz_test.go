package apply

import (
	"strings"
	"testing"
)

func FuzzParseSetHeaders(f *testing.F) {
	f.Add("Name: reyes4-a\nType: hash:ip\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x19158384\nSize in memory: 216\nReferences: 0\nNumber of entries: 3\n")
	f.Add("Name: x\nHeader: family\nNumber of entries: -1\nName:\n")
	f.Fuzz(func(t *testing.T, s string) {
		for name, info := range parseSetHeaders([]byte(s)) {
			if name == "" || info.Entries < -1<<62 {
				t.Fatalf("bad entry %q %+v", name, info)
			}
		}
	})
}

func FuzzJumpFix(f *testing.F) {
	f.Add("-P INPUT ACCEPT\n-A INPUT -j REYES-INPUT\n-A INPUT -p tcp -j ACCEPT")
	f.Add("-A INPUT -p tcp -j ACCEPT\n-A INPUT -j REYES-INPUT\n-A INPUT -g REYES-INPUT")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fix := jumpFix(strings.Split(s, "\n"))
		if fix == nil {
			return
		}
		if fix[len(fix)-1] != "-I INPUT 1 -j REYES-INPUT" {
			t.Fatalf("fix does not end with the insert: %q", fix)
		}
		for _, l := range fix[:len(fix)-1] {
			if !strings.HasPrefix(l, "-D INPUT") {
				t.Fatalf("fix line %q", l)
			}
		}
	})
}

func FuzzFailedLine(f *testing.F) {
	f.Add("iptables-restore v1.8.9 (legacy): Set nope doesn't exist.\n\nError occurred at line: 5\n")
	f.Add("ipset v7.17: Error in line 3: Syntax error")
	f.Add("iptables-restore: line 99999999999999999999 failed")
	f.Fuzz(func(t *testing.T, s string) {
		n := failedLine(s)
		_ = lineOf([]byte(s), n)
	})
}
