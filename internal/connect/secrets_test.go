package connect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, value string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("push-signing", "file-key-0123456789\n")
	write("push.auth", "Bearer from-file\n")
	write("too-big", strings.Repeat("x", MaxSecretBytes+1))
	// Kubernetes mounts each key as a link into a hidden, versioned folder.
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "..data", "linked"), []byte("via-link"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "linked"), filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HERALD_SECRET_PUSH_AUTH": "Bearer from-env", "HERALD_SECRET_ONLY_ENV": "env-value"}
	s := Secrets{Dir: dir, Getenv: func(k string) string { return env[k] }}
	tests := []struct {
		name, secret, want string
		err                error
	}{
		{name: "from the directory", secret: "push-signing", want: "file-key-0123456789\n"},
		{name: "environment wins over the file", secret: "push.auth", want: "Bearer from-env"},
		{name: "environment only", secret: "only-env", want: "env-value"},
		{name: "through a link", secret: "linked", want: "via-link"},
		{name: "missing", secret: "nope", err: fs.ErrNotExist},
		{name: "path", secret: "../etc/passwd", err: fs.ErrInvalid},
		{name: "hidden", secret: "..data", err: fs.ErrInvalid},
		{name: "slash", secret: "a/b", err: fs.ErrInvalid},
		{name: "empty", secret: "", err: fs.ErrInvalid},
		{name: "too big", secret: "too-big", err: errors.New("more than")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.Secret(tt.secret)
			if tt.err == nil {
				if err != nil || string(v) != tt.want {
					t.Fatalf("got %q, %v; want %q", v, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) && !strings.Contains(fmt.Sprint(err), tt.err.Error()) {
				t.Fatalf("got %q, %v; want %v", v, err, tt.err)
			}
		})
	}
	if _, err := (Secrets{}).Secret("x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no directory, no environment: %v", err)
	}
}

func TestSecretEnvName(t *testing.T) {
	for name, want := range map[string]string{
		"push-auth":     "HERALD_SECRET_PUSH_AUTH",
		"eu.push.key_2": "HERALD_SECRET_EU_PUSH_KEY_2",
	} {
		if got := EnvName(name); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", name, got, want)
		}
	}
}
