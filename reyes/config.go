package reyes

import (
	"errors"

	"github.com/reyes-fw/reyes/internal/route"
)

// ErrConfig is wrapped by every configuration error; the message names the
// offending key.
var ErrConfig = errors.New("configuration")

// ErrUsage is wrapped by errors in the command line itself (an unknown flag,
// a missing argument); binaries exit with status 2 for them.
var ErrUsage = errors.New("usage")

// ErrNoDefaultRoute is returned when the host has no IPv4 default route
// (the address lookup's route check, the baseline's interface).
var ErrNoDefaultRoute = route.ErrNoDefaultRoute
