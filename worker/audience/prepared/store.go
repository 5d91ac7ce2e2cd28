package prepared

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/herald-dev/herald/worker/audience"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNotFound is returned, wrapped with the object's name, for a prepared
// audience object that does not exist.
var ErrNotFound = errors.New("prepared: object not found")

// Store holds a prepared audience's objects: its index, the segments and
// their checkpoint files.
type Store interface {
	// ReadRange reads n bytes of object name from offset off; n < 0 means
	// to the end. A missing object is an error wrapping ErrNotFound.
	ReadRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error)
	// Put writes object name, size bytes from r, replacing it.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
}

// DirStore keeps objects as files of a directory.
type DirStore struct{ Dir string }

var _ Store = DirStore{}

// ReadRange opens the file and limits the read to the range.
func (d DirStore) ReadRange(_ context.Context, name string, off, n int64) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(d.Dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, filepath.Join(d.Dir, name))
	}
	if err != nil {
		return nil, fmt.Errorf("prepared: %w", err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("prepared: %w", err)
	}
	if n < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, n), f}, nil
}

// Put writes a temporary file and renames it into place, so a reader
// never sees half an object.
func (d DirStore) Put(_ context.Context, name string, r io.Reader, _ int64) error {
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return fmt.Errorf("prepared: %w", err)
	}
	f, err := os.CreateTemp(d.Dir, "."+name+".tmp-")
	if err != nil {
		return fmt.Errorf("prepared: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(d.Dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("prepared: write %s: %w", name, err)
	}
	return nil
}

// S3Store keeps objects under a prefix of a bucket of S3-compatible
// object storage.
type S3Store struct {
	Client *minio.Client
	Bucket string
	Prefix string
}

var _ Store = (*S3Store)(nil)

// NewS3Store connects to the endpoint a connection secret holds:
// http[s]://ACCESS_KEY:SECRET_KEY@host[:port][?region=REGION]. Buckets are
// addressed by path (http://host/bucket/key), which every S3-compatible
// server understands. Errors never quote the secret.
func NewS3Store(secret string, loc audience.Location) (*S3Store, error) {
	u, err := url.Parse(strings.TrimSpace(secret))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("prepared: the connection secret is not http[s]://ACCESS_KEY:SECRET_KEY@host[:port][?region=REGION]")
	}
	var access, key string
	if u.User != nil {
		access = u.User.Username()
		key, _ = u.User.Password()
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(access, key, ""),
		Secure:       u.Scheme == "https",
		Region:       u.Query().Get("region"),
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("prepared: S3 client for %s: %w", u.Host, err)
	}
	return &S3Store{Client: c, Bucket: loc.Bucket, Prefix: loc.Prefix}, nil
}

func (s *S3Store) key(name string) string {
	if s.Prefix == "" {
		return name
	}
	return s.Prefix + "/" + name
}

// ReadRange gets the object with a Range header: only the bytes asked for
// cross the network.
func (s *S3Store) ReadRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	opts := minio.GetObjectOptions{}
	var err error
	switch {
	case n == 0:
		return io.NopCloser(strings.NewReader("")), nil
	case n < 0 && off > 0:
		err = opts.SetRange(off, 0)
	case n > 0:
		err = opts.SetRange(off, off+n-1)
	}
	if err != nil {
		return nil, fmt.Errorf("prepared: %w", err)
	}
	obj, err := s.Client.GetObject(ctx, s.Bucket, s.key(name), opts)
	if err != nil {
		return nil, s.err(name, err)
	}
	// GetObject is lazy: the first read reports a missing object. Stat
	// makes that error appear here, named.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s.err(name, err)
	}
	return obj, nil
}

func (s *S3Store) err(name string, err error) error {
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return fmt.Errorf("%w: s3://%s/%s", ErrNotFound, s.Bucket, s.key(name))
	}
	return fmt.Errorf("prepared: s3://%s/%s: %w", s.Bucket, s.key(name), err)
}

// Put uploads the object in one PUT. Segments are tens of megabytes, far
// below any server's single-PUT limit (5 GiB on S3), and a single PUT is
// what every S3-compatible server gets right: gofakes3, which the tests
// use, stores a multipart upload's chunk signatures as data.
func (s *S3Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	_, err := s.Client.PutObject(ctx, s.Bucket, s.key(name), r, size,
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	if err != nil {
		return s.err(name, err)
	}
	return nil
}

// StoreFor is the Store a prepared audience's spec names: its directory,
// or its bucket and prefix on the endpoint held by the secret
// spec.Connection names, read with secret (a worker's secrets).
func StoreFor(spec audience.Spec, secret func(name string) ([]byte, error)) (Store, error) {
	if spec.Source != audience.SourcePrepared {
		return nil, fmt.Errorf("%w: source %q is not prepared", audience.ErrSpec, spec.Source)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	loc, err := audience.ParseLocation(spec.Path)
	if err != nil {
		return nil, err
	}
	if loc.Bucket == "" {
		return DirStore{Dir: loc.Dir}, nil
	}
	v, err := secret(spec.Connection)
	if err != nil {
		return nil, fmt.Errorf("prepared: secret %q: %w", spec.Connection, err)
	}
	return NewS3Store(string(v), loc)
}
