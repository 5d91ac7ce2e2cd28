package delivery

import (
	"context"
	"errors"
	"testing"
)

// batchFunc and tokensFunc are writers made of one function each.
type batchFunc func(ctx context.Context, ds []DeadLetter) error

func (f batchFunc) WriteBatch(ctx context.Context, ds []DeadLetter) error { return f(ctx, ds) }

type tokensFunc func(ctx context.Context, ts []InvalidToken) error

func (f tokensFunc) WriteTokens(ctx context.Context, ts []InvalidToken) error { return f(ctx, ts) }

var (
	_ DeadLetterBatchWriter   = batchFunc(nil)
	_ InvalidTokenBatchWriter = tokensFunc(nil)
	_ InvalidTokenBatchWriter = (*InvalidTokenWriter)(nil)
)

func TestWithInvalidTokens(t *testing.T) {
	gone := func(sub string) DeadLetter {
		return DeadLetter{BroadcastID: "b", SubscriberID: sub, Reason: "apns: 410 Unregistered",
			InvalidToken: &InvalidToken{Broadcast: "b", SubscriberID: sub, Provider: "apns", Token: "tok-" + sub, Reason: "Unregistered"}}
	}
	plain := DeadLetter{BroadcastID: "b", SubscriberID: "p", Reason: "status 400"}
	down := errors.New("broker down")
	tests := []struct {
		name      string
		deadErr   func(n int) error // what the dead-letter write returns
		tokensErr error
		ds        []DeadLetter
		wantToks  []string // tokens written
		wantErrs  []bool   // per letter; nil: want a nil error
		wantWhole bool     // want one error for all
	}{
		{name: "both written", ds: []DeadLetter{gone("a"), plain, gone("c")}, wantToks: []string{"tok-a", "tok-c"}},
		{name: "no tokens", ds: []DeadLetter{plain}},
		{name: "dead letters fail", deadErr: func(int) error { return down }, ds: []DeadLetter{gone("a")}, wantWhole: true},
		{name: "one dead letter fails", deadErr: func(n int) error { e := make(DeadLetterErrors, n); e[0] = down; return e },
			ds: []DeadLetter{gone("a"), gone("b")}, wantToks: []string{"tok-b"}, wantErrs: []bool{true, false}},
		{name: "tokens fail", tokensErr: down, ds: []DeadLetter{gone("a"), plain}, wantToks: []string{"tok-a"}, wantErrs: []bool{true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var toks []string
			w := WithInvalidTokens(batchFunc(func(_ context.Context, ds []DeadLetter) error {
				if tt.deadErr != nil {
					return tt.deadErr(len(ds))
				}
				return nil
			}), tokensFunc(func(_ context.Context, ts []InvalidToken) error {
				for _, tk := range ts {
					toks = append(toks, tk.Token)
				}
				return tt.tokensErr
			}))
			err := w.WriteBatch(context.Background(), tt.ds)
			if len(toks) != len(tt.wantToks) {
				t.Fatalf("tokens written %v, want %v", toks, tt.wantToks)
			}
			for i := range toks {
				if toks[i] != tt.wantToks[i] {
					t.Fatalf("tokens written %v, want %v", toks, tt.wantToks)
				}
			}
			var each DeadLetterErrors
			switch {
			case tt.wantWhole:
				if err == nil || errors.As(err, &each) {
					t.Fatalf("err %v, want one error for all", err)
				}
			case tt.wantErrs == nil:
				if err != nil {
					t.Fatalf("err %v", err)
				}
			default:
				if !errors.As(err, &each) || len(each) != len(tt.wantErrs) {
					t.Fatalf("err %v, want per-letter errors %v", err, tt.wantErrs)
				}
				for i, want := range tt.wantErrs {
					if (each[i] != nil) != want {
						t.Fatalf("letter %d: err %v, want error %v", i, each[i], want)
					}
				}
			}
		})
	}
}
