package validate

import (
	"fmt"
	"regexp"
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
