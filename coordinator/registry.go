package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Broadcast is what registering a broadcast needs: its id, its spec as
// received (opaque here, compared byte for byte), and its time window.
type Broadcast struct {
	ID   string
	Spec []byte
	// NotBefore is when the broadcast may start; zero means at once.
	NotBefore time.Time
	// ExpiresAt is when sending must stop; zero means never. The
	// coordinator only records it: the worker counts what is left as
	// expired.
	ExpiresAt time.Time
}

// Action is an operator's request to change a broadcast's state.
type Action string

// The actions SetState accepts.
const (
	// Pause stops sending: pending or running to paused. Claims are kept;
	// workers wait while the state is paused.
	Pause Action = "pause"
	// Resume continues a paused broadcast: back to running, or to pending
	// if it had not started yet.
	Resume Action = "resume"
	// Cancel ends a broadcast that is not yet finished; what was not sent
	// is not sent.
	Cancel Action = "cancel"
)

// maxSetStateAttempts bounds SetState's optimistic retries when members
// keep changing the state under it (start, completion).
const maxSetStateAttempts = 10

// Registry stores broadcasts and their states in etcd. It holds no state of
// its own, so any number of Registries (in workers, in the CLI) may share
// one etcd.
type Registry struct {
	kv   clientv3.KV
	keys keys
}

// NewRegistry returns a Registry over the keys under prefix; an empty
// prefix means DefaultPrefix.
func NewRegistry(cli *clientv3.Client, prefix string) *Registry {
	return newRegistry(cli.KV, Config{Prefix: prefix}.withDefaults().Prefix)
}

func newRegistry(kv clientv3.KV, prefix string) *Registry {
	return &Registry{kv: kv, keys: keys{prefix: prefix}}
}

// Register records b in state pending, once. It reports created=false when
// b.ID already exists with the same spec bytes (a redelivered trigger is
// harmless), and ErrConflict when it exists with a different spec; the
// existing broadcast is then left untouched. A finished broadcast counts
// as existing while its summary is kept (Config.Retention); after that
// its id may be used again.
func (r *Registry) Register(ctx context.Context, b Broadcast) (created bool, err error) {
	if err := CheckID(b.ID); err != nil {
		return false, fmt.Errorf("coordinator: register %q: %w", b.ID, err)
	}
	now := time.Now().UTC()
	return r.create(ctx, "register", b.ID, b.Spec, stateRecord{
		State: StatePending, CreatedAt: now, UpdatedAt: now,
		NotBefore: b.NotBefore.UTC(), ExpiresAt: b.ExpiresAt.UTC(),
	})
}

// Reject records a broadcast that failed validation, in state rejected with
// reason, so operators can see why it never ran. Like Register it is a
// no-op when the same id and spec are already recorded, and ErrConflict
// when the id is taken by another spec.
func (r *Registry) Reject(ctx context.Context, id string, spec []byte, reason string) error {
	if err := CheckID(id); err != nil {
		return fmt.Errorf("coordinator: reject %q: %w", id, err)
	}
	now := time.Now().UTC()
	_, err := r.create(ctx, "reject", id, spec, stateRecord{
		State: StateRejected, Reason: reason, CreatedAt: now, UpdatedAt: now,
	})
	return err
}

// create writes spec and state if neither a spec nor a summary exists for
// id, in one txn that proves both absences; otherwise it compares spec with
// the stored spec, or with the hash the summary keeps of it.
func (r *Registry) create(ctx context.Context, op, id string, spec []byte, st stateRecord) (bool, error) {
	val, err := encode(st)
	if err != nil {
		return false, err
	}
	specKey, archiveKey := r.keys.spec(id), r.keys.archive(id)
	resp, err := r.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(specKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(archiveKey), "=", 0)).
		Then(clientv3.OpPut(specKey, string(spec)), clientv3.OpPut(r.keys.state(id), val)).
		Else(clientv3.OpGet(specKey), clientv3.OpGet(archiveKey)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("coordinator: %s %s: %w", op, id, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		if bytes.Equal(kvs[0].Value, spec) {
			return false, nil
		}
		return false, fmt.Errorf("coordinator: %s %s: %w", op, id, ErrConflict)
	}
	// Finished and archived: the summary keeps the spec's hash, so a
	// redelivered trigger is still recognised until the retention ends.
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return false, fmt.Errorf("coordinator: %s %s: neither free nor found in one snapshot", op, id)
	}
	sum, err := decodeSummary(kvs[0])
	if err != nil {
		return false, fmt.Errorf("coordinator: %s %s: %w", op, id, err)
	}
	if sum.SpecSHA256 == specHash(spec) {
		return false, nil
	}
	return false, fmt.Errorf("coordinator: %s %s (archived): %w", op, id, ErrConflict)
}

