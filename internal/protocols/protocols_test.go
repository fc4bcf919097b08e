package protocols

import "testing"

func TestNumeric(t *testing.T) {
	gre, ok := names()["gre"]
	if !ok {
		t.Skip("/etc/protocols has no gre")
	}
	tests := []struct{ in, want string }{
		{`-A REYES-FILTER -s 10.0.0.0/8 -p gre -m comment --comment "a  b" -g REYES-ALLOW`, `-A REYES-FILTER -s 10.0.0.0/8 -p ` + gre + ` -m comment --comment "a  b" -g REYES-ALLOW`},
		{"-A REYES-FILTER -p tcp -m tcp --dport 22 -j RETURN", "-A REYES-FILTER -p tcp -m tcp --dport 22 -j RETURN"},
		{"-A REYES-FILTER -p esp -j RETURN", "-A REYES-FILTER -p esp -j RETURN"},
		{"-A REYES-FILTER -j RETURN", "-A REYES-FILTER -j RETURN"},
		{"-A REYES-FILTER -p 253 -j RETURN", "-A REYES-FILTER -p 253 -j RETURN"},
	}
	for _, tt := range tests {
		if got := Numeric(tt.in); got != tt.want {
			t.Errorf("Numeric(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
