package templates

import (
	"errors"
	"text/template/parse"
)

// A template is untrusted and text/template has no budget of its own: a
// loop, or a few thousand calls of upper on a long attribute, could make
// every subscriber's message cost milliseconds. So each message carries a
// budget of work, which loops and functions draw on as they run, and a
// template that needs more for some subscriber fails for that subscriber.
//
// One unit is roughly the cost of evaluating one node: a loop costs its
// items times the size of its body, a function one unit plus one per
// workBytes bytes of the text it reads or writes. Typical templates need
// tens of units; a loop over a hundred items with a ten-node body about a
// thousand.
const (
	workPerMessage = 1 << 15
	workBytes      = 64
)

// ErrWorkLimit means a template needed more work for one subscriber's
// message than it may use.
var ErrWorkLimit = errors.New("templates: template needs too much work for one message")

// renderState is the data a field's template runs on: the subscriber's
// record and what is left of the message's budget. Every function that
// works in proportion to its input gets it as a hidden first argument ($,
// which a template may not reassign), and the lookups that stand for .a
// and $.a see through it to the record.
type renderState struct {
	rec  Record
	left int
	// stack holds the arguments of the fast path's calls (fastcall.go),
	// kept from message to message.
	stack []any
}

// charge takes units of work for function fn from the budget.
func (st *renderState) charge(fn string, units int) error {
	st.left -= units
	if st.left < 0 {
		return &valueError{fn: fn, msg: "needs more work than a message may use", class: ErrWorkLimit}
	}
	return nil
}

// chargeText takes the work of reading or writing n bytes of text.
func (st *renderState) chargeText(fn string, n int) error {
	return st.charge(fn, 1+n/workBytes)
}

// root is what {{.}} (outside with and range) and {{$}} stand for: the
// record, never the renderState around it.
func root(v any) any {
	if st, ok := v.(*renderState); ok {
		return st.rec
	}
	return v
}

// chargedFunc says whether a function gets the renderState: those whose
// work grows with their input. The others (default, index, len, slice,
// and, or, not) take constant time.
func chargedFunc(name string) bool {
	switch name {
	case "upper", "lower", "title", "trim", "truncate", "number", "fixed", "date",
		"eq", "ne", "lt", "le", "gt", "ge", "html", "js", "urlquery", fnRange:
		return true
	}
	return false
}

// dollar is the $ passed as the hidden first argument of charged functions.
func dollar(pos parse.Pos) *parse.VariableNode {
	return &parse.VariableNode{NodeType: parse.NodeVariable, Pos: pos, Ident: []string{"$"}}
}
