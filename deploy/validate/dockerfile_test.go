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

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line    int
	keyword string // upper case
	args    string
}

// stage is one FROM and what follows it, with the ARG and ENV values in
// force for RUN lines (later instructions see earlier values).
type stage struct {
	from, name string
	body       []instruction
}

// parseDockerfile reads the instructions the checks below need. It knows
// Dockerfile syntax as far as deploy/Dockerfile uses it and fails on what
// it does not know, rather than guessing.
func parseDockerfile(data []byte) (globalArgs map[string]string, stages []stage, err error) {
	var ins []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		kw, args, _ := strings.Cut(cur.String(), " ")
		ins = append(ins, instruction{line: start, keyword: strings.ToUpper(kw), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	globalArgs = map[string]string{}
	for _, in := range ins {
		switch in.keyword {
		case "FROM":
			f := strings.Fields(in.args)
			s := stage{from: expand(f[0], globalArgs)}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else if len(f) != 1 {
				return nil, nil, fmt.Errorf("line %d: FROM %s", in.line, in.args)
			}
			stages = append(stages, s)
		case "ARG", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "ENTRYPOINT", "CMD":
			if len(stages) == 0 {
				if in.keyword != "ARG" {
					return nil, nil, fmt.Errorf("line %d: %s before FROM", in.line, in.keyword)
				}
				name, value, _ := strings.Cut(in.args, "=")
				globalArgs[name] = value
				continue
			}
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		default:
			return nil, nil, fmt.Errorf("line %d: instruction %s is not known to this check", in.line, in.keyword)
		}
	}
	return globalArgs, stages, nil
}

// shellSpecial are the characters of shell syntax beyond words and quotes:
// a build line using them is refused rather than run differently.
const shellSpecial = ";&|<>`\\()"

var shellVar = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// expand substitutes ${NAME} and $NAME from vars.
func expand(s string, vars map[string]string) string {
	return shellVar.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		return vars[name]
	})
}

// shellWords splits a command line as sh would for the forms a build
// line uses: blanks between words, single and double quotes, variables
// expanded from vars outside single quotes.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+end])
			i, inWord = i+1+end, true
		case c == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unclosed \" in %q", s)
			}
			w.WriteString(expand(s[i+1:i+1+end], vars))
			i, inWord = i+1+end, true
		case strings.ContainsRune(shellSpecial, rune(c)):
			return nil, fmt.Errorf("shell syntax %q in %q is not known to this check", c, s)
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t'\""+shellSpecial, rune(s[j])) {
				j++
			}
			w.WriteString(expand(s[i:j], vars))
			i, inWord = j-1, true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// goBuild is one `go build` line of the build stage.
type goBuild struct {
	line   int
	assign []string // VAR=value before the command
	flags  []string // between "go build" and the package, without -o
	out    string   // the -o path
	pkg    string
}

// buildLines returns the stage's `go build` lines, each with the ARG and
// ENV values in force where it appears.
func buildLines(t *testing.T, globalArgs map[string]string, s stage) (builds []goBuild, env map[string]string) {
	t.Helper()
	vars := map[string]string{}
	env = map[string]string{}
	for _, in := range s.body {
		switch in.keyword {
		case "ARG":
			name, value, _ := strings.Cut(in.args, "=")
			if v, ok := globalArgs[name]; ok && value == "" {
				value = v
			}
			vars[name] = value
		case "ENV":
			name, value, ok := strings.Cut(in.args, "=")
			if !ok || strings.ContainsAny(value, " \"'") {
				t.Fatalf("Dockerfile line %d: ENV %s: write one NAME=value", in.line, in.args)
			}
			vars[name], env[name] = value, value
		case "RUN":
			cmd := in.args
			for strings.HasPrefix(cmd, "--") {
				_, cmd, _ = strings.Cut(cmd, " ")
				cmd = strings.TrimSpace(cmd)
			}
			if !strings.Contains(cmd, "go build") {
				continue
			}
			words, err := shellWords(cmd, vars)
			if err != nil {
				t.Fatalf("Dockerfile line %d: %v", in.line, err)
			}
			b := goBuild{line: in.line}
			for len(words) > 0 && strings.Contains(words[0], "=") {
				b.assign, words = append(b.assign, words[0]), words[1:]
			}
			if len(words) < 3 || words[0] != "go" || words[1] != "build" {
				t.Fatalf("Dockerfile line %d: want [VAR=value...] go build ..., got %q", in.line, words)
			}
			words = words[2:]
			b.pkg, words = words[len(words)-1], words[:len(words)-1]
			for i := 0; i < len(words); i++ {
				if words[i] == "-o" && i+1 < len(words) {
					b.out = words[i+1]
					i++
					continue
				}
				b.flags = append(b.flags, words[i])
			}
			if b.out == "" {
				t.Fatalf("Dockerfile line %d: go build without -o", in.line)
			}
			builds = append(builds, b)
		}
	}
	return builds, env
}

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

// TestDockerfileParsers pins the small parsers the checks above rely on.
func TestDockerfileParsers(t *testing.T) {
	words, err := shellWords(`CGO_ENABLED=0 go build -ldflags="-s -X main.version=${VERSION}" -o '/out/a b' ./cmd/x`,
		map[string]string{"VERSION": "v1"})
	want := []string{"CGO_ENABLED=0", "go", "build", "-ldflags=-s -X main.version=v1", "-o", "/out/a b", "./cmd/x"}
	if err != nil || !slices.Equal(words, want) {
		t.Errorf("shellWords = %q, %v; want %q", words, err, want)
	}
	for _, bad := range []string{"go build && rm -rf /", "go build | tee", `go build "x`, "go build $(pwd)"} {
		if _, err := shellWords(bad, nil); err == nil {
			t.Errorf("shellWords(%q) accepted shell syntax it does not model", bad)
		}
	}
	pats := []string{".git", "*.test", "deploy/k8s"}
	for rel, want := range map[string]bool{
		".git/config": true, "x.test": true, "cmd/x.test": false, "deploy/k8s/base/a.yaml": true,
		"deploy/Dockerfile": false, "cmd/herald/main.go": false,
	} {
		if got := ignored(rel, pats); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
	if _, _, err := parseDockerfile([]byte("FROM a\nHEALTHCHECK CMD x\n")); err == nil {
		t.Error("parseDockerfile accepted an instruction it does not model")
	}
}
