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
