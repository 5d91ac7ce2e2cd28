package ledger

import (
	"sync"
	"testing"
)

func TestLedger(t *testing.T) {
	var l Ledger[string, int]
	if _, dead := l.Dead("t1"); dead {
		t.Fatal("a fresh ledger has a dead token")
	}
	l.Kill("t1", 410)
	if r, dead := l.Dead("t1"); !dead || r != 410 {
		t.Fatalf("dead %v reply %d", dead, r)
	}
	l.Accept("a", "k1")
	l.Accept("b", "k1") // a re-send
	l.KeepAccepted(false)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Accept("c", "k2")
			l.Refuse("Unregistered")
		}()
	}
	wg.Wait()
	accepted, distinct, refused := l.Counts()
	if accepted != 12 || distinct != 2 || refused["Unregistered"] != 10 {
		t.Fatalf("accepted %d distinct %d refused %v", accepted, distinct, refused)
	}
	if got := l.Accepted(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("kept %v, want the two accepted before KeepAccepted(false)", got)
	}
	refused["x"] = 1
	if _, _, again := l.Counts(); again["x"] != 0 {
		t.Fatal("Counts returned the ledger's own map")
	}
}
