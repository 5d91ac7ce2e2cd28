package headerlimit

import (
	"testing"

	"go.uber.org/goleak"
)

// The test serves HTTP in the process; no connection's goroutine may
// outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
