package connect

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretEnvPrefix starts the environment variable of a secret: the secret
// push-auth is HERALD_SECRET_PUSH_AUTH.
const SecretEnvPrefix = "HERALD_SECRET_"

// MaxSecretBytes bounds a secret's value; keys and tokens are far shorter.
const MaxSecretBytes = 64 << 10

// Secrets reads named secrets from the environment and a directory.
// A trigger names secrets; their values never travel with it.
type Secrets struct {
	// Dir holds one file per secret, named by the secret's name, as
	// Kubernetes mounts a Secret. Empty means no directory.
	Dir string
	// Getenv reads the environment; nil means none. The variable of a
	// secret is SecretEnvPrefix plus its name upper-cased with - and .
	// as _; when set and not empty it wins over the file.
	Getenv func(string) string
}

// EnvName is the environment variable of the secret name.
func EnvName(name string) string {
	return SecretEnvPrefix + strings.Map(func(r rune) rune {
		if r == '-' || r == '.' {
			return '_'
		}
		return r
	}, strings.ToUpper(name))
}

// Secret returns the value of name. A name that no variable and no file
// holds gives an error wrapping fs.ErrNotExist. Errors never contain a
// value.
func (s Secrets) Secret(name string) ([]byte, error) {
	if !secretName(name) {
		return nil, fmt.Errorf("connect: secret name %q: only A-Z a-z 0-9 . _ -, not starting with a dot: %w", name, fs.ErrInvalid)
	}
	if s.Getenv != nil {
		if v := s.Getenv(EnvName(name)); v != "" {
			if len(v) > MaxSecretBytes {
				return nil, fmt.Errorf("connect: secret %s from %s: more than %d bytes", name, EnvName(name), MaxSecretBytes)
			}
			return []byte(v), nil
		}
	}
	if s.Dir == "" {
		return nil, fmt.Errorf("connect: secret %s: %w", name, fs.ErrNotExist)
	}
	// The name has no separator and no leading dot, so the path stays in
	// Dir. Symbolic links are followed: Kubernetes mounts secrets as links.
	f, err := os.Open(filepath.Join(s.Dir, name))
	if err != nil {
		return nil, fmt.Errorf("connect: secret %s: %w", name, err)
	}
	defer f.Close()
	v, err := io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("connect: secret %s: %w", name, err)
	case len(v) > MaxSecretBytes:
		return nil, fmt.Errorf("connect: secret %s: more than %d bytes", name, MaxSecretBytes)
	}
	return v, nil
}

func secretName(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
