package allowlist

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// maxFile bounds an allowlist file: thousands of patterns fit.
const maxFile = 1 << 20

// ReadFile reads patterns from a file of one pattern a line; blank lines
// and everything after a # are ignored. A bad pattern is an error wrapping
// ErrPattern that names the file and the line.
func ReadFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("allowlist: read: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("allowlist: read %s: %w", path, err)
	case len(data) > maxFile:
		return nil, fmt.Errorf("allowlist: read %s: more than %d bytes", path, maxFile)
	}
	var out []string
	n := 0
	for raw := range strings.Lines(string(data)) {
		n++
		line, _, _ := strings.Cut(raw, "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if _, err := parseRule(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, line)
	}
	return out, nil
}
