package console

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/spec"
)

// Bounds on what an action may send.
const (
	maxLoginBody  = 4 << 10
	maxActionBody = 1 << 10
)

// act wraps an action: the cross-site check, then the token, then a body
// of at most limit bytes. Every refusal and every outcome is logged.
func (c *Console) act(name string, limit int64, h func(w http.ResponseWriter, r *http.Request) (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := c.log.With("action", name, "remote", r.RemoteAddr)
		if id := r.PathValue("id"); id != "" {
			log = log.With("broadcast", id)
		}
		refuse := func(code int, err error) {
			log.Warn("console: action refused", "status", code, "reason", err.Error())
			writeJSON(w, code, map[string]string{"error": err.Error()})
		}
		if err := c.sameOrigin(r); err != nil {
			refuse(http.StatusForbidden, err)
			return
		}
		if name != "login" && name != "logout" {
			if c.session == nil {
				refuse(http.StatusForbidden, errReadOnly)
				return
			}
			if !c.authorized(r) {
				if presented(r) {
					c.wrongGuess(r.Context())
				}
				refuse(http.StatusUnauthorized, errNoToken)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		start := time.Now()
		result, err := h(w, r)
		if err != nil {
			log.Warn("console: action failed", "err", err, "elapsed", time.Since(start))
			return
		}
		log.Info("console: action", "result", result, "elapsed", time.Since(start))
	})
}

// login checks the token in {"token":...} and sets the session cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) (string, error) {
	if c.session == nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": errReadOnly.Error()})
		return "", errReadOnly
	}
	var in struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"token\": ...}"})
		return "", err
	}
	r.Header.Set("Authorization", "Bearer "+in.Token)
	if !c.authorized(r) {
		c.wrongGuess(r.Context())
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong access token"})
		return "", errors.New("wrong access token")
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: string(c.session), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.cfg.Secure, MaxAge: 12 * 3600})
	writeJSON(w, http.StatusOK, map[string]bool{"authorized": true})
	return "signed in", nil
}

// logout clears the session cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) (string, error) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.cfg.Secure, MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]bool{"authorized": false})
	return "signed out", nil
}

// setState applies pause, resume or cancel, as the CLI's commands do.
func (c *Console) setState(w http.ResponseWriter, r *http.Request) (string, error) {
	id, a := r.PathValue("id"), coordinator.Action(r.PathValue("action"))
	switch a {
	case coordinator.Pause, coordinator.Resume, coordinator.Cancel:
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no action " + string(a)})
		return "", errors.New("unknown action")
	}
	if err := c.reg.SetState(r.Context(), id, a); err != nil {
		code := http.StatusBadGateway
		switch {
		case errors.Is(err, coordinator.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, coordinator.ErrBadTransition):
			code = http.StatusConflict
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return "", err
	}
	st, err := c.reg.Status(r.Context(), id)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return "", err
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "state": string(st.State)})
	return string(a) + ": now " + string(st.State), nil
}

// triggerError is a refused trigger as the form shows it: at its field.
type triggerError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	Limit string `json:"limit,omitempty"`
}

// trigger validates the spec in the body and produces it, as `herald
// trigger` does.
func (c *Console) trigger(w http.ResponseWriter, r *http.Request) (string, error) {
	if c.produce == nil {
		writeJSON(w, http.StatusNotFound, triggerError{Error: "this console has no Kafka to trigger through"})
		return "", errors.New("no producer")
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, triggerError{Error: "the spec is larger than " +
			"the limit", Limit: spec.LimitTriggerBytes})
		return "", err
	}
	s, err := c.produce.Produce(r.Context(), raw)
	var se *spec.Error
	switch {
	case errors.As(err, &se):
		writeJSON(w, http.StatusUnprocessableEntity, triggerError{Error: se.Msg, Field: se.Field, Limit: se.Limit})
		return "", err
	case err != nil:
		writeJSON(w, http.StatusBadGateway, triggerError{Error: err.Error()})
		return "", err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": s.ID})
	return "triggered " + s.ID, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
