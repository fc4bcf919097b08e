package sgsource

import (
	"net/http/httptest"
	"testing"

	"github.com/reyes-fw/reyes/inventory"
)

// The fake EC2 endpoint, for the external tests (package sgsource_test),
// which may import internal/synth: it imports sgsource.

// NewFakeEC2 serves inv as the EC2 Query API; see fakeEC2.
func NewFakeEC2(t testing.TB, inv *inventory.Inventory) (*FakeEC2, *httptest.Server) {
	f, srv := newFakeEC2(t, inv)
	return (*FakeEC2)(f), srv
}

// FakeEC2 is fakeEC2 with its call counter exported.
type FakeEC2 fakeEC2

// Count returns the number of requests of one action in one region ("" for
// all).
func (f *FakeEC2) Count(region, action string) int { return (*fakeEC2)(f).count(region, action) }

// NewTestEC2 is testEC2: an EC2 source pointed at srv.
func NewTestEC2(srv *httptest.Server, regions ...string) *EC2 { return testEC2(srv, regions...) }
