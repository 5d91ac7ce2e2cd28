package audience

import (
	"testing"

	"github.com/herald-dev/herald/internal/pgtest"
	"go.uber.org/goleak"
)

// TestMain stops the PostgreSQL cluster the postgres tests share, then
// checks that no test left a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Wrap(m)) }
