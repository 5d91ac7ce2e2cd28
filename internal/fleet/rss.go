package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// ErrNoPeakRSS reports a /proc status file without a VmHWM line (not
// Linux, or the process is gone).
var ErrNoPeakRSS = errors.New("fleet: no VmHWM in the process status")

// PeakRSS returns the worker's peak resident set size in bytes, as the
// kernel keeps it (VmHWM in /proc/<pid>/status). The kernel forgets it
// when the process is reaped, so a caller that wants the figure of a
// worker it is about to kill reads it first.
func (p *Proc) PeakRSS() (int64, error) {
	return peakRSS(p.Pid())
}

func peakRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("fleet: peak RSS of pid %d: %w", pid, err)
	}
	return parseVmHWM(raw)
}

// parseVmHWM reads the "VmHWM:   123456 kB" line of a /proc status file.
func parseVmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("fleet: unexpected VmHWM line %q", sc.Bytes())
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("fleet: VmHWM %q: %w", f[0], err)
		}
		return kb << 10, nil
	}
	return 0, ErrNoPeakRSS
}
