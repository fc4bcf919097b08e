package route_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/reyes-fw/reyes/internal/route"
)

func TestDefaultInterface(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	tests := []struct {
		name, table, want string
		err               error
	}{
		{"one default", header + "ens5\t00000000\t0100140A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"ens5\t0000140A\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n", "ens5", nil},
		{"lowest metric wins", header + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0100140A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth1", nil},
		{"down route ignored", header + "eth0\t00000000\t0100140A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n", "", route.ErrNoDefaultRoute},
		{"no default", header + "eth0\t0000140A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n", "", route.ErrNoDefaultRoute},
		{"empty", "", "", route.ErrNoDefaultRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "route")
			if err := os.WriteFile(p, []byte(tt.table), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := route.DefaultInterface(p)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("DefaultInterface = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}
