package inventory_test

import (
	"testing"

	"github.com/reyes-fw/reyes/inventory"
)

func TestValidMAC(t *testing.T) {
	for _, tc := range []struct {
		name, s string
		want    bool
	}{
		{"as EC2 prints it", "02:1a:2b:3c:4d:5e", true},
		{"upper case", "02:1A:2B:3C:4D:5E", false},
		{"dashes", "02-1a-2b-3c-4d-5e", false},
		{"short", "02:1a:2b:3c:4d", false},
		{"long", "02:1a:2b:3c:4d:5e:6f", false},
		{"not hex", "02:1g:2b:3c:4d:5e", false},
		{"trailing slash", "02:1a:2b:3c:4d:5e/", false},
		{"path", "../../../../etc/", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inventory.ValidMAC(tc.s); got != tc.want {
				t.Errorf("ValidMAC(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}
