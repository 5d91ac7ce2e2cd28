package statusview

import (
	"context"
	"os"
	"time"

	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/prepared"
)

// AudienceSize is the number of records of the audience of a broadcast
// whose spec is raw, for a progress bar's 100%, or 0 when it cannot be
// known here cheaply: known for a synthetic audience, counted for a file
// this machine can read, read from the index of a prepared audience in a
// directory it can read. A prepared audience in object storage, or a
// postgres table, would take the workers' secret to count: 0.
func AudienceSize(raw []byte) int64 {
	s, _, err := spec.Parse(raw, spec.Limits{})
	if err != nil {
		return 0
	}
	switch s.Audience.Source {
	case audience.SourceSynthetic:
		return s.Audience.Count
	case audience.SourceFile:
		return countLines(s.Audience.Path)
	case audience.SourcePrepared:
		loc, err := audience.ParseLocation(s.Audience.Path)
		if err != nil || loc.Bucket != "" {
			return 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if p, err := prepared.Open(ctx, prepared.DirStore{Dir: loc.Dir}, audience.Limits{}); err == nil {
			return p.Records()
		}
	}
	return 0
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
