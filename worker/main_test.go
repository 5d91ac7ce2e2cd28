package worker

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/internal/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Wrap(m)) }
