package validate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if heraldOnce.dir != "" {
		os.RemoveAll(heraldOnce.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// repo is the repository root, two folders up from this module.
var repo = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// deployPath is a path under deploy/.
func deployPath(elem ...string) string {
	return filepath.Join(append([]string{repo, "deploy"}, elem...)...)
}

var heraldOnce struct {
	sync.Once
	dir, bin string
	err      error
}

// herald builds the herald binary from the repository, once per test
// run, with the `go build` line of deploy/Dockerfile: the tests that run
// it run what the image holds, and the Dockerfile check's own `go build`
// of it then finds every package compiled.
func herald(t *testing.T) string {
	t.Helper()
	heraldOnce.Do(func() {
		// Stays set if a check below ends this function early.
		heraldOnce.err = errors.New("herald binary not built")
		var line *goBuild
		globalArgs, stages := readDockerfile(t)
		builds, _ := buildLines(t, globalArgs, stages[0])
		for i := range builds {
			if builds[i].pkg == "./cmd/herald" {
				line = &builds[i]
			}
		}
		if line == nil {
			heraldOnce.err = errors.New("deploy/Dockerfile has no go build line for ./cmd/herald")
			return
		}
		heraldOnce.dir, heraldOnce.err = os.MkdirTemp("", "herald-validate-")
		if heraldOnce.err != nil {
			return
		}
		heraldOnce.bin = filepath.Join(heraldOnce.dir, "herald")
		cmd := exec.Command("go", append(append([]string{"build"}, line.flags...), "-o", heraldOnce.bin, line.pkg)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), line.assign...)
		if out, err := cmd.CombinedOutput(); err != nil {
			heraldOnce.err = fmt.Errorf("build herald as deploy/Dockerfile line %d does: %v\n%s", line.line, err, out)
		}
	})
	if heraldOnce.err != nil {
		t.Fatal(heraldOnce.err)
	}
	return heraldOnce.bin
}

// runtimeEnv are variables read by the Go runtime, not by herald.
var runtimeEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC"}

// secretEnvPrefix starts the environment form of a named endpoint secret.
const secretEnvPrefix = "HERALD_SECRET_"

var helpEnv = regexp.MustCompile(`\$(HERALD_[A-Z0-9_]+)`)

// knownEnv is what a container running `herald <command>` may set: the
// environment twins `herald <command> --help` lists, and the Go runtime's.
func knownEnv(t *testing.T, command string) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(herald(t), command, "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{} // the help must not depend on the environment
	if err := cmd.Run(); err != nil {
		t.Fatalf("herald %s --help: %v\n%s", command, err, out.Bytes())
	}
	known := map[string]bool{}
	for _, m := range helpEnv.FindAllStringSubmatch(out.String(), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		t.Fatalf("herald %s --help lists no HERALD_ variables:\n%s", command, out.Bytes())
	}
	for _, name := range runtimeEnv {
		known[name] = true
	}
	return known
}

// checkEnvNames reports every name in names that a container running
// `herald <command>` would not read: a misspelt variable is silently
// ignored by the binary, so only a test can catch it.
func checkEnvNames(t *testing.T, where, command string, names []string) {
	t.Helper()
	known := knownEnv(t, command)
	var unknown []string
	for _, n := range names {
		if !known[n] && !strings.HasPrefix(n, secretEnvPrefix) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		t.Errorf("%s sets variables `herald %s --help` does not list: %v", where, command, unknown)
	}
}
