package connect

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests run etcd and Kafka clients against servers in the process;
// none may leave a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
