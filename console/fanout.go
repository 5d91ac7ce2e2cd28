package console

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"sync"
)

// fanout holds the views last published and the browsers' event streams.
// The Run loop publishes; each stream's handler subscribes, reads its
// channel and unsubscribes. One mutex covers both, so a new stream's
// snapshot and the updates after it come in order.
type fanout struct {
	buffer, maxClients int

	mu      sync.Mutex
	views   map[string]published
	clients map[*client]struct{}
	closed  bool
}

// published is one broadcast's latest view: with its chart, and encoded
// without it.
type published struct {
	view View
	json []byte
}

// client is one open event stream. Its channel is closed when it falls
// ClientBuffer events behind, or when the console stops.
type client struct {
	id     string // "" for every broadcast
	events chan []byte
}

func newFanout(buffer, maxClients int) *fanout {
	return &fanout{buffer: buffer, maxClients: maxClients, views: map[string]published{}, clients: map[*client]struct{}{}}
}

// subscribe opens a stream for broadcast id ("" for all) and returns it
// with its first event, a snapshot; nil when full or stopped.
func (f *fanout) subscribe(id string) (*client, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.clients) >= f.maxClients {
		return nil, nil
	}
	c := &client{id: id, events: make(chan []byte, f.buffer)}
	f.clients[c] = struct{}{}
	return c, f.snapshotLocked(id)
}

func (f *fanout) unsubscribe(c *client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.clients[c]; ok {
		delete(f.clients, c)
		close(c.events)
	}
}

// snapshotLocked is the event that starts a stream: every view, or the
// one asked for with its chart.
func (f *fanout) snapshotLocked(id string) []byte {
	var b bytes.Buffer
	b.WriteString("event: snapshot\ndata: [")
	if id != "" {
		if p, ok := f.views[id]; ok {
			js, _ := json.Marshal(p.view)
			b.Write(js)
		}
	} else {
		ids := make([]string, 0, len(f.views))
		for k := range f.views {
			ids = append(ids, k)
		}
		slices.SortFunc(ids, cmp.Compare)
		for i, k := range ids {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(f.views[k].json)
		}
	}
	b.WriteString("]\n\n")
	return b.Bytes()
}

// publish records v and sends it without its chart (its newest point is
// in it), encoded once, to every stream that wants it. A stream whose buffer is full is dropped, not waited for.
func (f *fanout) publish(v View) {
	noChart := v
	noChart.History = nil
	small, err := json.Marshal(noChart)
	if err != nil {
		return // a View always encodes
	}
	ev := append(append([]byte("event: update\ndata: "), small...), "\n\n"...)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views[v.ID] = published{view: v, json: small}
	f.sendLocked(v.ID, ev)
}

// remove forgets broadcast id and tells the streams.
func (f *fanout) remove(id string) {
	js, _ := json.Marshal(map[string]string{"id": id})
	ev := append(append([]byte("event: remove\ndata: "), js...), "\n\n"...)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.views, id)
	f.sendLocked(id, ev)
}

// ping keeps idle streams open through proxies.
func (f *fanout) ping() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sendLocked("", []byte(": ping\n\n"))
}

// sendLocked queues ev for the streams of broadcast id (every stream when
// id is "").
func (f *fanout) sendLocked(id string, ev []byte) {
	for c := range f.clients {
		if id != "" && c.id != "" && c.id != id {
			continue
		}
		select {
		case c.events <- ev:
		default:
			delete(f.clients, c)
			close(c.events)
		}
	}
}

// get returns broadcast id's view with its chart.
func (f *fanout) get(id string) (View, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.views[id]
	return p.view, ok
}

// list returns every view without charts, sorted by id.
func (f *fanout) list() []View {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]View, 0, len(f.views))
	for _, p := range f.views {
		v := p.view
		v.History = nil
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b View) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// clientCount is how many streams are open.
func (f *fanout) clientCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.clients)
}

// close ends every stream and refuses new ones.
func (f *fanout) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for c := range f.clients {
		delete(f.clients, c)
		close(c.events)
	}
}
