package audience

import (
	"os"
	"testing"

	"github.com/herald-dev/herald/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the postgres tests share.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
