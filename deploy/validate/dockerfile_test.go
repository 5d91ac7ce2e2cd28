package validate

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func readDockerfile(t *testing.T) (map[string]string, []stage) {
	t.Helper()
	data, err := os.ReadFile(deployPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	args, stages, err := parseDockerfile(data)
	if err != nil {
		t.Fatalf("deploy/Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("deploy/Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	return args, stages
}

// TestDockerfileRuntimeStage checks the image that ships: minimal base,
// non-root user, `herald worker` as the entrypoint with no arguments.
func TestDockerfileRuntimeStage(t *testing.T) {
	globalArgs, stages := readDockerfile(t)
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("runtime base %q: want distroless static or scratch", final.from)
	}
	var user, entrypoint string
	var copied []string
	for _, in := range final.body {
		switch in.keyword {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD", "RUN":
			t.Errorf("runtime stage line %d: %s: the image is configured by environment only and has no shell", in.line, in.keyword)
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) < 3 || f[0] != "--from="+stages[0].name {
				t.Errorf("runtime stage line %d: COPY %s: want files from the build stage", in.line, in.args)
				continue
			}
			copied = append(copied, f[1:len(f)-1]...)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root user, which Kubernetes' runAsNonRoot can verify", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || !slices.Equal(ep, []string{"/herald", "worker"}) {
		t.Errorf("ENTRYPOINT %s: want the exec form [\"/herald\", \"worker\"]", entrypoint)
	}
	builds, _ := buildLines(t, globalArgs, stages[0])
	var outs []string
	for _, b := range builds {
		outs = append(outs, b.out)
	}
	if !slices.Equal(sorted(copied), sorted(outs)) {
		t.Errorf("runtime stage copies %v, the build stage builds %v", copied, outs)
	}
}

// TestDockerfileBuildsWhatGoBuildBuilds runs each `go build` line of the
// build stage as the image build would (in a copy of the build context
// less what deploy/Dockerfile.dockerignore leaves out, with the stage's
// environment and not the host's) and the same `go build` in the
// repository as a developer would, and compares the two binaries byte for
// byte. The Go toolchain is this machine's; the image's must be the same
// minor version, which is checked against go.mod.
func TestDockerfileBuildsWhatGoBuildBuilds(t *testing.T) {
	globalArgs, stages := readDockerfile(t)
	build := stages[0]
	checkGoVersion(t, build.from)
	builds, stageEnv := buildLines(t, globalArgs, build)
	if len(builds) == 0 {
		t.Fatal("the build stage has no go build line")
	}
	var workdir string
	copiesContext := false
	for _, in := range build.body {
		switch {
		case in.keyword == "WORKDIR":
			workdir = in.args
		case in.keyword == "COPY" && in.args == ". .":
			copiesContext = true
		}
	}
	if !copiesContext || workdir == "" {
		t.Fatal("the build stage does not COPY . . into a WORKDIR: this check's model of the build does not hold")
	}
	pats := dockerignore(t)
	gocache, gomodcache := goEnv(t, "GOCACHE"), goEnv(t, "GOMODCACHE")
	for _, b := range builds {
		t.Run(b.pkg, func(t *testing.T) {
			if !slices.Contains(b.assign, "CGO_ENABLED=0") || !slices.Contains(b.flags, "-trimpath") {
				t.Errorf("line %d: want CGO_ENABLED=0 and -trimpath for a static binary without build paths", b.line)
			}
			// Other work may change the tree while this builds; a
			// difference counts only if the sources held still.
			for attempt := 1; ; attempt++ {
				before := fingerprint(t, repo, pats)
				outDir := t.TempDir()
				context := filepath.Join(outDir, filepath.Base(workdir))
				copyContext(t, repo, context, pats)
				image := filepath.Join(outDir, "image-"+filepath.Base(b.out))
				local := filepath.Join(outDir, "local-"+filepath.Base(b.out))

				// The image build: only the stage's environment, GOFLAGS
				// empty as in the golang image, no module downloads.
				cmd := exec.Command("go", append(append([]string{"build"}, b.flags...), "-o", image, b.pkg)...)
				cmd.Dir = context
				cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
					"GOCACHE=" + gocache, "GOMODCACHE=" + gomodcache, "GOFLAGS=", "GOPROXY=off"}
				for k, v := range stageEnv {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				cmd.Env = append(cmd.Env, b.assign...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("image build (line %d) in the build context: %v\n%s", b.line, err, out)
				}

				// The developer's build: the host's environment, the same line.
				cmd = exec.Command("go", append(append([]string{"build"}, b.flags...), "-o", local, b.pkg)...)
				cmd.Dir = repo
				cmd.Env = append(os.Environ(), b.assign...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("go build in the repository: %v\n%s", err, out)
				}

				hi, hl := fileSHA256(t, image), fileSHA256(t, local)
				if hi != hl && fingerprint(t, repo, pats) != before && attempt < 3 {
					t.Logf("line %d: the sources changed during the builds; building again", b.line)
					continue
				}
				t.Logf("line %d: image build sha256 %s, go build sha256 %s", b.line, hi, hl)
				if hi != hl {
					t.Errorf("the image's %s differs from go build's", b.pkg)
				}
				checkStatic(t, image)
				if data, _ := os.ReadFile(image); bytes.Contains(data, []byte(context)) || bytes.Contains(data, []byte(repo)) {
					t.Error("the binary holds a build path: -trimpath did not take")
				}
				return
			}
		})
	}
}

// fingerprint hashes the names and contents of the build context's files.
func fingerprint(t *testing.T, root string, pats []string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel != "." && ignored(rel, pats) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", rel, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		t.Fatalf("fingerprint the build context: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkGoVersion checks the build image's Go minor version against
// go.mod's go line and this toolchain's, so the comparison above is of
// like with like.
func checkGoVersion(t *testing.T, from string) {
	t.Helper()
	m := regexp.MustCompile(`^golang:(\d+\.\d+)`).FindStringSubmatch(from)
	if m == nil {
		t.Fatalf("build stage FROM %q: want the official golang image with a version", from)
	}
	mod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goLine == nil || string(goLine[1]) != m[1] {
		t.Errorf("build image Go %s, go.mod says %s", m[1], goLine)
	}
	if !strings.HasPrefix(runtime.Version(), "go"+m[1]) {
		t.Errorf("this toolchain is %s, the image's Go %s: the bytes cannot be compared", runtime.Version(), m[1])
	}
}

// dockerignore reads the patterns of deploy/Dockerfile.dockerignore, in
// the subset of .dockerignore syntax this check implements.
func dockerignore(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(deployPath("Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") || strings.Contains(l, "**") {
			t.Fatalf("dockerignore pattern %q: exceptions and ** are not implemented by this check", l)
		}
		if _, err := filepath.Match(l, ""); err != nil {
			t.Fatalf("dockerignore pattern %q: %v", l, err)
		}
		pats = append(pats, filepath.Clean(strings.TrimPrefix(l, "/")))
	}
	return pats
}

// ignored reports whether rel, or a folder it is in, matches a pattern:
// patterns are anchored at the context's root, as Docker's are.
func ignored(rel string, pats []string) bool {
	for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
		for _, pat := range pats {
			if ok, _ := filepath.Match(pat, p); ok {
				return true
			}
		}
	}
	return false
}

// copyContext copies the build context from src to dst, leaving out what
// the patterns ignore.
func copyContext(t *testing.T, src, dst string, pats []string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if rel != "." && ignored(rel, pats) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, target)
		}
		return nil // the context's symlinks and devices are not Herald's
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func fileSHA256(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// checkStatic checks the binary needs no dynamic loader or shared
// library: the distroless static base has none.
func checkStatic(t *testing.T, file string) {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked", filepath.Base(file))
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", filepath.Base(file), libs)
	}
}
