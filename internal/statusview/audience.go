package statusview

import (
	"os"

	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/worker/audience"
)

// AudienceSize is the number of records of the audience of a broadcast
// whose spec is raw, for a progress bar's 100%, or 0 when it cannot be
// known here cheaply: known for a synthetic audience, counted for a file
// this machine can read.
func AudienceSize(raw []byte) int64 {
	s, _, err := spec.Parse(raw, spec.Limits{})
	if err != nil {
		return 0
	}
	if s.Audience.Source == audience.SourceSynthetic {
		return s.Audience.Count
	}
	return countLines(s.Audience.Path)
}

// countLines counts a local audience file's lines (records), when it is
// readable and not too large to count in a moment.
func countLines(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() > 1<<30 {
		return 0
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		for _, b := range buf[:k] {
			if b == '\n' {
				n++
			}
		}
		if err != nil {
			return n
		}
	}
}
