// Package route reads the kernel's IPv4 routing table (/proc/net/route):
// which interface carries the default route. It is shared by the follower's
// identity check and the baseline's default interface.
package route

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcNetRoute is the kernel's IPv4 routing table, per network namespace.
const ProcNetRoute = "/proc/net/route"

// ErrNoDefaultRoute is returned by DefaultInterface when the table has
// no default route.
var ErrNoDefaultRoute = errors.New("no default route")

// DefaultInterface returns the interface of the IPv4 default route
// with the lowest metric, read from a file in the format of
// /proc/net/route. The baseline guards that interface unless told
// otherwise, instead of a hard-coded eth0.
func DefaultInterface(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading routes: %w", err)
	}
	defer f.Close()
	best, bestMetric := "", -1
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		fields := strings.Fields(sc.Text())
		if first || len(fields) < 8 {
			continue // header, or not a route line
		}
		flags, err1 := strconv.ParseUint(fields[3], 16, 32)
		metric, err2 := strconv.Atoi(fields[6])
		if err1 != nil || err2 != nil {
			continue
		}
		const rtfUp = 0x1
		if fields[1] != "00000000" || fields[7] != "00000000" || flags&rtfUp == 0 {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = fields[0], metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading routes: %w", err)
	}
	if best == "" {
		return "", ErrNoDefaultRoute
	}
	return best, nil
}
