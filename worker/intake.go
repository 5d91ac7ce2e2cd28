package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/sleep"
	"github.com/herald-dev/herald/spec"
)

// DefaultGroupID is the Kafka consumer group of a fleet's intake when none
// is configured: every worker of a fleet must share one.
const DefaultGroupID = "herald"

// registry is what trigger intake needs of the broadcast registry.
type registry interface {
	Register(ctx context.Context, b coordinator.Broadcast) (bool, error)
	Reject(ctx context.Context, id string, spec []byte, reason string) error
}

// intake turns trigger messages into registered broadcasts. The fleet's
// workers form one consumer group, so each trigger is handled by one of
// them; an offset is committed only after the trigger is registered or
// rejected in etcd, so a worker dying in between means a redelivery, which
// registration makes harmless.
type intake struct {
	cfg     Config
	reg     registry
	log     *slog.Logger
	metrics *metrics
	admit   *admission
}

func newIntake(cfg Config, reg registry, log *slog.Logger, m *metrics, a *admission) *intake {
	return &intake{cfg: cfg, reg: reg, log: log, metrics: m, admit: a}
}

func (in *intake) run(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     in.cfg.Brokers,
		GroupID:     in.cfg.GroupID,
		Topic:       in.cfg.Topic,
		Dialer:      in.cfg.KafkaDialer,
		MinBytes:    1,
		MaxBytes:    in.cfg.FetchMaxBytes,
		MaxWait:     500 * time.Millisecond,
		StartOffset: kafka.FirstOffset,
		// A worker that dies holds its trigger partitions until the group
		// notices: with kafka-go's defaults (30 s session, 30 s rebalance,
		// 5 s join backoff) a trigger could wait over a minute and a half
		// after a crash. These keep that to about ten seconds; heartbeats
		// every second cost the broker nothing worth counting.
		HeartbeatInterval: time.Second,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  6 * time.Second,
		JoinGroupBackoff:  time.Second,
		// Lag reporting is a goroutine polling the broker; Herald does not
		// use it.
		ReadLagInterval: -1,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			in.log.Debug("kafka reader: " + fmt.Sprintf(msg, args...))
		}),
	})
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			in.log.Warn("fetch trigger", "err", err)
			if !sleep.For(ctx, time.Second) {
				return nil
			}
			continue
		}
		if !in.handle(ctx, m) {
			return nil // ctx ended before etcd took it: the trigger will be redelivered
		}
		if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			in.log.Warn("commit trigger offset", "partition", m.Partition, "offset", m.Offset, "err", err)
		}
	}
}

// handle validates one trigger and records it in etcd, retrying etcd until
// it answers: a trigger is never dropped because etcd was briefly away. It
// reports false only when ctx ended first.
func (in *intake) handle(ctx context.Context, m kafka.Message) bool {
	log := in.log.With("partition", m.Partition, "offset", m.Offset, "key", string(m.Key))
	s, _, perr := spec.Parse(m.Value, in.cfg.SpecLimits)
	if perr == nil {
		perr = in.check(ctx, s)
	}
	var se *spec.Error
	if errors.As(perr, &se) && se.Limit != "" {
		in.admit.limit(se.Limit)
	}
	for attempt := 0; ; attempt++ {
		result, err := in.record(ctx, s, perr, m.Value)
		if err == nil {
			in.metrics.triggers.WithLabelValues(result).Inc()
			switch result {
			case "rejected", "unreadable":
				log.Warn("trigger refused", "result", result, "reason", perr)
			case "conflict":
				log.Warn("trigger refused: another spec is registered under this id", "broadcast", s.ID, "reason", perr)
			default:
				log.Info("trigger taken", "result", result, "broadcast", s.ID)
			}
			return true
		}
		log.Warn("record trigger in etcd", "attempt", attempt+1, "err", err)
		if !sleep.For(ctx, backoff(attempt)) {
			return false
		}
	}
}

// check refuses a valid spec this fleet must not run: an endpoint outside
// the allowlist, an audience outside the audience directory, secrets the
// workers do not have, or a database table or prepared audience that
// cannot be read as the spec says. Refused here, the broadcast is
// rejected before anything is sent.
func (in *intake) check(ctx context.Context, s spec.Spec) error {
	// A webpush endpoint has no URL: each subscription's push service is
	// checked before every attempt.
	if err := in.cfg.Allow.Check(s.Endpoint.URL); err != nil && s.Endpoint.Kind != spec.KindWebPush {
		in.admit.notAllowed.WithLabelValues("intake").Inc()
		return &spec.Error{ID: s.ID, Field: "endpoint.url", Msg: "not allowed: " + err.Error()}
	}
	if in.cfg.AudienceDir != "" && localAudience(s.Audience) && !underDir(in.cfg.AudienceDir, s.Audience.Path) {
		return &spec.Error{ID: s.ID, Field: "audience.path", Msg: "not allowed: outside the workers' audience directory"}
	}
	if e := checkRangeAudience(ctx, s.Audience, in.cfg.Secrets, in.cfg.AudienceLimits); e != nil {
		e.ID = s.ID
		return e
	}
	if _, e := loadCredentials(in.cfg.Secrets, s.Endpoint); e != nil {
		e.ID = s.ID
		return e
	}
	if _, e := pushSecret(in.cfg.Secrets, in.cfg.Allow, s.Endpoint); e != nil {
		e.ID = s.ID
		return e
	}
	return nil
}

// underDir reports whether path, made absolute against the working
// directory and cleaned, lies inside dir. It compares names only: links
// inside dir are the operator's and are trusted.
func underDir(dir, path string) bool {
	if path == "" {
		return false
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "."
}

// record writes the verdict on one trigger to etcd and names it. Only a
// failure to reach etcd comes back as an error, for handle to retry: every
// verdict on the spec itself (registered, duplicate, rejected, conflict,
// unreadable) is final, so the offset is committed and a poison trigger
// never holds up the triggers behind it on its partition.
func (in *intake) record(ctx context.Context, s spec.Spec, perr error, raw []byte) (string, error) {
	if perr != nil {
		var se *spec.Error
		if !errors.As(perr, &se) || se.ID == "" {
			return "unreadable", nil
		}
		if len(raw) > in.cfg.SpecLimits.ByteLimit() {
			raw = nil // do not store what the limit exists to keep out
		}
		// An invalid spec under an id another spec holds is a conflict:
		// the registered broadcast stays as it is, and this one is only
		// logged and counted.
		return verdict("rejected", in.reg.Reject(ctx, se.ID, raw, perr.Error()))
	}
	b := coordinator.Broadcast{ID: s.ID, Spec: s.Canonical()}
	if s.NotBefore != nil {
		b.NotBefore = *s.NotBefore
	}
	if s.ExpiresAt != nil {
		b.ExpiresAt = *s.ExpiresAt
	}
	created, err := in.reg.Register(ctx, b)
	if err == nil && !created {
		return "duplicate", nil
	}
	return verdict("registered", err)
}

// verdict names what the registry made of a trigger: ok when it took it,
// conflict or unreadable when it refused the id, and an error only for a
// failure to reach etcd, which is worth retrying.
func verdict(ok string, err error) (string, error) {
	switch {
	case err == nil:
		return ok, nil
	case errors.Is(err, coordinator.ErrConflict):
		return "conflict", nil
	case errors.Is(err, coordinator.ErrInvalidID):
		return "unreadable", nil
	default:
		return "", err
	}
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	return min(d, 5*time.Second)
}
