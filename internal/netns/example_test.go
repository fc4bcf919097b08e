package netns_test

import (
	"errors"
	"fmt"

	"github.com/reyes-fw/reyes/internal/netns"
)

// Expect turns a probe's outcome into a test verdict; in a kernel test the
// probe is e.g. a.TCP(src, dst, timeout) between two namespaces.
func ExampleExpect() {
	blocked := func() error { return errors.New("i/o timeout") }
	fmt.Println(netns.Expect(false, blocked))
	fmt.Println(netns.Expect(true, blocked))
	// Output:
	// <nil>
	// unexpected traffic outcome: want allowed, got i/o timeout
}
