package audience

import (
	"fmt"
	"strings"
)

// Location is where a prepared audience lives: a directory, or a bucket
// and key prefix of S3-compatible object storage.
type Location struct {
	Dir    string // a directory, when Bucket is ""
	Bucket string
	Prefix string // without leading or trailing '/'
}

// ParseLocation reads a prepared audience's path: s3://bucket/prefix for
// object storage, anything else a directory.
func ParseLocation(s string) (Location, error) {
	if !strings.HasPrefix(s, "s3://") {
		if strings.Contains(s, "://") {
			return Location{}, fmt.Errorf("%q: want a directory or s3://bucket/prefix", s)
		}
		return Location{Dir: s}, nil
	}
	rest := strings.TrimPrefix(s, "s3://")
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Location{}, fmt.Errorf("%q: no bucket (want s3://bucket/prefix)", s)
	}
	prefix = strings.Trim(prefix, "/")
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

func (l Location) String() string {
	if l.Bucket == "" {
		return l.Dir
	}
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	// Not path.Join: keys are not paths, and "a//b" is another prefix
	// than "a/b".
	return "s3://" + l.Bucket + "/" + l.Prefix
}
