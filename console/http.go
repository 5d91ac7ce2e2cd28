package console

import (
	"embed"
	"io/fs"
	"net/http"
	"time"
)

//go:embed assets
var assets embed.FS

// routes is the console's URL space:
//
//	GET  /                         the list of broadcasts
//	GET  /b/{id}                   one broadcast
//	GET  /assets/...               script, style
//	GET  /events[?id=ID]           Server-Sent Events: snapshot, then updates
//	GET  /api/session              what this browser may do
//	GET  /api/broadcasts[/{id}]    the views as JSON
//	POST /api/login, /api/logout   the session cookie
//	POST /api/broadcasts/{id}/{pause|resume|cancel}
//	POST /api/trigger              a spec, validated, then produced
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /{$}", page(static, "index.html"))
	mux.Handle("GET /b/{id}", page(static, "broadcast.html"))
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /events", c.events)
	mux.HandleFunc("GET /api/session", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"token_required": c.session != nil,
			"authorized": c.authorized(r), "trigger": c.produce != nil})
	})
	mux.HandleFunc("GET /api/broadcasts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.out.list())
	})
	mux.HandleFunc("GET /api/broadcasts/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.out.get(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no broadcast " + r.PathValue("id")})
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.Handle("POST /api/login", c.act("login", maxLoginBody, c.login))
	mux.Handle("POST /api/logout", c.act("logout", maxLoginBody, c.logout))
	mux.Handle("POST /api/broadcasts/{id}/{action}", c.act("state", maxActionBody, c.setState))
	mux.Handle("POST /api/trigger", c.act("trigger", int64(c.cfg.Limits.ByteLimit()), c.trigger))
	return c.guard(mux)
}

// guard checks the Host and sets the headers every answer carries: no
// framing, no script or style but the console's own, no sniffing.
func (c *Console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.allowedHost(r.Host) {
			http.Error(w, "console: unknown host "+r.Host+" (see --allow-host)", http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// page serves one embedded HTML page.
func page(static fs.FS, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	})
}

// eventWriteTimeout bounds one write to a browser; a browser that takes
// longer is dropped.
const eventWriteTimeout = 10 * time.Second

// events streams the views to one browser: a snapshot, then every update,
// as Server-Sent Events. The stream ends when the browser goes, falls a
// buffer behind, or the console stops; the browser's EventSource then
// reconnects and starts again from a snapshot.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	cl, first := c.out.subscribe(r.URL.Query().Get("id"))
	if cl == nil {
		http.Error(w, "console: too many open pages, or stopping", http.StatusServiceUnavailable)
		return
	}
	defer c.out.unsubscribe(cl)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(ev []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if _, err := w.Write(ev); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The retry field sets how soon a dropped page reconnects.
	if !send(append([]byte("retry: 2000\n"), first...)) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-cl.events:
			if !ok || !send(ev) {
				return
			}
		}
	}
}
