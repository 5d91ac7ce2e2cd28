package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/herald-dev/herald/internal/fleet"
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space whatever the kernel's HZ.
const clockTicks = 100

// cpuTicks reads the CPU time of each running process, by pid.
func cpuTicks(procs []*fleet.Proc) map[int]int64 {
	out := make(map[int]int64, len(procs))
	for _, p := range procs {
		if t, err := procCPUTicks(strconv.Itoa(p.Pid())); err == nil {
			out[p.Pid()] = t
		}
	}
	return out
}

// selfTicks is this process's CPU time, 0 if unreadable.
func selfTicks() int64 {
	t, _ := procCPUTicks("self")
	return t
}

// procCPUTicks is utime + stime of /proc/<pid>/stat, in clock ticks.
func procCPUTicks(pid string) (int64, error) {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, fmt.Errorf("loadtest: cpu of %s: %w", pid, err)
	}
	return parseCPUTicks(raw)
}

// parseCPUTicks reads utime and stime, the 14th and 15th fields of a
// /proc/<pid>/stat line. The second field, the command name in
// parentheses, may hold spaces, so fields are counted after its ')'.
func parseCPUTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("loadtest: malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errors.New("loadtest: short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("loadtest: /proc stat: %w", err)
	}
	return utime + stime, nil
}

// procStatusKB reads one "Name:   123 kB" line of /proc/<pid>/status.
func procStatusKB(pid int, name string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("loadtest: no %s in the status of %d", name, pid)
}

// procTree is what /proc/<pid>/stat says of a process's CPU time and
// parent: its own utime + stime, and cutime + cstime, the CPU time of its
// children that have exited and been waited for.
type procTree struct {
	ppid           int
	self, children int64
}

// parseProcTree reads the parent (field 4) and utime, stime, cutime and
// cstime (fields 14 to 17) of a /proc/<pid>/stat line.
func parseProcTree(stat []byte) (procTree, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procTree{}, errors.New("loadtest: malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3, the state
	if len(f) < 15 {
		return procTree{}, errors.New("loadtest: short /proc stat")
	}
	var v [5]int64
	for k, idx := range []int{1, 11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil {
			return procTree{}, fmt.Errorf("loadtest: /proc stat: %w", err)
		}
		v[k] = n
	}
	return procTree{ppid: int(v[0]), self: v[1] + v[2], children: v[3] + v[4]}, nil
}

// treeTicks is the CPU time, in clock ticks, of process pid and of its
// children, running or exited: a PostgreSQL server's postmaster and its
// backends, one a connection.
func treeTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("loadtest: cpu of %d: %w", pid, err)
	}
	root, err := parseProcTree(raw)
	if err != nil {
		return 0, err
	}
	total := root.self + root.children
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("loadtest: %w", err)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if p, err := parseProcTree(raw); err == nil && p.ppid == pid {
			total += p.self
		}
	}
	return total, nil
}

// listenerPid finds the process whose command line is binary name with
// the flags "-p port": how a PostgreSQL server started by devstack is
// told apart from any other on the machine. 0 when there is none.
func listenerPid(name, port string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if argvHas(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), name, port) {
			return pid
		}
	}
	return 0
}

// argvHas reports whether argv runs a binary called name with "-p port".
func argvHas(argv []string, name, port string) bool {
	if len(argv) == 0 || (argv[0] != name && !strings.HasSuffix(argv[0], "/"+name)) {
		return false
	}
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] == "-p" && argv[i+1] == port {
			return true
		}
	}
	return false
}
