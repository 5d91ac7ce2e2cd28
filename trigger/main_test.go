package trigger

import (
	"testing"

	"go.uber.org/goleak"
)

// Produce runs a Kafka writer; none of its goroutines may outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
