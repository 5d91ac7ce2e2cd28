package worker

import (
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/worker/delivery"
)

// Names of the limits the worker enforces itself, as labels of
// herald_input_limit_hits_total. The limits a spec can pass are named in
// package spec (spec.LimitTriggerBytes, ...) and the limits of an
// endpoint's answer in package delivery; the metric counts all of them.
// docs/SECURITY.md lists each with where it is enforced.
const (
	LimitRenderedField = "rendered_field_bytes" // one rendered field of one message
	LimitTemplateWork  = "template_work"        // a template's work budget for one message
	// LimitRequestHeaders is counted by whoever serves Handler, through
	// LimitHit: net/http refuses oversized headers before any handler.
	LimitRequestHeaders = "request_header_bytes"
)

// admission counts what the worker refused at its boundaries: inputs past
// a limit, and endpoints outside the allowlist. Like metrics, it counts
// with a nil registerer and exports nothing then.
type admission struct {
	limitHits  *prometheus.CounterVec
	notAllowed *prometheus.CounterVec
}

func newAdmission(reg prometheus.Registerer) *admission {
	a := &admission{
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_input_limit_hits_total",
			Help: "Inputs refused or cut short for passing a limit, by limit (trigger_bytes, template_bytes, template_locales, template_fields, rendered_field_bytes, template_work, request_header_bytes, response_body_bytes, response_header_bytes).",
		}, []string{"limit"}),
		notAllowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_endpoint_not_allowed_total",
			Help: "Endpoints refused by the allowlist, by where: intake (trigger rejected) or sender (a registered spec that intake did not check; should stay 0).",
		}, []string{"where"}),
	}
	// Every series exists from the start, so a rate() or an alert on it
	// sees 0 rather than nothing.
	for _, l := range []string{spec.LimitTriggerBytes, spec.LimitTemplateBytes, spec.LimitLocales, spec.LimitFields,
		LimitRenderedField, LimitTemplateWork, LimitRequestHeaders, delivery.LimitResponseBody, delivery.LimitResponseHeaders} {
		a.limitHits.WithLabelValues(l)
	}
	a.notAllowed.WithLabelValues("intake")
	a.notAllowed.WithLabelValues("sender")
	if reg != nil {
		reg.MustRegister(a.limitHits, a.notAllowed)
	}
	return a
}

func (a *admission) limit(name string) { a.limitHits.WithLabelValues(name).Inc() }

// LimitHit counts an input refused for passing the limit named, for
// limits enforced outside the worker's own code, such as the HTTP server's
// header limit (LimitRequestHeaders).
func (w *Worker) LimitHit(limit string) { w.admit.limit(limit) }

// senderAllow is the Sender's check before every attempt. Intake has
// already refused what the list does not allow, so a refusal here means a
// spec reached etcd without passing intake (written there directly, or by
// a worker with another list): counted, so it can raise an alarm. The
// error's text, the list's reason, is the dead letter's reason.
func (w *Worker) senderAllow(u *url.URL) error {
	err := w.cfg.Allow.CheckURL(u)
	if err != nil {
		w.admit.notAllowed.WithLabelValues("sender").Inc()
	}
	return err
}
