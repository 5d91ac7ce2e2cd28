package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/postgres"
)

// TestDevPrintsWorkingAddresses runs `herald dev` in process on free
// ports, uses the printed addresses with real clients (the console with
// the printed token), interrupts it, and checks it exits 0 with every
// port closed.
func TestDevPrintsWorkingAddresses(t *testing.T) {
	var stdout, stderr syncBuffer
	a := &cli{commands: commands(), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		exited <- a.run(ctx, []string{"dev", "--etcd-listen", "127.0.0.1:0", "--kafka-listen=127.0.0.1:0", "--sink-listen", "127.0.0.1:0",
			"--console-listen", "127.0.0.1:0"})
	}()

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "Ready.") {
		select {
		case code := <-exited:
			t.Fatalf("dev exited %d before ready:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev not ready:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := stdout.String()
	addr := func(name string) string {
		m := regexp.MustCompile(`(?m)^  ` + name + ` +(\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s line in:\n%s", name, out)
		}
		return m[1]
	}
	etcdURL, kafkaAddr, sinkURL, consoleURL := addr("etcd"), addr("kafka"), addr("sink"), addr("console")
	t.Logf("etcd %s, kafka %s, sink %s, console %s", etcdURL, kafkaAddr, sinkURL, consoleURL)

	checkEtcd(t, etcdURL)
	checkKafka(t, kafkaAddr)
	checkSink(t, sinkURL)
	token := regexp.MustCompile(`(?m)sign in with the access token\n  (\S+)$`).FindStringSubmatch(out)
	if token == nil {
		t.Fatalf("no console token in:\n%s", out)
	}
	checkConsole(t, consoleURL, token[1])
	checkPushFakes(t, out)

	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("dev exited %d after interrupt:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dev did not stop after interrupt")
	}
	eu, _ := url.Parse(etcdURL)
	su, _ := url.Parse(sinkURL)
	cu, _ := url.Parse(consoleURL)
	for _, a := range []string{eu.Host, kafkaAddr, su.Host, cu.Host} {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s still open after dev stopped", a)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s: %v, want refused", a, err)
		}
	}
	if !strings.Contains(stderr.String(), "dev stack stopped") {
		t.Errorf("no shutdown log in stderr:\n%s", stderr.String())
	}
}

func checkEtcd(t *testing.T, endpoint string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "/herald/hello", "world"); err != nil {
		t.Fatalf("etcd put: %v", err)
	}
	resp, err := cli.Get(ctx, "/herald/hello")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "world" {
		t.Fatalf("etcd get: %v %v", resp, err)
	}
}

func checkKafka(t *testing.T, broker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr: kafka.TCP(broker), Topic: "herald.broadcasts", Transport: tr, BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }),
	}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("spring-sale"), Value: []byte(`{"id":"spring-sale"}`)}); err != nil {
		t.Fatalf("kafka produce: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "herald.broadcasts", Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil || string(m.Key) != "spring-sale" {
		t.Fatalf("kafka consume: %q %v", m.Key, err)
	}
}

func checkSink(t *testing.T, base string) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, base+"/push", strings.NewReader(`{"broadcast_id":"spring-sale"}`))
		req.Header.Set("Idempotency-Key", "spring-sale:u1")
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := cl.Get(base + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st sink.Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("stats %s: %v", body, err)
	}
	if st.Delivered != 1 || st.Duplicates != 1 || st.Broadcasts["spring-sale"].Delivered != 1 {
		t.Fatalf("sink stats %+v", st)
	}
}

// checkConsole: the page is served, and the printed token enables actions
// (an action on an unknown broadcast is then "not found", not refused).
func checkConsole(t *testing.T, base, token string) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Herald console") {
		t.Fatalf("console page: %s\n%s", resp.Status, body)
	}
	for tok, want := range map[string]int{token: http.StatusNotFound, "not-the-token-0123456789": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodPost, base+"api/broadcasts/nope/pause", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("pause with token %q: %s, want %d", tok, resp.Status, want)
		}
	}
}

// checkPushFakes asks each fake provider dev printed for its stats, over
// TLS verified with the certificate file dev printed for workers.
func checkPushFakes(t *testing.T, out string) {
	t.Helper()
	ca := regexp.MustCompile(`--push-ca-file (\S+)`).FindStringSubmatch(out)
	if ca == nil {
		t.Fatalf("no --push-ca-file in:\n%s", out)
	}
	tc, err := pushTLSConfig(ca[1])
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for _, mode := range []string{"apns", "fcm", "webpush"} {
		m := regexp.MustCompile(`(?m)^  ` + mode + ` +(https://\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s line in:\n%s", mode, out)
		}
		resp, err := cl.Get(m[1] + "/stats")
		if err != nil {
			t.Fatalf("%s stats: %v", mode, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(string(body), `"accepted":0`) {
			t.Errorf("%s stats: %s %s %s", mode, resp.Proto, resp.Status, body)
		}
	}
}

// TestDevPostgres: `herald dev --postgres` prints a PostgreSQL URL whose
// sample table is a postgres audience ready for range reads, and removes
// the cluster when it stops.
func TestDevPostgres(t *testing.T) {
	pgtest.New(t) // skips without PostgreSQL installed
	var stdout, stderr syncBuffer
	a := &cli{commands: commands(), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		exited <- a.run(ctx, []string{"dev", "--etcd-listen", "127.0.0.1:0", "--kafka-listen=127.0.0.1:0", "--sink-listen", "127.0.0.1:0",
			"--postgres", "--postgres-listen", "127.0.0.1:0"})
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stdout.String(), "Ready.") {
		select {
		case code := <-exited:
			t.Fatalf("dev exited %d before ready:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev not ready:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := regexp.MustCompile(`(?m)^  postgres +(\S+)$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no postgres line in:\n%s", stdout.String())
	}
	pool, err := postgres.Dial(ctx, m[1])
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := postgres.Open(ctx, pool, audience.Spec{Source: audience.SourcePostgres, Connection: "audience-db",
		Table: devPostgresTable, LocaleColumn: "locale", ReachableColumn: "reachable", AttributeColumns: []string{"name"}})
	if err != nil {
		t.Fatal(err)
	}
	pr := tbl.Range(ctx, sharding.SlotRange(0, 1), nil, 0)
	for pr.Next() {
		if inv := pr.Record().Invalid; inv != "" {
			t.Fatalf("%s: %s", pr.Record().ID, inv)
		}
	}
	if pr.Err() != nil || pr.Rows() != devPostgresRows {
		t.Fatalf("read %d rows (%v), want %d", pr.Rows(), pr.Err(), devPostgresRows)
	}
	pool.Close()
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("dev exited %d after interrupt:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop after interrupt")
	}
	u, _ := url.Parse(m[1])
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Errorf("postgres %s still open after dev stopped", u.Host)
	}
}
