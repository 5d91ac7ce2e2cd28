package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Reporter publishes the summary of a finished broadcast, so that its
// history outlives etcd's retention. The worker's implementation produces
// it to Kafka (herald.reports, keyed by broadcast id). Report must return
// only once the summary is stored where it is going: the broadcast's live
// keys are deleted after it returns nil. A summary may be reported more
// than once (members racing on the same archive, an archive write that
// failed after the report): consumers must treat reports as keyed by id.
type Reporter interface {
	Report(ctx context.Context, s Summary) error
}

// Summary is what is kept of a broadcast once it is over: the record at
// P/archive/<id>, kept for Config.Retention after FinishedAt, and what a
// Reporter is given. Registry.Status presents it as a Status with the same
// counters, units, worker shares and times the live broadcast had.
type Summary struct {
	ID     string `json:"id"`
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	// CreatedAt is when the broadcast was registered, StartedAt when it
	// started (zero if it never did), FinishedAt when it reached its final
	// state, and ArchivedAt when this summary replaced its live keys.
	CreatedAt      time.Time              `json:"created_at"`
	StartedAt      time.Time              `json:"started_at,omitzero"`
	FinishedAt     time.Time              `json:"finished_at"`
	ArchivedAt     time.Time              `json:"archived_at"`
	Counters       Counters               `json:"counters"`
	Units          UnitCounts             `json:"units"`
	Workers        map[string]WorkerShare `json:"workers"`
	InvalidSamples []InvalidSample        `json:"invalid_samples,omitempty"`
	// SpecSHA256 is the hex SHA-256 of the spec bytes as registered. While
	// the summary is kept, registering the id again with a spec of this
	// hash is a harmless duplicate, and with another spec a conflict.
	SpecSHA256 string `json:"spec_sha256"`
}

// Status is the summary as Registry.Status presents it: the status the
// broadcast had when it was archived, with no claims.
func (s Summary) Status() Status {
	st := Status{
		ID: s.ID, State: s.State, Reason: s.Reason, CreatedAt: s.CreatedAt, UpdatedAt: s.FinishedAt,
		Counters: s.Counters, Units: s.Units, Workers: maps.Clone(s.Workers),
		InvalidSamples: s.InvalidSamples,
	}
	if st.Workers == nil {
		st.Workers = map[string]WorkerShare{}
	}
	return st
}

// specHash is the hex SHA-256 of a spec, as a Summary keeps it.
func specHash(spec []byte) string {
	sum := sha256.Sum256(spec)
	return hex.EncodeToString(sum[:])
}

// decodeSummary decodes an archive record.
func decodeSummary(kv *mvccpb.KeyValue) (Summary, error) {
	var s Summary
	if err := json.Unmarshal(kv.Value, &s); err != nil {
		return Summary{}, fmt.Errorf("decode archive record %s: %w", kv.Key, err)
	}
	return s, nil
}

// errUndecodable marks a broadcast whose records cannot be read back: it
// cannot be summarised, and is left live for an operator to look at.
var errUndecodable = errors.New("coordinator: undecodable record")

// finished is a broadcast that is over, read in one snapshot for archiving.
type finished struct {
	sum      Summary
	stateRev int64 // mod revision of the state key
	claims   int   // claims still held on its units
	rev      int64 // the revision of the snapshot
}

// readFinished reads broadcast id's state, units, claims and spec in one
// snapshot and sums them into the summary it would be archived as. It
// returns ErrNotFound when the broadcast has no state key (archived
// already, or never registered) and ErrBadTransition when it is not over.
func (r *Registry) readFinished(ctx context.Context, id string) (finished, error) {
	resp, err := r.kv.Txn(ctx).Then(
		clientv3.OpGet(r.keys.state(id)),
		clientv3.OpGet(r.keys.units(id), clientv3.WithPrefix()),
		clientv3.OpGet(r.keys.claims(id), clientv3.WithPrefix()),
		clientv3.OpGet(r.keys.spec(id)),
	).Commit()
	if err != nil {
		return finished{}, fmt.Errorf("coordinator: read %s: %w", id, err)
	}
	stateKvs := resp.Responses[0].GetResponseRange().Kvs
	if len(stateKvs) == 0 {
		return finished{}, fmt.Errorf("coordinator: read %s: %w", id, ErrNotFound)
	}
	var rec stateRecord
	if err := json.Unmarshal(stateKvs[0].Value, &rec); err != nil {
		return finished{}, fmt.Errorf("coordinator: read %s: decode state: %w: %w", id, errUndecodable, err)
	}
	if !rec.State.Terminal() {
		return finished{}, fmt.Errorf("coordinator: read %s: %s: %w", id, rec.State, ErrBadTransition)
	}
	var kvs []*mvccpb.KeyValue
	for _, op := range resp.Responses[:3] {
		kvs = append(kvs, op.GetResponseRange().Kvs...)
	}
	sts, err := summarize(r.keys, kvs)
	if err != nil {
		return finished{}, fmt.Errorf("coordinator: read %s: %w: %w", id, errUndecodable, err)
	}
	st := sts[0] // the state key is there, so summarize has its status
	workers := make(map[string]WorkerShare, len(st.Workers))
	for m, w := range st.Workers {
		w.Units = 0 // claims are gone once archived
		workers[m] = w
	}
	var spec []byte
	if specKvs := resp.Responses[3].GetResponseRange().Kvs; len(specKvs) == 1 {
		spec = specKvs[0].Value
	}
	return finished{
		sum: Summary{
			ID: id, State: rec.State, Reason: rec.Reason,
			CreatedAt: rec.CreatedAt, StartedAt: rec.StartedAt, FinishedAt: rec.UpdatedAt,
			Counters: st.Counters, Units: st.Units, Workers: workers,
			InvalidSamples: st.InvalidSamples, SpecSHA256: specHash(spec),
		},
		stateRev: stateKvs[0].ModRevision,
		claims:   len(resp.Responses[2].GetResponseRange().Kvs),
		rev:      resp.Header.Revision,
	}, nil
}
