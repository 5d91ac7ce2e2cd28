package devstack

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stackAddrs lists every address a stack listens on.
func stackAddrs(t *testing.T, s *Stack) []string {
	t.Helper()
	u, err := url.Parse(s.EtcdEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{u.Host}
	for _, p := range s.etcd.srv.Peers {
		addrs = append(addrs, p.Addr().String())
	}
	return append(addrs, s.KafkaBrokers()...)
}

// checkStackServes writes and reads a key in etcd and lists the topics in
// Kafka, with clients whose goroutines end before it returns.
func checkStackServes(t *testing.T, s *Stack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.EtcdEndpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "/herald/probe", "ok"); err != nil {
		t.Fatalf("etcd put: %v", err)
	}
	if resp, err := cli.Get(ctx, "/herald/probe"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd get: %v %v", resp, err)
	}

	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	kc := &kafka.Client{Addr: kafka.TCP(s.KafkaBrokers()...), Transport: tr}
	md, err := kc.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatalf("kafka metadata: %v", err)
	}
	have := map[string]int{}
	for _, tp := range md.Topics {
		have[tp.Name] = len(tp.Partitions)
	}
	for _, name := range []string{BroadcastsTopic, DeadLettersTopic, ReportsTopic} {
		if have[name] != 4 {
			t.Errorf("topic %s has %d partitions, want 4 (topics: %v)", name, have[name], have)
		}
	}
}

func assertRefused(t *testing.T, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", a)
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s after Close: %v, want connection refused", a, err)
		}
	}
}

func TestStackStartStop20TimesLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // etcd's data dir goes here, so leftovers are ours
	for i := range 20 {
		start := time.Now()
		s, err := Start(context.Background(), Config{})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		ready := time.Since(start)
		checkStackServes(t, s)
		addrs := stackAddrs(t, s)
		if err := s.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
		assertRefused(t, addrs)
		left, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Fatalf("cycle %d left %d entries in the temp dir, first %s", i, len(left), left[0].Name())
		}
		if i == 0 {
			t.Logf("stack ready in %v (etcd %s, kafka %v)", ready, addrs[0], addrs[2:])
		}
	}
	goleak.VerifyNone(t)
}

func TestStackRestartsOnSameAddresses(t *testing.T) {
	etcdAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	kafkaAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s, err := Start(context.Background(), Config{EtcdAddr: etcdAddr, KafkaAddr: kafkaAddr})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if got, want := s.EtcdEndpoint(), "http://"+etcdAddr; got != want {
			t.Errorf("etcd endpoint %s, want %s", got, want)
		}
		if got := s.KafkaBrokers(); len(got) != 1 || got[0] != kafkaAddr {
			t.Errorf("kafka brokers %v, want [%s]", got, kafkaAddr)
		}
		checkStackServes(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStackStartFailsCleanlyOnTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"kafka", Config{KafkaAddr: l.Addr().String()}},
		{"etcd", Config{EtcdAddr: l.Addr().String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(context.Background(), tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Start on a taken port succeeded")
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("failed start left %s behind", left[0].Name())
			}
		})
	}
}

// BenchmarkStackStart measures a full start and stop; the start alone is
// reported as start-ms.
func BenchmarkStackStart(b *testing.B) {
	var started time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := Start(context.Background(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		started += time.Since(t0)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(started.Milliseconds())/float64(b.N), "start-ms")
}
