package delivery

import (
	"testing"

	"go.uber.org/goleak"
)

// Senders keep connection goroutines and the dead-letter writer keeps
// broker connections; every test must leave none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