// Spec returns the spec bytes id was registered with. An archived
// broadcast's spec is not kept (its summary keeps only a hash): it is
// ErrNotFound.
func (r *Registry) Spec(ctx context.Context, id string) ([]byte, error) {
	resp, err := r.kv.Get(ctx, r.keys.spec(id))
	if err != nil {
		return nil, fmt.Errorf("coordinator: spec %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("coordinator: spec %s: %w", id, ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

// SetState applies a to broadcast id: Pause (pending or running to
// paused), Resume (paused to running, or to pending if it never started),
// Cancel (any non-terminal state to cancelled). Anything else is
// ErrBadTransition. The write is a txn on the state's mod revision, retried
// when a member changed the state in between.
func (r *Registry) SetState(ctx context.Context, id string, a Action) error {
	stateKey := r.keys.state(id)
	for range maxSetStateAttempts {
		// One txn reads the state and whether units exist, so both describe
		// the same revision: units are only ever created together with the
		// pending-to-running write.
		resp, err := r.kv.Txn(ctx).Then(
			clientv3.OpGet(stateKey),
			clientv3.OpGet(r.keys.units(id), clientv3.WithPrefix(), clientv3.WithCountOnly()),
			clientv3.OpGet(r.keys.archive(id)),
		).Commit()
		if err != nil {
			return fmt.Errorf("coordinator: %s %s: %w", a, id, err)
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			// An archived broadcast is over: no action applies to it.
			if arch := resp.Responses[2].GetResponseRange().Kvs; len(arch) == 1 {
				sum, err := decodeSummary(arch[0])
				if err != nil {
					return fmt.Errorf("coordinator: %s %s: %w", a, id, err)
				}
				return fmt.Errorf("coordinator: %s %s from %s (archived): %w", a, id, sum.State, ErrBadTransition)
			}
			return fmt.Errorf("coordinator: %s %s: %w", a, id, ErrNotFound)
		}
		var st stateRecord
		if err := json.Unmarshal(kvs[0].Value, &st); err != nil {
			return fmt.Errorf("coordinator: %s %s: decode state: %w", a, id, err)
		}
		started := resp.Responses[1].GetResponseRange().Count > 0
		next, ok := transition(st.State, a, started)
		if !ok {
			return fmt.Errorf("coordinator: %s %s from %s: %w", a, id, st.State, ErrBadTransition)
		}
		st.State, st.UpdatedAt = next, time.Now().UTC()
		val, err := encode(st)
		if err != nil {
			return err
		}
		put, err := r.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(stateKey), "=", kvs[0].ModRevision)).
			Then(clientv3.OpPut(stateKey, val)).
			Commit()
		if err != nil {
			return fmt.Errorf("coordinator: %s %s: %w", a, id, err)
		}
		if put.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("coordinator: %s %s: state kept changing; gave up after %d attempts", a, id, maxSetStateAttempts)
}

// transition returns the state a moves from to, and whether the move is
// allowed. started says whether the broadcast has units.
func transition(from State, a Action, started bool) (State, bool) {
	switch a {
	case Pause:
		if from == StatePending || from == StateRunning {
			return StatePaused, true
		}
	case Resume:
		if from == StatePaused {
			if started {
				return StateRunning, true
			}
			return StatePending, true
		}
	case Cancel:
		if from == StatePending || from == StateRunning || from == StatePaused {
			return StateCancelled, true
		}
	}
	return from, false
}
