package fleet

import (
	"errors"
	"os"
	"testing"
)

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   int64
		err    bool
	}{
		{name: "linux", status: "Name:\therald\nVmPeak:\t 900 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 100 kB\n", want: 20480 << 10},
		{name: "absent", status: "Name:\therald\n", err: true},
		{name: "other unit", status: "VmHWM:\t 2 MB\n", err: true},
		{name: "not a number", status: "VmHWM:\t x kB\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmHWM([]byte(tt.status))
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parseVmHWM = %d, %v; want %d, error %v", got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := parseVmHWM(nil); !errors.Is(err, ErrNoPeakRSS) {
		t.Errorf("empty status: %v, want ErrNoPeakRSS", err)
	}
}

func TestPeakRSSOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	n, err := peakRSS(os.Getpid())
	if err != nil || n <= 0 {
		t.Fatalf("peakRSS(self) = %d, %v", n, err)
	}
}
