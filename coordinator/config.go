package coordinator

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/herald-dev/herald/sharding"
)

// Defaults for the zero values of Config.
const (
	DefaultPrefix            = "/herald"
	DefaultLeaseTTL          = 5 * time.Second
	DefaultReconcileInterval = 500 * time.Millisecond
	DefaultLeaveTimeout      = 10 * time.Second
	DefaultArchiveAfter      = 10 * time.Second
	DefaultRetention         = 7 * 24 * time.Hour
	// MinLeaseTTL is the shortest lease a member may ask for. etcd raises
	// shorter TTLs to about 1.5 election timeouts (1.5 s with default
	// settings) and counts in whole seconds, so anything below 2 s would not
	// mean what it says.
	MinLeaseTTL = 2 * time.Second
)

// Config configures a Coordinator. The zero value of every field means the
// documented default, so Config{} is a working configuration.
type Config struct {
	// Prefix is the etcd key prefix under which all of Herald's keys live.
	// Empty means "/herald". A trailing slash is ignored.
	Prefix string
	// MemberID names this member in the fleet; it must be unique among live
	// members and fit [A-Za-z0-9._-]{1,128}. Empty means the host name plus
	// a random suffix, which is unique but changes on every start.
	MemberID string
	// Address is where this member can be reached (its metrics endpoint,
	// say); it is recorded for operators and not used by the coordinator.
	Address string
	// Capacity is this member's weight on the ring relative to others: a
	// member of capacity 2 gets about twice the share of one of capacity 1.
	// 0 means 1; otherwise it must lie in [sharding.MinWeight,
	// sharding.MaxWeight].
	Capacity float64
	// LeaseTTL is the member's etcd lease TTL: how long after its last
	// keepalive a silent member is considered dead. 0 means 5 s; it is
	// rounded up to whole seconds and must be at least MinLeaseTTL.
	LeaseTTL time.Duration
	// SafetyMargin is how long before the lease could expire on the server
	// this member stops work: the local deadline is the last keepalive
	// acknowledgement plus LeaseTTL minus SafetyMargin. It covers the
	// response's transit time and clock rate differences. 0 means
	// min(1 s, LeaseTTL/5); it must be below LeaseTTL/2.
	SafetyMargin time.Duration
	// Version is this member's software version, recorded for operators.
	Version string
	// ReconcileInterval is how often the member re-examines its view even
	// when no etcd event arrived. Events trigger work at once; the ticker is
	// the safety net for start times (not_before) and missed wake-ups.
	// 0 means 500 ms.
	ReconcileInterval time.Duration
	// LeaveTimeout bounds a graceful leave: how long Run, once its context
	// ends, waits for the worker to hand back its claims before revoking
	// the lease anyway. 0 means 10 s.
	LeaveTimeout time.Duration
	// ArchiveAfter is how long a finished broadcast (done, expired,
	// cancelled or rejected) keeps its live keys, so that watchers see its
	// final state, before it is reduced to its summary under
	// P/archive/<id> and everything under P/broadcasts/<id>/ is deleted.
	// Measured from when this member saw it finish. 0 means 10 s.
	ArchiveAfter time.Duration
	// Retention is how long a summary is kept after its broadcast
	// finished; then it is deleted and the id may be used again. 0 means
	// 7 days.
	Retention time.Duration
	// Reporter, when set, is given the summary of every finished broadcast
	// before it is archived (at least once: a summary may be reported
	// again if the archive write that follows fails). A broadcast whose
	// report fails is archived later, once a report succeeds. Nil means no
	// reports.
	Reporter Reporter
}

// withDefaults returns c with every zero field replaced by its default. It
// leaves MemberID empty; New picks a generated one.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.Capacity == 0 {
		c.Capacity = 1
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	// etcd counts TTLs in whole seconds; rounding up keeps the lease at
	// least as long as asked, and the deadline arithmetic exact.
	c.LeaseTTL = (c.LeaseTTL + time.Second - 1).Truncate(time.Second)
	if c.SafetyMargin == 0 {
		c.SafetyMargin = min(time.Second, c.LeaseTTL/5)
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.ArchiveAfter == 0 {
		c.ArchiveAfter = DefaultArchiveAfter
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	return c
}

// Validate reports whether c, with defaults applied, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	idErr := CheckID(c.MemberID)
	switch {
	case c.Prefix == "":
		return fmt.Errorf("%w: prefix %q is only slashes", ErrInvalidConfig, c.Prefix)
	case c.MemberID != "" && idErr != nil:
		return fmt.Errorf("%w: member id %q: %w", ErrInvalidConfig, c.MemberID, idErr)
	case c.Capacity < sharding.MinWeight || c.Capacity > sharding.MaxWeight || c.Capacity != c.Capacity:
		return fmt.Errorf("%w: capacity %v not in [%v, %v]", ErrInvalidConfig, c.Capacity, sharding.MinWeight, sharding.MaxWeight)
	case c.LeaseTTL < MinLeaseTTL:
		return fmt.Errorf("%w: lease ttl %v below %v", ErrInvalidConfig, c.LeaseTTL, MinLeaseTTL)
	case c.SafetyMargin <= 0 || c.SafetyMargin >= c.LeaseTTL/2:
		return fmt.Errorf("%w: safety margin %v not in (0, ttl/2)", ErrInvalidConfig, c.SafetyMargin)
	case c.ReconcileInterval < 0:
		return fmt.Errorf("%w: negative reconcile interval", ErrInvalidConfig)
	case c.LeaveTimeout < 0:
		return fmt.Errorf("%w: negative leave timeout", ErrInvalidConfig)
	case c.ArchiveAfter < 0:
		return fmt.Errorf("%w: negative archive delay", ErrInvalidConfig)
	case c.Retention < 0:
		return fmt.Errorf("%w: negative retention", ErrInvalidConfig)
	}
	return nil
}

// generatedMemberID is the host name, reduced to the characters an id may
// hold, plus a random suffix so two processes on one host differ.
func generatedMemberID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 128 && idChar(byte(r)) {
			return r
		}
		return '-'
	}, host)
	if len(host) > 100 {
		host = host[:100]
	}
	if host == "" {
		host = "member"
	}
	return fmt.Sprintf("%s-%06x", host, rand.Uint32()&0xffffff)
}
