package reyes

import (
	"context"
	"fmt"
	"testing"
)

// TestFailureCauseTimeout: a run that --timeout cut short is counted as
// cause "timeout" (it was "other"), whichever call was waiting.
func TestFailureCauseTimeout(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("fetching obj: reading obj: %w", context.DeadlineExceeded),
		fmt.Errorf("%w after 1s: %w", ErrTimeout, fmt.Errorf("getting s3://b/k: %w", context.DeadlineExceeded)),
	} {
		if got := failureCause(err); got != "timeout" {
			t.Errorf("failureCause(%v) = %q, want timeout", err, got)
		}
	}
}
