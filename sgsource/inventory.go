package sgsource

import (
	"context"

	"github.com/reyes-fw/reyes/inventory"
)

// Source produces an Inventory. Implementations must be safe to call from
// one goroutine at a time; a Fetch either returns a complete inventory or an
// error, never a partial one.
type Source interface {
	Fetch(ctx context.Context) (*inventory.Inventory, error)
}
