package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// These tests prove that segmentio/kafka-go, the client Herald uses, works
// against the embedded broker the way Herald uses it: a Writer, and
// Readers in a consumer group committing offsets explicitly.

const testTopic = "herald.test"

// groupReaderConfig is how a Herald-like consumer group member is set up.
// The short intervals only make the tests quick; the defaults work too,
// they just take seconds to notice a rebalance.
func groupReaderConfig(brokers []string, group string) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers:           brokers,
		GroupID:           group,
		Topic:             testTopic,
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    2 * time.Second,
		RebalanceTimeout:  2 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		MaxWait:           200 * time.Millisecond,
		ReadBackoffMin:    10 * time.Millisecond,
		ReadBackoffMax:    50 * time.Millisecond,
	}
}

func startTestKafka(t *testing.T) *Kafka {
	t.Helper()
	k, err := StartKafka(context.Background(), KafkaConfig{Topics: []string{testTopic}, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// produce writes n messages keyed k0..k(n-1) with value equal to the key.
func produce(t *testing.T, brokers []string, from, n int) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        testTopic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		Transport:    tr,
	}
	msgs := make([]kafka.Message, 0, n)
	for i := from; i < from+n; i++ {
		k := fmt.Sprintf("k%d", i)
		msgs = append(msgs, kafka.Message{Key: []byte(k), Value: []byte(k)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}
}

// consumeCommit fetches and commits messages one at a time until want
// messages arrived or ctx ends, recording each value it saw.
func consumeCommit(ctx context.Context, r *kafka.Reader, want int, seen func(string)) error {
	for i := 0; i < want; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("fetch after %d: %w", i, err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			return fmt.Errorf("commit after %d: %w", i, err)
		}
		seen(string(m.Value))
	}
	return nil
}

// waitStableGroup waits until the group is stable with n members that all
// hold an assignment, so messages produced afterwards are not re-read
// because of a rebalance.
func waitStableGroup(t *testing.T, brokers []string, group string, n int) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := cl.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 {
			g := resp.Groups[0]
			assigned := 0
			for _, m := range g.Members {
				if len(m.MemberAssignments.Topics) > 0 {
					assigned++
				}
			}
			if g.Error == nil && g.GroupState == "Stable" && len(g.Members) == n && assigned == n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s never became stable with %d assigned members", group, n)
}

func TestKafkaGoWriterAndTwoGroupMembers(t *testing.T) {
	k := startTestKafka(t)
	const group, n = "two-members", 400
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	got := map[string][]int{} // value -> members that received it
	per := [2]int{}
	readers := [2]*kafka.Reader{}
	for i := range readers {
		readers[i] = kafka.NewReader(groupReaderConfig(k.Brokers(), group))
	}
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	// The members only join once they fetch, so fetching starts before
	// the messages exist; the producer waits for a stable group.
	var wg sync.WaitGroup
	total := make(chan struct{})
	errs := make(chan error, 2)
	for i, r := range readers {
		wg.Go(func() {
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					select {
					case <-total:
					default:
						errs <- fmt.Errorf("member %d: %w", i, err)
					}
					return
				}
				if err := r.CommitMessages(ctx, m); err != nil {
					errs <- fmt.Errorf("member %d commit: %w", i, err)
					return
				}
				mu.Lock()
				got[string(m.Value)] = append(got[string(m.Value)], i)
				per[i]++
				done := len(got) == n
				mu.Unlock()
				if done {
					close(total)
					cancel()
				}
			}
		})
	}
	waitStableGroup(t, k.Brokers(), group, 2)
	produce(t, k.Brokers(), 0, n)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(got) != n {
		t.Fatalf("received %d distinct messages, want %d", len(got), n)
	}
	for v, members := range got {
		if len(members) != 1 {
			t.Errorf("message %s received %d times (members %v) in a stable group", v, len(members), members)
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("work not shared between members: %v", per)
	}
	t.Logf("member shares: %v", per)
}

func TestKafkaGoGroupMemberRestartResumesAfterCommit(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(brokers []string, group string) kafka.ReaderConfig
	}{
		{"short intervals", groupReaderConfig},
		{"library defaults but MaxWait", func(brokers []string, group string) kafka.ReaderConfig {
			// kafka-go's Close waits for the fetch in flight, which the
			// broker holds for up to MaxWait (default 10 s) when there
			// is nothing new: keep it short or closing takes seconds.
			return kafka.ReaderConfig{Brokers: brokers, GroupID: group, Topic: testTopic, MaxWait: 500 * time.Millisecond}
		}},
		{"round robin, watching partitions", func(brokers []string, group string) kafka.ReaderConfig {
			c := groupReaderConfig(brokers, group)
			c.GroupBalancers = []kafka.GroupBalancer{kafka.RoundRobinGroupBalancer{}}
			c.WatchPartitionChanges = true
			c.PartitionWatchInterval = 100 * time.Millisecond
			return c
		}},
	}
	k := startTestKafka(t)
	const n, first = 100, 30
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			group := fmt.Sprintf("restart-%d", i)
			produce(t, k.Brokers(), i*n, n) // fresh messages; a new group reads from the start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			seen := map[string]int{}
			record := func(v string) { seen[v]++ }
			r := kafka.NewReader(tt.cfg(k.Brokers(), group))
			if err := consumeCommit(ctx, r, first, record); err != nil {
				t.Fatal(err)
			}
			// The reader has prefetched past what it committed; those
			// must come back to the next member, and nothing committed
			// may.
			if err := r.Close(); err != nil {
				t.Fatalf("close first member: %v", err)
			}

			r2 := kafka.NewReader(tt.cfg(k.Brokers(), group))
			defer r2.Close()
			// Earlier subtests' messages are in the topic too: the new
			// group reads them all, so count only this subtest's.
			if err := consumeCommit(ctx, r2, (i+1)*n-first, record); err != nil {
				t.Fatal(err)
			}
			for j := i * n; j < (i+1)*n; j++ {
				if c := seen[fmt.Sprintf("k%d", j)]; c != 1 {
					t.Errorf("message k%d seen %d times across the restart", j, c)
				}
			}
			if len(seen) != (i+1)*n {
				t.Errorf("saw %d distinct messages, want %d", len(seen), (i+1)*n)
			}
			// Nothing more is pending: a short fetch must time out.
			short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancelShort()
			if m, err := r2.FetchMessage(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("after all messages: got %q, %v; want a timeout", m.Value, err)
			}
		})
	}
}

func TestKafkaRejectsUnreachableAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "no-port"} {
		t.Run(addr, func(t *testing.T) {
			k, err := StartKafka(context.Background(), KafkaConfig{Addr: addr})
			if !errors.Is(err, ErrKafkaAddr) {
				if k != nil {
					k.Close()
				}
				t.Fatalf("StartKafka(%q) = %v, want ErrKafkaAddr", addr, err)
			}
		})
	}
}

func TestKafkaListensOnGivenAddr(t *testing.T) {
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	k, err := StartKafka(context.Background(), KafkaConfig{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if b := k.Brokers(); len(b) != 1 || b[0] != addr {
		t.Fatalf("Brokers() = %v, want [%s]", b, addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A restartable broker stopped and started again is an outage: refused
// while down, back on the same address with its messages and the
// group's committed offsets, so a consumer resumes where it committed.
func TestKafkaStopRestartKeepsAddressAndData(t *testing.T) {
	k, err := StartKafka(context.Background(), KafkaConfig{Topics: []string{testTopic}, Partitions: 4, Restartable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	addr := k.Brokers()[0]
	const n, first = 40, 15
	produce(t, k.Brokers(), 0, n/2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	record := func(v string) { seen[v]++ }
	r := kafka.NewReader(groupReaderConfig(k.Brokers(), "outage"))
	if err := consumeCommit(ctx, r, first, record); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	k.Stop()
	k.Stop() // a second stop does nothing
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the stopped broker still accepts connections")
	}
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Restart(ctx); err != nil {
		t.Fatalf("restarting a running broker: %v", err)
	}
	if b := k.Brokers(); len(b) != 1 || b[0] != addr {
		t.Fatalf("restarted on %v, want [%s]", b, addr)
	}
	produce(t, k.Brokers(), n/2, n/2)
	r2 := kafka.NewReader(groupReaderConfig(k.Brokers(), "outage"))
	defer r2.Close()
	if err := consumeCommit(ctx, r2, n-first, record); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if c := seen[fmt.Sprintf("k%d", i)]; c != 1 {
			t.Errorf("message k%d seen %d times across the outage", i, c)
		}
	}

	mem := startTestKafka(t)
	mem.Stop()
	if err := mem.Restart(ctx); !errors.Is(err, ErrNotRestartable) {
		t.Errorf("restart of an in-memory broker: %v, want ErrNotRestartable", err)
	}
}
